"""``sms-archiver status``: where each service and direction stands, and what the daemons plan next.

Everything comes from the archive itself, so it works from any machine that can read it: the
cursor and last completed cycle of each service and direction (``_state/{service}/{direction}.json``),
the lease holder (``_state/{service}/lease.json``), and what each daemon published after its last
job (``_state/_daemons/{host}.json``: next runs, last outcomes). Tables, or JSON with ``--json``
(piped or not: a script asks for JSON).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from archiver.config import Settings
from archiver.errors import ArchiverError
from archiver.naming import Direction
from archiver.services import services_known
from archiver.store import Store
from archiver.store.lease import read_lease
from archiver.store.state import load_state
from archiver.tables import add_columns, table_console

__all__ = ["DAEMONS_PREFIX", "last_cycles_finished", "read_daemons", "run_status", "show_status"]

DAEMONS_PREFIX = "_state/_daemons/"


def read_daemons(store: Store) -> list[dict[str, Any]]:
    """Every status document the daemons published; an unreadable one is reported, not fatal."""
    daemons: list[dict[str, Any]] = []
    for info in store.list(DAEMONS_PREFIX):
        if not info.key.endswith(".json"):
            continue
        try:
            document = json.loads(store.get(info.key))
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
        except KeyError:
            continue  # removed since the listing
        except ValueError as error:
            document = {"host": info.key.removeprefix(DAEMONS_PREFIX).removesuffix(".json"), "error": str(error)}
        daemons.append(document)
    return daemons


def _archive_failure_after(daemons: list[dict[str, Any]], finished_at: str | None) -> str | None:
    """The last archive failure a daemon reported after ``finished_at``, as 'host: error'."""
    latest: tuple[str, str] | None = None
    for daemon in daemons:
        job = (daemon.get("jobs") or {}).get("archive") or {}
        when = job.get("last_finished")
        if job.get("last_outcome") != "failed" or not isinstance(when, str):
            continue
        if (finished_at is None or when > finished_at) and (latest is None or when > latest[0]):
            latest = (when, f"{daemon.get('host', '?')}: {job.get('last_error') or 'failed'}")
    return latest[1] if latest else None


def run_status(settings: Settings, store: Store) -> dict[str, Any]:
    """The status as data: ``services`` (one entry per service and direction) and ``daemons``."""
    daemons = read_daemons(store)
    entries: list[dict[str, Any]] = []
    services = services_known(settings.ovh, store)
    for service in services:
        lease = read_lease(store, service)
        for direction in settings.archive.directions:
            state = load_state(store, service, direction)
            last = state.last_cycle
            finished_at = last.get("finished_at") if last else None
            failure = _archive_failure_after(daemons, finished_at)
            if failure:
                outcome = f"failed since ({failure})"
            elif state.partial_until:
                outcome = "interrupted (the next cycle resumes it)"
            elif last:
                outcome = "ok"
            else:
                outcome = "never archived"
            entries.append(
                {
                    "service": service,
                    "direction": direction,
                    "cursor": state.cursor.isoformat() if state.cursor else None,
                    "interrupted_cycle": state.partial_until.isoformat() if state.partial_until else None,
                    "last_cycle": {
                        "finished_at": finished_at,
                        "rows_written": last.get("rows_written") if last else None,
                        "unsettled": last.get("unsettled") if last else None,
                        "clock_offset_seconds": last.get("clock_offset_seconds") if last else None,
                        "outcome": outcome,
                    },
                    "lease": lease.describe() if lease else None,
                }
            )
    return {"services": entries, "daemons": daemons}


def last_cycles_finished(
    store: Store, services: Iterable[str], directions: Iterable[Direction]
) -> dict[tuple[str, Direction], dt.datetime]:
    """When each service and direction last completed an archive cycle, by ``(service, direction)``.

    A pair never archived is left out, and so is one whose state cannot be read: reporting a damaged
    state is the archive cycle's job, not a reader's.
    """
    finished: dict[tuple[str, Direction], dt.datetime] = {}
    for service in services:
        for direction in directions:
            try:
                when = load_state(store, service, direction).last_cycle.get("finished_at")
            except ArchiverError:
                continue
            if when:
                finished[(service, direction)] = dt.datetime.fromisoformat(when)
    return finished


def show_status(settings: Settings, store: Store, *, as_json: bool) -> int:
    """Print the status (tables, or JSON with ``as_json``); return 0.

    Raises ``StorageError`` when the archive cannot be read.
    """
    document = run_status(settings, store)
    if as_json:
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    _print_tables(document)
    return 0


def _when(text: Any) -> str:
    """An ISO instant as ``YYYY-MM-DD HH:MM`` UTC, short enough for a table."""
    if not isinstance(text, str) or not text:
        return "-"
    try:
        return f"{dt.datetime.fromisoformat(text).astimezone(dt.UTC):%Y-%m-%d %H:%M}"
    except ValueError:
        return text


def _print_tables(document: dict[str, Any]) -> None:
    from rich.table import Table

    console = table_console()
    archive = Table(title="archive (times in UTC)")
    add_columns(
        archive,
        ("service", "direction", "cursor", "last cycle", "rows", "outcome", "lease"),
        right=("rows",),
        no_wrap=("cursor", "last cycle"),
    )
    for entry in document["services"]:
        last = entry["last_cycle"]
        archive.add_row(
            entry["service"],
            entry["direction"],
            _when(entry["cursor"]),
            _when(last["finished_at"]),
            "" if last["rows_written"] is None else str(last["rows_written"]),
            last["outcome"],
            entry["lease"] or "free",
        )
    if not document["services"]:
        archive.caption = "no service archived yet"
    console.print(archive)

    daemons = Table(title="daemons (times in UTC)")
    add_columns(
        daemons,
        ("host", "state", "updated", "job", "schedule", "next run", "last run", "outcome"),
        no_wrap=("updated", "next run", "last run"),
    )
    for daemon in document["daemons"]:
        jobs = daemon.get("jobs") or {}
        if not jobs:
            daemons.add_row(daemon.get("host", "?"), daemon.get("state", daemon.get("error", "?")), *[""] * 6)
        for index, (name, job) in enumerate(sorted(jobs.items())):
            first = index == 0
            daemons.add_row(
                f"{daemon.get('host', '?')} (pid {daemon.get('pid', '?')})" if first else "",
                daemon.get("state", "?") if first else "",
                _when(daemon.get("updated_at")) if first else "",
                name,
                job.get("schedule") or "",
                _when(job.get("next_run")),
                _when(job.get("last_finished")),
                _outcome(job),
            )
    if not document["daemons"]:
        daemons.caption = "no daemon has published its status (sms-archiver run)"
    console.print(daemons)


def _outcome(job: dict[str, Any]) -> str:
    outcome = job.get("last_outcome") or "-"
    if outcome == "failed" and job.get("last_error"):
        return f"failed: {job['last_error']}"
    if outcome == "ok" and job.get("last_summary"):
        return f"ok: {job['last_summary']}"
    return str(outcome)
