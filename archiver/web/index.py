"""The history browser's index: a local SQLite copy of what the reader returns, month by month.

The reader (``archiver.reader``) stays the one implementation of "each id once, its newest
version": this index only stores its output, so that a page of any depth, or a search over years,
is an indexed query instead of a scan of every CSV part. It is a cache: deleting the file costs a
rebuild, nothing else.

A month's rows depend on its own parts and on every part that may hold another version of one of
its ids: parts whose id ranges overlap (see the reader's "Resolution"). Each month records a
signature of those parts (keys, etags, sizes); when the listing shows a different signature, the
month is read again through the reader before a query is answered. A rewritten day (compaction,
erasure) has a new part key, so its month is read again. Deleted rows are overwritten in the file
and the write-ahead log emptied after a change, so that an erased number leaves this cache too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
import threading
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from archiver.naming import Direction
from archiver.reader import ArchiveParts, iter_day_sources
from archiver.reader.parts import overlapping_groups
from archiver.records import NON_FINAL_PTT, Record
from archiver.store import ObjectInfo, Store
from archiver.store.layout import PartKey, parse_part_key

__all__ = ["HistoryIndex", "IndexedMonth", "Refreshed", "row_state"]

log = structlog.get_logger(__name__)

_SCHEMA_VERSION = 1
_BATCH = 5000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sms (
    service TEXT NOT NULL,
    direction TEXT NOT NULL,
    id INTEGER NOT NULL,
    ts INTEGER NOT NULL,          -- creation instant, microseconds since the epoch (UTC)
    day TEXT NOT NULL,            -- YYYY-MM-DD in the archive's time zone
    month TEXT NOT NULL,          -- the archive month (folder) the row was read from: YYYY-MM
    sender TEXT NOT NULL,
    receiver TEXT NOT NULL,
    tag TEXT NOT NULL,
    ptt INTEGER,                  -- NULL for received SMS
    state TEXT NOT NULL,          -- delivered, failed, pending, received
    folded TEXT NOT NULL,         -- the message, case-folded, for word searches
    fields TEXT NOT NULL,         -- the CSV row, as a JSON list of strings
    PRIMARY KEY (service, direction, id)
);
CREATE INDEX IF NOT EXISTS sms_order ON sms (ts, id, service, direction);
CREATE INDEX IF NOT EXISTS sms_receiver ON sms (receiver, ts, id, service, direction);
CREATE INDEX IF NOT EXISTS sms_sender ON sms (sender, ts, id, service, direction);
CREATE INDEX IF NOT EXISTS sms_tag ON sms (tag, ts, id, service, direction);
CREATE INDEX IF NOT EXISTS sms_month ON sms (service, direction, month);
CREATE TABLE IF NOT EXISTS months (
    service TEXT NOT NULL,
    direction TEXT NOT NULL,
    month TEXT NOT NULL,
    signature TEXT NOT NULL,
    rows INTEGER NOT NULL,
    PRIMARY KEY (service, direction, month)
);
"""


def row_state(record: Record) -> str:
    """How the overview counts an SMS: received; or delivered, failed, pending by its status."""
    if record.direction == "incoming":
        return "received"
    if record.get("deliveredAt") or record.get("ptt") in ("0", "4"):
        return "delivered"
    return "pending" if int(record.get("ptt") or 0) in NON_FINAL_PTT else "failed"


