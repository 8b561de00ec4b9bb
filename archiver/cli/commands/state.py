"""``state show`` and ``state reset``: the archive cursors, in detail, and forgetting one."""

from __future__ import annotations

import argparse
import json
from typing import Any

from archiver.actions.status import run_state_show
from archiver.cli.tables import add_columns, table_console
from archiver.cli.wiring import reading_store, settings_from
from archiver.errors import ConfigError
from archiver.naming import DIRECTIONS
from archiver.store import open_store
from archiver.store.state import reset_state

__all__ = ["cmd_state_reset", "cmd_state_show"]


def cmd_state_show(args: argparse.Namespace) -> int:
    settings = settings_from(args, archive_only=True)
    document = run_state_show(settings, reading_store(settings), service=args.service)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        _print_state(document)
    return 0


def _print_state(document: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="archive state")
    add_columns(table, ("service", "direction", "cursor", "awaiting status", "retry", "last cycle", "lease"))
    for item in document:
        last = item["last_cycle"]
        table.add_row(
            item["service"],
            item["direction"],
            item["cursor"] or "never archived",
            str(item["awaiting_final_status"]),
            str(len(item["retry_ids"])),
            f"{last.get('finished_at', '')} +{last.get('rows_written', 0)} rows" if last else "",
            item["lease"] or "free",
        )
    table_console().print(table)


def cmd_state_reset(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not args.yes:
        raise ConfigError(
            "state reset makes the next cycle list everything again (nothing is lost or doubled: rows are "
            "deduplicated by id); add --yes to confirm"
        )
    store = open_store(settings.storage)
    for direction in [args.direction] if args.direction else DIRECTIONS:
        existed = reset_state(store, args.service, direction)
        print(f"{args.service} {direction}: {'cursor reset' if existed else 'no cursor to reset'}")
    return 0
