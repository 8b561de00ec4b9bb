"""Incremental state kept in the archive itself: a cursor per service and direction, and the lease.

The cursor lives next to the data (``_state/{service}/{direction}.json``) so that a new machine
resumes where the old one stopped. It is written only after the parts it covers are durable.

The lease (``_state/{service}/lease.json``) keeps two instances from archiving one service at
once. It is taken with a conditional write. A lease is stale, and may be taken over, once it has
expired, or at once when its holder was a process of this host that no longer runs (so that a
restart after a crash or ``kill -9`` goes straight on).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from archiver.config import Direction
from archiver.errors import LeaseHeldError, PreconditionFailed, StorageError
from archiver.layout import lease_key, state_key
from archiver.store import Store

__all__ = ["CursorState", "Known", "Lease", "LeaseInfo", "load_state", "reset_state", "save_state"]

log = structlog.get_logger()
STATE_VERSION = 1


@dataclass(slots=True)
class Known:
    """What the cursor remembers of a recently archived record (inside the lookback window)."""

    created: float  # unix seconds
    final: bool
    digest: str  # of the archived row, to tell whether a re-check brought a new version


@dataclass(slots=True)
class CursorState:
    """Where a service and direction stand.

    ``cursor``: the end of the last completed window; the next cycle lists from
    ``cursor - lookback``. ``known``: records archived within the lookback window, so that a
    listing can be diffed without re-fetching. ``retry``: ids that failed to parse, fetched again
    every cycle until they do. ``partial``: progress of an interrupted cycle (its window end and
    the ids already durable), so that a resumed cycle neither re-fetches nor re-writes them.
    """

    cursor: dt.datetime | None = None
    known: dict[int, Known] = field(default_factory=dict)
    retry: set[int] = field(default_factory=set)
    partial_until: dt.datetime | None = None
    partial_done: set[int] = field(default_factory=set)
    last_cycle: dict[str, Any] = field(default_factory=dict)
    # The longest id listing OVH has answered for this service and direction: a listing shorter than
    # it cannot have been cut by a size cap (see archive._DirectionRun.may_be_cut).
    largest_listing: int = 0

    def to_json(self) -> bytes:
        document = {
            "version": STATE_VERSION,
            "cursor": self.cursor.isoformat() if self.cursor else None,
            "known": {str(key): [value.created, value.final, value.digest] for key, value in self.known.items()},
            "retry": sorted(self.retry),
            "partial": (
                {"until": self.partial_until.isoformat(), "done": sorted(self.partial_done)}
                if self.partial_until
                else None
            ),
            "last_cycle": self.last_cycle,
            "largest_listing": self.largest_listing,
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, *, source: str) -> CursorState:
        try:
            document = json.loads(data)
            if document.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported state version {document.get('version')!r}")
            partial = document.get("partial") or {}
            return cls(
                cursor=_instant(document.get("cursor")),
                known={
                    int(key): Known(float(value[0]), bool(value[1]), str(value[2]))
                    for key, value in document.get("known", {}).items()
                },
                retry={int(item) for item in document.get("retry", [])},
                partial_until=_instant(partial.get("until")),
                partial_done={int(item) for item in partial.get("done", [])},
                last_cycle=dict(document.get("last_cycle") or {}),
                largest_listing=int(document.get("largest_listing") or 0),
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            raise StorageError(f"state object {source} is damaged ({error}); see 'sms-archiver state reset'") from None


def _instant(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def load_state(store: Store, service: str, direction: Direction) -> CursorState:
    key = state_key(service, direction)
    try:
        data = store.get(key)
    except KeyError:
        return CursorState()
    return CursorState.from_json(data, source=key)


def save_state(store: Store, service: str, direction: Direction, state: CursorState) -> None:
    store.put(state_key(service, direction), state.to_json())


def reset_state(store: Store, service: str, direction: Direction) -> bool:
    """Forget the cursor (the next cycle starts over and dedupes by id); return whether one existed."""
    key = state_key(service, direction)
    existed = store.head(key) is not None
    store.delete(key)
    return existed


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who holds a lease, and until when."""

    owner: str
    host: str
    pid: int
    pid_started: str
    acquired: dt.datetime
    expires: dt.datetime

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "owner": self.owner,
                "host": self.host,
                "pid": self.pid,
                "pid_started": self.pid_started,
                "acquired": self.acquired.isoformat(),
                "expires": self.expires.isoformat(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseInfo | None:
        try:
            doc = json.loads(data)
            return cls(
                str(doc["owner"]),
                str(doc["host"]),
                int(doc["pid"]),
                str(doc.get("pid_started", "")),
                dt.datetime.fromisoformat(doc["acquired"]),
                dt.datetime.fromisoformat(doc["expires"]),
            )
        except (ValueError, TypeError, KeyError):
            return None  # unreadable: treated as stale, since nobody could renew it

    def describe(self) -> str:
        since, expires = f"{self.acquired:%Y-%m-%d %H:%M:%S %Z}", f"{self.expires:%H:%M:%S %Z}"
        return f"pid {self.pid} on {self.host} since {since} (expires {expires})"


def _process_started(pid: int) -> str:
    """The start time of a process in clock ticks since boot, to tell a reused pid apart ("" if unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22 (starttime), counted after the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def _process_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not started or not (now_started := _process_started(pid)) or now_started == started


def is_stale(info: LeaseInfo | None, now: dt.datetime, host: str) -> bool:
    """Whether a lease may be taken over: expired, unreadable, or held by a dead local process."""
    if info is None or info.expires <= now:
        return True
    return info.host == host and not _process_alive(info.pid, info.pid_started)


class Lease:
    """The single-writer lease of one service, as a context manager.

    ``acquire`` raises ``LeaseHeldError`` when a live holder keeps it past ``wait_seconds``.
    ``renew`` extends it (call it between steps of long work); ``release`` deletes it if still ours.
    """

    def __init__(
        self,
        store: Store,
        service: str,
        *,
        ttl_seconds: int,
        wait_seconds: int = 0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.service = service
        self.key = lease_key(service)
        self.ttl = dt.timedelta(seconds=ttl_seconds)
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.host = socket.gethostname()
        self.owner = uuid.uuid4().hex
        self.etag = ""
        self.info: LeaseInfo | None = None

    def _new_info(self, acquired: dt.datetime | None = None) -> LeaseInfo:
        now = self.clock()
        pid = os.getpid()
        return LeaseInfo(self.owner, self.host, pid, _process_started(pid), acquired or now, now + self.ttl)

    def _try_acquire(self) -> LeaseInfo | None:
        """Take the lease if free or stale; return the live holder otherwise."""
        current = self.store.head(self.key)
        info = self._new_info()
        try:
            if current is None:
                written = self.store.put_if_absent(self.key, info.to_json())
            else:
                holder = LeaseInfo.from_json(self.store.get(self.key))
                if not is_stale(holder, self.clock(), self.host):
                    return holder
                log.warning(
                    "lease_taken_over",
                    service=self.service,
                    stale_holder=holder.describe() if holder else "?",
                )
                written = self.store.put_if_match(self.key, info.to_json(), current.etag)
        except PreconditionFailed:
            return LeaseInfo.from_json(self._read_or_empty()) or info  # lost a race: someone else has it now
        except KeyError:
            return self._try_acquire()  # released between head and get: try again once more
        self.etag, self.info = written.etag, info
        return None

    def _read_or_empty(self) -> bytes:
        try:
            return self.store.get(self.key)
        except KeyError:
            return b""

    def acquire(self) -> Lease:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            holder = self._try_acquire()
            if holder is None:
                log.debug("lease_acquired", service=self.service)
                return self
            if time.monotonic() >= deadline:
                raise LeaseHeldError(
                    f"service {self.service} is being archived by another instance ({holder.describe()}); "
                    "try again later, or raise SMS_ARCHIVER_LEASE__WAIT_SECONDS to wait for it"
                )
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))

    def renew(self) -> None:
        """Extend the lease; raise ``LeaseHeldError`` if someone took it over meanwhile."""
        assert self.info is not None, "renew() before acquire()"
        info = self._new_info(self.info.acquired)
        try:
            written = self.store.put_if_match(self.key, info.to_json(), self.etag)
        except (PreconditionFailed, KeyError):
            raise LeaseHeldError(f"lost the lease of service {self.service} to another instance") from None
        self.etag, self.info = written.etag, info

    def renew_if_due(self) -> None:
        if self.info is not None and self.clock() >= self.info.expires - self.ttl / 2:
            self.renew()

    def release(self) -> None:
        if self.info is None:
            return
        current = self.store.head(self.key)
        if current is not None and current.etag == self.etag:
            self.store.delete(self.key)
        self.info = None

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self.release()
        except StorageError as error:
            log.warning("lease_release_failed", service=self.service, error=str(error))


def read_lease(store: Store, service: str) -> LeaseInfo | None:
    try:
        return LeaseInfo.from_json(store.get(lease_key(service)))
    except KeyError:
        return None
