"""``status``: where each service and direction stands and what the daemons plan next, as tables or JSON.

The document comes from ``archiver.actions.status.run_status``; this module only prints it. Tables,
or JSON with ``--json`` (piped or not: a script asks for JSON).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from archiver.actions.status import run_status
from archiver.cli.tables import add_columns, table_console
from archiver.cli.wiring import reading_store, settings_from
from archiver.config import Settings
from archiver.store import Store

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["cmd_status", "show_status"]


def cmd_status(args: argparse.Namespace) -> int:
    settings = settings_from(args, archive_only=True)
    return show_status(settings, reading_store(settings), as_json=args.json)


def show_status(settings: Settings, store: Store, *, as_json: bool) -> int:
    """Print the status (tables, or JSON with ``as_json``); return 0.

    Raises ``StorageError`` when the archive cannot be read.
    """
    document = run_status(settings, store)
    if as_json:
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    console = table_console()
    console.print(_archive_table(document["services"], with_accounts=bool(settings.accounts)))
    console.print(_daemons_table(document["daemons"]))
    _print_holds(console, document["legal_holds"])
    return 0


def _print_holds(console: Any, holds: dict[str, Any]) -> None:
    """The active legal holds: a line when there is none, else a short table."""
    from rich.table import Table

    if holds["error"]:
        console.print(f"legal holds: UNREADABLE ({holds['error']}): retention and the archive purge stop on it")
        return
    if not holds["count"]:
        console.print("legal holds: none active")
        return
    table = Table(title=f"legal holds: {holds['count']} active (retention and the archive purge keep what they cover)")
    add_columns(table, ("id", "scope", "reason", "placed"), no_wrap=("id",))
    for hold in holds["list"]:
        table.add_row(hold["id"], hold["scope"], hold["reason"], f"{_when(hold['placed_at'])} by {hold['placed_by']}")
    if holds["count"] > len(holds["list"]):
        table.caption = f"... {holds['count'] - len(holds['list'])} more: sms-archiver hold list"
    console.print(table)


def _when(text: Any) -> str:
    """An ISO instant as ``YYYY-MM-DD HH:MM`` UTC, short enough for a table; ``-`` for none."""
    if not isinstance(text, str) or not text:
        return "-"
    try:
        return f"{dt.datetime.fromisoformat(text).astimezone(dt.UTC):%Y-%m-%d %H:%M}"
    except ValueError:
        return text


def _archive_table(services: list[dict[str, Any]], *, with_accounts: bool = False) -> Table:
    """The archive's table; ``with_accounts``: a first column names each service's OVH account."""
    from rich.table import Table

    table = Table(title="archive (times in UTC)")
    columns = ("service", "direction", "cursor", "last cycle", "rows", "outcome", "lease")
    add_columns(
        table,
        ("account", *columns) if with_accounts else columns,
        right=("rows",),
        no_wrap=("cursor", "last cycle"),
    )
    for entry in services:
        last = entry["last_cycle"]
        table.add_row(
            *([entry.get("account") or "?"] if with_accounts else []),
            entry["service"],
            entry["direction"],
            _when(entry["cursor"]),
            _when(last["finished_at"]),
            "" if last["rows_written"] is None else str(last["rows_written"]),
            last["outcome"],
            entry["lease"] or "free",
        )
    if not services:
        table.caption = "no service archived yet"
    return table


def _daemons_table(daemons: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title="daemons (times in UTC)")
    add_columns(
        table,
        ("host", "state", "updated", "job", "schedule", "next run", "last run", "outcome"),
        no_wrap=("updated", "next run", "last run"),
    )
    for daemon in daemons:
        jobs = daemon.get("jobs") or {}
        if not jobs:
            table.add_row(daemon.get("host", "?"), daemon.get("state", daemon.get("error", "?")), *[""] * 6)
        for index, (name, job) in enumerate(sorted(jobs.items())):
            first = index == 0
            table.add_row(
                f"{daemon.get('host', '?')} (pid {daemon.get('pid', '?')})" if first else "",
                daemon.get("state", "?") if first else "",
                _when(daemon.get("updated_at")) if first else "",
                name,
                job.get("schedule") or "",
                _when(job.get("next_run")),
                _when(job.get("last_finished")),
                _job_outcome(job),
            )
    if not daemons:
        table.caption = "no daemon has published its status (sms-archiver run)"
    return table


def _job_outcome(job: dict[str, Any]) -> str:
    """A daemon job's last outcome with its error or summary: ``failed: ...``, ``ok: 12 rows written``."""
    outcome = job.get("last_outcome") or "-"
    if outcome == "failed" and job.get("last_error"):
        return f"failed: {job['last_error']}"
    if outcome == "ok" and job.get("last_summary"):
        return f"ok: {job['last_summary']}"
    return str(outcome)
