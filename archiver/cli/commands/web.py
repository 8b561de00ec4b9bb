"""``web``: the history browser, served from the archive (OVH is called only to delete, when allowed)."""

from __future__ import annotations

import argparse

from archiver.cli.wiring import reading_store, settings_from

__all__ = ["cmd_web"]


def cmd_web(args: argparse.Namespace) -> int:
    from archiver.web.serve import serve

    settings = settings_from(args)
    reading_store(settings)  # a local archive that does not exist is an error, as for the other readers
    return serve(settings, host=args.host, port=args.port)
