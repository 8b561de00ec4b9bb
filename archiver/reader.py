"""Reading the archive back: parts of a month, merged to one row per id (its newest version).

Parts are sorted by (creation instant, id) inside, and a record's day folder follows from its
creation instant, so a month is read day by day with a k-way merge of that day's parts: memory
holds one row per open part, whatever the month's size. The versions of one id share their
creation instant, so they come out of the merge side by side; the newest (the row of the part
written last) is kept.
"""

from __future__ import annotations

import datetime as dt
import gzip
import heapq
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from archiver.config import DIRECTIONS, Direction
from archiver.csvfile import read_rows
from archiver.layout import PartKey, month_prefix, parse_part_key, service_prefix
from archiver.manifest import PartEntry, load_manifest, parse_row_key
from archiver.records import COLUMNS, Record, record_from_row
from archiver.store import ObjectInfo, Store

__all__ = [
    "MonthSummary",
    "StoredPart",
    "archived_months",
    "archived_services",
    "copy_part_body",
    "day_clusters",
    "iter_day_records",
    "iter_day_sources",
    "iter_records",
    "list_parts",
    "month_days",
    "summarize_months",
]

# Parts smaller than this are read whole: fewer open connections when a day has many small parts.
_READ_WHOLE_BELOW = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A data part as listed in the store, with the time it was written."""

    info: ObjectInfo
    part: PartKey
    # From the month's manifest (microseconds); the store's Last-Modified (often to the second) only
    # for a part a crash left out of the manifest.
    written: dt.datetime
    rows: int | None = None  # as recorded in the manifest (None: not recorded)
    # (creation instant, id) of the first and last rows, from the manifest (None: not recorded)
    span: tuple[tuple[dt.datetime, int], tuple[dt.datetime, int]] | None = None

    @property
    def version(self) -> tuple[dt.datetime, bool, str]:
        """Orders the versions of a row: the part written last wins; a compacted part wins a tie."""
        return (self.written, self.part.name.endswith("-c"), self.info.key)


def list_parts(
    store: Store, service: str, direction: Direction, year: int | None = None, month: int | None = None
) -> list[StoredPart]:
    """The data parts of one month (or of every month), in key order; other objects are skipped."""
    prefix = (
        month_prefix(service, direction, year, month)
        if year is not None and month is not None
        else service_prefix(service, direction)
    )
    recorded: dict[tuple[int, int], dict[str, PartEntry]] = {}
    parts = []
    for info in store.list(prefix):
        part = parse_part_key(info.key)
        if part is None or part.service != service or part.direction != direction:
            continue
        month_key = (part.day.year, part.day.month)
        if month_key not in recorded:
            manifest = load_manifest(store, service, direction, *month_key)
            recorded[month_key] = manifest.parts
        entry = recorded[month_key].get(info.key)
        if entry is None:
            parts.append(StoredPart(info, part, info.last_modified))
            continue
        first, last = parse_row_key(entry.first_row), parse_row_key(entry.last_row)
        span = (first, last) if first is not None and last is not None else None
        parts.append(StoredPart(info, part, dt.datetime.fromisoformat(entry.written_at), entry.rows, span))
    return parts


def archived_services(store: Store) -> list[str]:
    """Services the archive holds: folders ``{service}/{direction}/year=...``, and cursors or leases in ``_state/``.

    The data folders count on their own: a ``backfill`` writes parts and manifests but no cursor.
    Top-level folders starting with ``_`` (``_state/``, ``_journal/``, ``_state/_daemons/``) are
    bookkeeping, never services. The store offers no folder listing, so this reads every key once.
    """
    names = set()
    for info in store.list(""):
        segments = info.key.split("/")
        if segments[0] == "_state" and len(segments) >= 3:
            names.add(segments[1])
        elif len(segments) >= 4 and segments[1] in DIRECTIONS and segments[2].startswith("year="):
            names.add(segments[0])
    return sorted(name for name in names if not name.startswith(("_", ".")))


def archived_months(store: Store, service: str, direction: Direction) -> list[tuple[int, int]]:
    return sorted({(stored.part.day.year, stored.part.day.month) for stored in list_parts(store, service, direction)})


def _open(store: Store, stored: StoredPart) -> BinaryIO:
    if stored.info.size < _READ_WHOLE_BELOW:
        return io.BytesIO(store.get(stored.info.key))
    return store.open(stored.info.key)


def _part_records(store: Store, stored: StoredPart, direction: Direction) -> Iterator[Record]:
    stream = _open(store, stored)
    try:
        for row in read_rows(
            stream, header=COLUMNS[direction], compressed=stored.part.compressed, source=stored.info.key
        ):
            yield record_from_row(direction, row)
    finally:
        stream.close()


def iter_day_records(store: Store, parts: list[StoredPart], direction: Direction) -> Iterator[Record]:
    """Merge one day's parts: one record per id (newest version), by (creation instant, id)."""
    for record, _source in iter_day_sources(store, parts, direction):
        yield record