@dataclass(frozen=True, slots=True)
class IndexedMonth:
    service: str
    direction: Direction
    month: str
    rows: int


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What a refresh did: months read again through the reader, months dropped, seconds spent."""

    rebuilt: int
    dropped: int
    rows: int
    seconds: float


def default_cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sms-archiver" / "web"


class HistoryIndex:
    """The index of one archive (store), in ``cache_dir``; safe to share between threads."""

    def __init__(
        self,
        store: Store,
        zone: zoneinfo.ZoneInfo,
        cache_dir: Path | None = None,
        *,
        min_refresh_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.zone = zone
        identity = f"{_SCHEMA_VERSION}|{store.describe()}|{zone.key}"
        directory = cache_dir or default_cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"index-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.sqlite"
        self.min_refresh_seconds = min_refresh_seconds
        self._refresh_lock = threading.Lock()
        self._refreshed_at: float | None = None
        self._local = threading.local()
        with self.connection() as db:
            db.executescript(_SCHEMA)

    # -- connections ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (WAL: readers go on while a month is rebuilt)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA cache_size=-16000")  # 16 MB of page cache per connection, at most
            # A deleted row's bytes are overwritten, not left in free pages: an erased number (``erase``)
            # must not outlive its erasure in this cache.
            db.execute("PRAGMA secure_delete=ON")
            self._local.db = db
        yield db

    # -- refresh ----------------------------------------------------------------------------------

    def ensure_fresh(self) -> Refreshed | None:
        """Refresh unless done less than ``min_refresh_seconds`` ago (None: nothing done)."""
        with self._refresh_lock:
            now = time.monotonic()
            if self._refreshed_at is not None and now - self._refreshed_at < self.min_refresh_seconds:
                return None
            result = self._refresh()
            self._refreshed_at = time.monotonic()
            return result

    def refresh(self) -> Refreshed:
        with self._refresh_lock:
            result = self._refresh()
            self._refreshed_at = time.monotonic()
            return result

    def _refresh(self) -> Refreshed:
        started = time.monotonic()
        listed: dict[tuple[str, Direction], list[tuple[ObjectInfo, PartKey]]] = {}
        for info in self.store.list(""):
            part = parse_part_key(info.key)
            if part is not None:
                listed.setdefault((part.service, part.direction), []).append((info, part))
        with self.connection() as db:
            recorded = {
                (service, direction, month): signature
                for service, direction, month, signature in db.execute(
                    "SELECT service, direction, month, signature FROM months"
                )
            }
        wanted: dict[tuple[str, str, str], str] = {}
        for (service, direction), parts in listed.items():
            for month, signature in _month_signatures(parts).items():
                wanted[(service, direction, month)] = signature
        rebuilt = rows = 0
        for service, direction in sorted(listed):
            stale = [
                month
                for (s, d, month), signature in sorted(wanted.items())
                if (s, d) == (service, direction) and recorded.get((s, d, month)) != signature
            ]
            if stale:
                rows += self._rebuild(service, direction, stale, wanted)
                rebuilt += len(stale)
        gone = [key for key in recorded if key not in wanted]
        with self.connection() as db, db:
            for service, direction, month in gone:
                db.execute("DELETE FROM sms WHERE service=? AND direction=? AND month=?", (service, direction, month))
                db.execute(
                    "DELETE FROM months WHERE service=? AND direction=? AND month=?", (service, direction, month)
                )
        if rebuilt or gone:
            # Rows replaced or deleted still sit in the write-ahead log's older frames until it is
            # checkpointed and emptied: do it now, so that what left the archive leaves this file too.
            with self.connection() as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        result = Refreshed(rebuilt, len(gone), rows, time.monotonic() - started)
        if rebuilt or gone:
            log.info("web_index_refreshed", months_rebuilt=rebuilt, months_dropped=len(gone), rows=rows)
        return result

    def _rebuild(
        self, service: str, direction: Direction, months: list[str], wanted: dict[tuple[str, str, str], str]
    ) -> int:
        parts = ArchiveParts(self.store, service, direction)
        keys = [(int(month[:4]), int(month[5:7])) for month in months]
        resolution = parts.resolution(keys)
        total = 0
        for (year, month_number), month in zip(keys, months, strict=True):
            count = 0
            with self.connection() as db, db:  # one transaction per month: a reader sees it whole
                db.execute("DELETE FROM sms WHERE service=? AND direction=? AND month=?", (service, direction, month))
                batch: list[tuple[object, ...]] = []
                for _day, day_parts in parts.days(year, month_number):
                    for record, _stored in iter_day_sources(self.store, day_parts, direction, resolution):
                        batch.append(self._row(service, direction, month, record))
                        if len(batch) >= _BATCH:
                            count += self._insert(db, batch)
                count += self._insert(db, batch)
                db.execute(
                    "INSERT OR REPLACE INTO months (service, direction, month, signature, rows) VALUES (?,?,?,?,?)",
                    (service, direction, month, wanted[(service, direction, month)], count),
                )
            total += count
        return total

    @staticmethod
    def _insert(db: sqlite3.Connection, batch: list[tuple[object, ...]]) -> int:
        db.executemany("INSERT OR REPLACE INTO sms VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
        count = len(batch)
        batch.clear()
        return count

    def _row(self, service: str, direction: Direction, month: str, record: Record) -> tuple[object, ...]:
        created = record.created
        ptt = record.get("ptt") if direction == "outgoing" else None
        return (
            service,
            direction,
            record.id,
            _micros(created),
            created.astimezone(self.zone).date().isoformat(),
            month,
            record.get("sender"),
            record.get("receiver") if direction == "outgoing" else "",
            record.get("tag"),
            int(ptt) if ptt else None,
            row_state(record),
            record.get("message").casefold(),
            json.dumps(record.fields, ensure_ascii=False),
        )

    # -- what is indexed --------------------------------------------------------------------------

    def months(self) -> list[IndexedMonth]:
        with self.connection() as db:
            return [
                IndexedMonth(service, direction, month, rows)
                for service, direction, month, rows in db.execute(
                    "SELECT service, direction, month, rows FROM months ORDER BY service, direction, month"
                )
            ]

    def services(self) -> list[str]:
        return sorted({month.service for month in self.months()})


def _micros(instant: dt.datetime) -> int:
    delta = instant - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _month_signatures(parts: list[tuple[ObjectInfo, PartKey]]) -> dict[str, str]:
    """A digest per month of its parts and of every part whose id range overlaps one of them.

    Overlapping ranges are grouped transitively, as the reader groups them: a little wider than
    needed, never narrower, so a new version of an id anywhere changes the signature of its month.
    """
    contributions: dict[str, set[str]] = {}
    for group in overlapping_groups(parts):
        described = {f"{info.key}|{info.etag}|{info.size}" for info, _part in group}
        for _info, part in group:
            contributions.setdefault(f"{part.day.year:04d}-{part.day.month:02d}", set()).update(described)
    return {
        month: hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest() for month, items in contributions.items()
    }
