"""``check-config``: the settings are valid, and OVH and the storage answer with them."""

from __future__ import annotations

import argparse

from archiver.actions.check import run_check
from archiver.cli.wiring import settings_from

__all__ = ["cmd_check_config"]


def cmd_check_config(args: argparse.Namespace) -> int:
    """Print each check on a line (``ok`` or ``FAIL``); exit 1 if any failed."""
    results = run_check(settings_from(args))
    for result in results:
        if result.ok:
            print(f"ok    {result.what}{': ' + result.detail if result.detail else ''}")
        else:
            print(f"FAIL  {result.what}: {result.error}")
    return 0 if all(result.ok for result in results) else 1