def iter_day_sources(
    store: Store, parts: list[StoredPart], direction: Direction
) -> Iterator[tuple[Record, StoredPart]]:
    """Like ``iter_day_records``, with the part each record's newest version comes from."""
    if not parts:
        return
    # Rank 0 is the newest part: on equal (instant, id) the merge yields it first.
    ranked = sorted(parts, key=lambda stored: stored.version, reverse=True)
    streams = [
        ((record.created, record.id, rank, record) for record in _part_records(store, stored, direction))
        for rank, stored in enumerate(ranked)
    ]
    merged = heapq.merge(*streams, key=lambda item: item[:3]) if len(streams) > 1 else streams[0]
    last_id: int | None = None
    for _created, sms_id, rank, record in merged:
        if sms_id != last_id:
            last_id = sms_id
            yield record, ranked[rank]


def month_days(
    store: Store, service: str, direction: Direction, year: int, month: int
) -> list[tuple[dt.date, list[StoredPart]]]:
    """The parts of a month, grouped by day, in day order."""
    by_day: dict[dt.date, list[StoredPart]] = {}
    for stored in list_parts(store, service, direction, year, month):
        by_day.setdefault(stored.part.day, []).append(stored)
    return sorted(by_day.items())


def day_clusters(parts: list[StoredPart]) -> list[list[StoredPart]]:
    """Split a day's parts into groups whose row spans overlap, in row order.

    The versions of one SMS share its creation instant, so parts whose (instant, id) spans do not
    overlap share no id: each group can be read on its own, and a group of one part needs no merge.
    Without spans for every part (older manifests), the whole day is one group.
    """
    spanned = [(stored.span, stored) for stored in parts if stored.span is not None]
    if len(spanned) != len(parts):
        return [parts]
    spanned.sort(key=lambda item: item[0][0])
    clusters: list[list[StoredPart]] = []
    end: tuple[dt.datetime, int] | None = None
    for (first, last), stored in spanned:
        if end is None or first > end:
            clusters.append([stored])
            end = last
        else:
            clusters[-1].append(stored)
            end = max(end, last)
    return clusters


def iter_records(store: Store, service: str, direction: Direction, year: int, month: int) -> Iterator[Record]:
    """Every archived record of a month, one per id (newest), by (creation instant, id)."""
    for _day, parts in month_days(store, service, direction, year, month):
        yield from iter_day_records(store, parts, direction)


def copy_part_body(store: Store, stored: StoredPart, output: BinaryIO, *, delimiter: str) -> bool:
    """Copy a part's data rows (its bytes after the header) to ``output``, if written with ``delimiter``.

    A part is sorted and holds each id once, so a day stored as one part needs no parsing at all.
    Returns False, having written nothing, when the part's delimiter differs.
    """
    stream = _open(store, stored)
    try:
        source: BinaryIO = gzip.GzipFile(fileobj=stream, mode="rb") if stored.part.compressed else stream  # type: ignore[assignment]
        header = source.readline()
        if header[2:3] != delimiter.encode():
            return False
        shutil.copyfileobj(source, output, 1 << 20)
        return True
    finally:
        stream.close()


@dataclass(frozen=True, slots=True)
class MonthSummary:
    """One archived month, as ``sms-archiver months`` shows it."""

    service: str
    direction: Direction
    month: str
    days: int
    parts: int
    bytes: int
    rows: int  # rows stored, from the manifest: an id archived twice (late status) counts twice


def summarize_months(store: Store, service: str, direction: Direction) -> list[MonthSummary]:
    """Parts, days, bytes and recorded rows of every archived month (one listing, one manifest a month)."""
    by_month: dict[tuple[int, int], list[StoredPart]] = {}
    for stored in list_parts(store, service, direction):
        by_month.setdefault((stored.part.day.year, stored.part.day.month), []).append(stored)
    summaries = []
    for (year, month), parts in sorted(by_month.items()):
        manifest = load_manifest(store, service, direction, year, month)
        rows = sum(manifest.parts[p.info.key].rows for p in parts if p.info.key in manifest.parts)
        summaries.append(
            MonthSummary(
                service,
                direction,
                f"{year:04d}-{month:02d}",
                days=len({p.part.day for p in parts}),
                parts=len(parts),
                bytes=sum(p.info.size for p in parts),
                rows=rows,
            )
        )
    return summaries
