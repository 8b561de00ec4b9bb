"""``hold add``, ``hold list``, ``hold remove`` and ``audit``: legal holds and the audit trail.

The rules live in ``archiver.actions.holds`` and ``archiver.actions.audit``; this module turns the
options into their arguments and prints what they return (a table, or JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from archiver.actions.audit import run_audit
from archiver.actions.holds import HoldRequest, run_hold_add, run_hold_list, run_hold_remove
from archiver.audit import AuditEvent
from archiver.cli.tables import add_columns, table_console
from archiver.cli.wiring import reading_store, settings_from
from archiver.holds import Hold

__all__ = ["cmd_audit", "cmd_hold_add", "cmd_hold_list", "cmd_hold_remove"]


def cmd_hold_add(args: argparse.Namespace) -> int:
    request = HoldRequest(
        service=args.service,
        direction=args.direction,
        sender=args.sender,
        receiver=args.receiver,
        number=args.number,
        tag=args.tag,
        date_from=args.date_from,
        date_to=args.date_to,
    )
    request.scope()  # a wrong option is refused before the settings or the store are touched
    settings = settings_from(args)
    # An archive that must exist: a hold placed in a mistyped local path would protect nothing.
    hold = run_hold_add(settings, reading_store(settings), request, reason=args.reason)
    print(hold.id)
    return 0


def cmd_hold_remove(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    hold = run_hold_remove(settings, reading_store(settings), args.hold_id, reason=args.reason)
    print(f"{hold.id} lifted")
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    holds = run_hold_list(reading_store(settings), include_lifted=args.all)
    if args.json:
        print(json.dumps([hold.as_dict() for hold in holds], indent=2, sort_keys=True, ensure_ascii=False))
        return 0
    _print_holds(holds, include_lifted=args.all)
    return 0


def _print_holds(holds: list[Hold], *, include_lifted: bool) -> None:
    from rich.table import Table

    table = Table(title="legal holds (times in UTC)" + (", lifted ones included" if include_lifted else ""))
    add_columns(table, ("id", "state", "scope", "reason", "placed", "lifted"), no_wrap=("id",))
    for hold in holds:
        lifted = f"{_when(hold.lifted_at)} by {hold.lifted_by}: {hold.lift_reason}" if not hold.active else ""
        table.add_row(
            hold.id,
            "active" if hold.active else "lifted",
            hold.scope.describe(),
            hold.reason,
            f"{_when(hold.placed_at)} by {hold.placed_by}",
            lifted,
        )
    if not holds:
        table.caption = "no hold" if include_lifted else "no active hold (--all shows lifted ones)"
    table_console().print(table)


def cmd_audit(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    events = run_audit(reading_store(settings), since=args.since)
    if args.json:
        print(json.dumps([event.as_dict() for event in events], indent=2, sort_keys=True, ensure_ascii=False))
        return 0
    _print_events(events)
    return 0


def _print_events(events: list[AuditEvent]) -> None:
    from rich.table import Table

    table = Table(title="audit trail (times in UTC)")
    add_columns(table, ("when", "actor", "kind", "why", "what", "counts"), no_wrap=("when", "kind"))
    for event in events:
        table.add_row(
            _when(event.at),
            event.actor,
            event.kind,
            event.why,
            _pairs(event.what),
            _pairs(event.counts),
        )
    if not events:
        table.caption = "no event"
    table_console().print(table)


# A cell of the audit table says what happened at a glance; ``audit --json`` has every detail.
_CELL_CHARACTERS = 160
_LISTED_ITEMS = 3


def _pairs(values: dict[str, Any]) -> str:
    """``name=value, ...``; a short list as its items, a long one as its count, a digest shortened."""

    def shown(value: Any) -> str:
        if isinstance(value, list):
            items = value if len(value) <= _LISTED_ITEMS else [*value[:_LISTED_ITEMS], f"… {len(value)} in all"]
            return ", ".join(map(str, items))
        if isinstance(value, dict):
            return "{" + _pairs(value) + "}"
        text = str(value)
        if text.startswith("hmac-sha256:"):
            return text[: len("hmac-sha256:") + 12] + "…"
        return text

    text = ", ".join(f"{name}={shown(value)}" for name, value in values.items())
    return text if len(text) <= _CELL_CHARACTERS else text[: _CELL_CHARACTERS - 1] + "…"


def _when(text: str | None) -> str:
    """An ISO instant as ``YYYY-MM-DD HH:MM:SS`` UTC, for a table."""
    if not text:
        return "-"
    try:
        return f"{dt.datetime.fromisoformat(text).astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"
    except ValueError:
        return text
