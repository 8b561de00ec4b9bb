"""``emulator``, ``demo`` and the version: trying the archiver without an OVH account, and what is installed."""

from __future__ import annotations

import argparse
import sys

from archiver.cli.progress import progress_bar
from archiver.logs import configure_logging

__all__ = ["cmd_demo", "cmd_emulator", "installed_version"]


def cmd_emulator(args: argparse.Namespace) -> int:
    from archiver.emulator import serve_forever_cli

    return serve_forever_cli(args.emulator_args)


def cmd_demo(args: argparse.Namespace) -> int:
    from archiver.demo import run_demo

    configure_logging(args.log_level or "warning", args.log_format or "console")
    return run_demo(
        storage_url=args.storage_url,
        outgoing=args.outgoing,
        incoming=args.incoming,
        progress=progress_bar(args),
        # The history browser, on a terminal only: a script or CI running the demo must not block.
        web=not args.no_web and sys.stdin.isatty() and sys.stdout.isatty(),
    )


def installed_version() -> str:
    """The installed distribution's version (its metadata), whatever the checkout holds."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sms-archiver")
    except PackageNotFoundError:
        return "(not installed: run from a source tree)"
