"""The parts of the archive: listed, grouped by month and day, opened, summarised.

A part is immutable and named after its content (docs/architecture.md, Object layout); what the listing
cannot tell (when it was written, its rows, its first and last row) comes from its month's manifest.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from archiver.manifest import PartEntry, load_manifest, parse_row_key
from archiver.naming import Direction
from archiver.store import ObjectInfo, Store
from archiver.store.layout import PartKey, month_prefix, parse_month_key, parse_part_key, service_of_key, service_prefix

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "MonthSummary",
    "StoredPart",
    "archived_months",
    "archived_services",
    "copy_part_body",
    "day_clusters",
    "id_range",
    "list_parts",
    "listed_parts",
    "month_days",
    "open_part",
    "overlapping_groups",
    "stored_part",
    "summarize_months",
]

# Parts smaller than this are read whole: fewer open connections when a day has many small parts.
READ_WHOLE_BELOW = 8 * 1024 * 1024


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
    entry: PartEntry | None = None  # the manifest's entry, to check the part against (None: not recorded)

    @property
    def version(self) -> tuple[dt.datetime, bool, str]:
        """Orders the versions of a row: the part written last wins; a compacted part wins a tie."""
        return (self.written, self.part.name.endswith("-c"), self.info.key)

    @property
    def id_range(self) -> tuple[int, int]:
        """The smallest and largest id the part holds (from its name: ``{first}-{last}-{digest}``)."""
        return id_range(self.part)


def id_range(part: PartKey) -> tuple[int, int]:
    first, last, _digest = part.name.split("-", 2)
    return int(first), int(last)


def overlapping_groups(listed: Iterable[tuple[ObjectInfo, PartKey]]) -> list[list[tuple[ObjectInfo, PartKey]]]:
    """Group listed parts whose id ranges overlap, transitively (the range is in the name: no manifest read).

    A part alone in its group shares no id with any other part: the reader resolves ids stored twice
    group by group, and the history browser's index knows which months a changed part may touch.
    """
    groups: list[list[tuple[ObjectInfo, PartKey]]] = []
    end = -1
    for item in sorted(listed, key=lambda item: id_range(item[1])):
        first, last = id_range(item[1])
        if groups and first <= end:
            groups[-1].append(item)
            end = max(end, last)
        else:
            groups.append([item])
            end = last
    return groups


def list_parts(
    store: Store, service: str, direction: Direction, year: int | None = None, month: int | None = None
) -> list[StoredPart]:
    """The data parts of one month (or of every month), in key order; other objects are skipped."""
    prefix = (
        month_prefix(service, direction, year, month)
        if year is not None and month is not None
        else service_prefix(service, direction)
    )
    listed = listed_parts(store, prefix, service, direction)
    recorded: dict[tuple[int, int], dict[str, PartEntry]] = {}
    for _info, part in listed:
        month_key = (part.day.year, part.day.month)
        if month_key not in recorded:
            recorded[month_key] = load_manifest(store, service, direction, *month_key).parts
    return [stored_part(info, part, recorded[(part.day.year, part.day.month)]) for info, part in listed]


def listed_parts(store: Store, prefix: str, service: str, direction: Direction) -> list[tuple[ObjectInfo, PartKey]]:
    listed = []
    for info in store.list(prefix):
        part = parse_part_key(info.key)
        if part is not None and part.service == service and part.direction == direction:
            listed.append((info, part))
    return listed


def stored_part(info: ObjectInfo, part: PartKey, recorded: dict[str, PartEntry]) -> StoredPart:
    entry = recorded.get(info.key)
    if entry is None:
        return StoredPart(info, part, info.last_modified)
    first, last = parse_row_key(entry.first_row), parse_row_key(entry.last_row)
    span = (first, last) if first is not None and last is not None else None
    return StoredPart(info, part, dt.datetime.fromisoformat(entry.written_at), entry.rows, span, entry)


def archived_services(store: Store) -> list[str]:
    """Services the archive holds: folders ``{service}/{direction}/year=...``, and cursors or leases in ``_state/``.

    The data folders count on their own: a ``backfill`` writes parts and manifests but no cursor.
    The store offers no folder listing, so this reads every key once.
    """
    return sorted({name for info in store.list("") if (name := service_of_key(info.key)) is not None})


def archived_months(store: Store, service: str, direction: Direction) -> list[tuple[int, int]]:
    """Months that hold parts or a manifest (a month whose parts are all gone still has its manifest)."""
    months = set()
    for info in store.list(service_prefix(service, direction)):
        located = parse_month_key(info.key)
        if located is not None:
            months.add((located[2], located[3]))
    return sorted(months)


def open_part(store: Store, stored: StoredPart) -> BinaryIO:
    if stored.info.size < READ_WHOLE_BELOW:
        return io.BytesIO(store.get(stored.info.key))
    return store.open(stored.info.key)


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


def copy_part_body(store: Store, stored: StoredPart, output: SupportsWrite[bytes], *, delimiter: str) -> bool:
    """Copy a part's data rows (its bytes after the header) to ``output``, if written with ``delimiter``.

    A part is sorted and holds each id once, so a day stored as one part needs no parsing at all.
    Returns False, having written nothing, when the part's delimiter differs.
    """
    stream = open_part(store, stored)
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
