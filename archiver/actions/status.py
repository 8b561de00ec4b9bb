"""Status: where each service and direction stands, and what the daemons plan next, as data.

Everything comes from the archive itself, so it works from any machine that can read it: the
cursor and last completed cycle of each service and direction (``_state/{service}/{direction}.json``;
the cycle records the service's OVH account, shown when the settings do not name it),
the lease holder (``_state/{service}/lease.json``), and what each daemon published after its last
job (``_state/_daemons/{host}.json``: next runs, last outcomes). ``read_states`` is the one reading
of cursors and leases, for ``run_status`` (``sms-archiver status``) and ``run_state_show``
(``sms-archiver state show``); the command line prints what they return (``archiver.cli``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from archiver.config import DEFAULT_ACCOUNT, Settings
from archiver.errors import ArchiverError, StorageError
from archiver.holds import load_holds
from archiver.naming import DIRECTIONS, Direction
from archiver.services import services_known
from archiver.store import Store
from archiver.store.layout import DAEMON_STATUS_PREFIX, host_of_daemon_status_key
from archiver.store.lease import LeaseInfo, read_lease
from archiver.store.state import CursorState, load_state

__all__ = [
    "StateEntry",
    "account_of",
    "accounts_of",
    "active_holds",
    "last_cycles_finished",
    "read_daemons",
    "read_states",
    "run_state_show",
    "run_status",
]


def read_daemons(store: Store) -> list[dict[str, Any]]:
    """Every status document the daemons published; an unreadable one is reported, not fatal."""
    daemons: list[dict[str, Any]] = []
    for info in store.list(DAEMON_STATUS_PREFIX):
        if not info.key.endswith(".json"):
            continue
        try:
            document = json.loads(store.get(info.key))
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
        except KeyError:
            continue  # removed since the listing
        except ValueError as error:
            document = {"host": host_of_daemon_status_key(info.key), "error": str(error)}
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


@dataclass(frozen=True, slots=True)
class StateEntry:
    """What the archive records for one service and direction: its cursor state and its service's lease."""

    service: str
    direction: Direction
    state: CursorState
    lease: LeaseInfo | None


def read_states(store: Store, services: Iterable[str], directions: Sequence[Direction]) -> list[StateEntry]:
    """The cursor state of each service and direction, with the service's lease (read once a service)."""
    entries = []
    for service in services:
        lease = read_lease(store, service)
        for direction in directions:
            entries.append(StateEntry(service, direction, load_state(store, service, direction), lease))
    return entries


def _last_cycle_outcome(state: CursorState, daemons: list[dict[str, Any]]) -> str:
    """How the last archive cycle of a service and direction ended, a daemon's later failure first."""
    last = state.last_cycle
    failure = _archive_failure_after(daemons, last.get("finished_at") if last else None)
    if failure:
        return f"failed since ({failure})"
    if state.partial_until:
        return "interrupted (the next cycle resumes it)"
    return "ok" if last else "never archived"


# How many active holds ``status`` lists one by one (all of them are counted).
_HOLDS_LISTED = 20


def active_holds(store: Store) -> dict[str, Any]:
    """The active legal holds: ``count`` and a short ``list`` (oldest first); ``error`` if one is unreadable.

    An unreadable hold is reported here, not raised: retention and the purge stop on it, status says why.
    """
    try:
        holds = load_holds(store)
    except StorageError as error:
        return {"count": None, "list": [], "error": str(error)}
    listed = [
        {
            "id": hold.id,
            "scope": hold.scope.describe(),
            "reason": hold.reason,
            "placed_by": hold.placed_by,
            "placed_at": hold.placed_at,
        }
        for hold in holds[:_HOLDS_LISTED]
    ]
    return {"count": len(holds), "list": listed, "error": None}


def account_of(settings: Settings, service: str, state: CursorState | None = None) -> str | None:
    """The OVH account of ``service``: as configured, else as its last cycle recorded it (None: unknown).

    Without accounts in the settings, every service is the "default" account's.
    """
    # getattr: callers may pass a stand-in holding only the sections they use (no accounts: one account).
    if not getattr(settings, "accounts", None):
        return DEFAULT_ACCOUNT
    configured = settings.account_of_services().get(service)
    if configured is not None:
        return configured
    recorded = state.last_cycle.get("account") if state is not None else None
    return recorded if isinstance(recorded, str) and recorded else None


def accounts_of(settings: Settings, store: Store, services: Iterable[str]) -> dict[str, str | None]:
    """The OVH account of each service (``account_of``); reads a cursor only for a service the settings do not name."""
    accounts: dict[str, str | None] = {}
    for service in services:
        account = account_of(settings, service)
        for direction in DIRECTIONS if account is None else ():
            try:
                account = account_of(settings, service, load_state(store, service, direction))
            except ArchiverError:
                continue  # a damaged state is the archive cycle's to report
            if account is not None:
                break
        accounts[service] = account
    return accounts


def run_status(settings: Settings, store: Store) -> dict[str, Any]:
    """The status as data: ``services`` (one entry per service and direction), ``daemons`` and ``legal_holds``."""
    daemons = read_daemons(store)
    entries: list[dict[str, Any]] = []
    for entry in read_states(store, services_known(settings.ovh, store), settings.archive.directions):
        state, last = entry.state, entry.state.last_cycle
        entries.append(
            {
                "account": account_of(settings, entry.service, state),
                "service": entry.service,
                "direction": entry.direction,
                "cursor": state.cursor.isoformat() if state.cursor else None,
                "interrupted_cycle": state.partial_until.isoformat() if state.partial_until else None,
                "last_cycle": {
                    "finished_at": last.get("finished_at") if last else None,
                    "rows_written": last.get("rows_written") if last else None,
                    "unsettled": last.get("unsettled") if last else None,
                    "clock_offset_seconds": last.get("clock_offset_seconds") if last else None,
                    "outcome": _last_cycle_outcome(state, daemons),
                },
                "lease": entry.lease.describe() if entry.lease else None,
            }
        )
    return {"services": entries, "daemons": daemons, "legal_holds": active_holds(store)}


def run_state_show(settings: Settings, store: Store, *, service: str | None = None) -> list[dict[str, Any]]:
    """Each service's cursors in detail, both directions (``service``: only that one, which must be known)."""
    document: list[dict[str, Any]] = []
    for entry in read_states(store, services_known(settings.ovh, store, service), DIRECTIONS):
        state = entry.state
        document.append(
            {
                "account": account_of(settings, entry.service, state),
                "service": entry.service,
                "direction": entry.direction,
                "cursor": state.cursor.isoformat() if state.cursor else None,
                "known_recent": len(state.known),
                "awaiting_final_status": sum(1 for known in state.known.values() if not known.final),
                "retry_ids": sorted(state.retry),
                "interrupted_cycle": state.partial_until.isoformat() if state.partial_until else None,
                "last_cycle": state.last_cycle,
                "lease": entry.lease.describe() if entry.lease else None,
            }
        )
    return document


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
