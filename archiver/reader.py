"""Reading the archive back: one row per id (its newest version), in the month and day of its own date.

Parts are sorted by (creation instant, id) inside, and a record's day folder follows from its
creation instant, so a month is read day by day with a k-way merge of that day's parts: memory
holds one row per open part, whatever the month's size.

The rule every reader follows (retrieve, verify, compaction, retention): **an id's newest version
is the row of the part written last that holds it** (``StoredPart.version``), and it is the only
row of that id, wherever the others sit. Versions usually share their creation instant, so they
meet in the merge; but a version may carry another instant (the export's zone-less ``date`` read
in another zone, or the send time taken for the creation time: UNKNOWN, see the OVH API notes,
"CSV history export"), and then sit in another day or month. ``Resolution`` finds those:

- two versions of an id lie in two parts whose id ranges (in their names) both contain it, so a
  part whose id range overlaps no other part's, in any month of the service and direction, holds
  no id stored elsewhere and is read (or byte-copied) as it is;
- the parts of each group of overlapping id ranges that touches the months read are scanned once
  for their ids (ids only); each id stored in several parts is given to the part written last,
  and every other row of it is dropped, in whichever month or day it sits.

Memory: one entry per row of the largest group of overlapping parts while it is scanned, then one
per id stored more than once.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import heapq
import io
import itertools
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from archiver.csvfile import read_rows
from archiver.errors import IntegrityError, StorageError
from archiver.manifest import PartEntry, load_manifest, parse_row_key
from archiver.naming import DIRECTIONS, Direction
from archiver.records import COLUMNS, Record, record_from_row
from archiver.store import ObjectInfo, Store
from archiver.store.layout import PartKey, month_prefix, parse_part_key, service_prefix

__all__ = [
    "ArchiveParts",
    "MonthSummary",
    "Resolution",
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
    "resolved_copies",
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

    @property
    def id_range(self) -> tuple[int, int]:
        """The smallest and largest id the part holds (from its name: ``{first}-{last}-{digest}``)."""
        return _id_range(self.part)


def _id_range(part: PartKey) -> tuple[int, int]:
    first, last, _digest = part.name.split("-", 2)
    return int(first), int(last)


def list_parts(
    store: Store, service: str, direction: Direction, year: int | None = None, month: int | None = None
) -> list[StoredPart]:
    """The data parts of one month (or of every month), in key order; other objects are skipped."""
    prefix = (
        month_prefix(service, direction, year, month)
        if year is not None and month is not None
        else service_prefix(service, direction)
    )
    listed = _listed_parts(store, prefix, service, direction)
    recorded: dict[tuple[int, int], dict[str, PartEntry]] = {}
    for _info, part in listed:
        month_key = (part.day.year, part.day.month)
        if month_key not in recorded:
            recorded[month_key] = load_manifest(store, service, direction, *month_key).parts
    return [_stored_part(info, part, recorded[(part.day.year, part.day.month)]) for info, part in listed]


def _listed_parts(store: Store, prefix: str, service: str, direction: Direction) -> list[tuple[ObjectInfo, PartKey]]:
    listed = []
    for info in store.list(prefix):
        part = parse_part_key(info.key)
        if part is not None and part.service == service and part.direction == direction:
            listed.append((info, part))
    return listed


def _stored_part(info: ObjectInfo, part: PartKey, recorded: dict[str, PartEntry]) -> StoredPart:
    entry = recorded.get(info.key)
    if entry is None:
        return StoredPart(info, part, info.last_modified)
    first, last = parse_row_key(entry.first_row), parse_row_key(entry.last_row)
    span = (first, last) if first is not None and last is not None else None
    return StoredPart(info, part, dt.datetime.fromisoformat(entry.written_at), entry.rows, span)


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


@dataclass(slots=True)
class Resolution:
    """Which part holds the newest version of each id stored in more than one part (see module docstring).

    An id absent from ``winners`` is stored in one part only (or only in parts not looked at).
    """

    winners: dict[int, str] = field(default_factory=dict)  # id -> key of the part with its newest version
    losing: dict[str, int] = field(default_factory=dict)  # part key -> its rows that a newer version supersedes
    unreadable: set[str] = field(default_factory=set)  # parts skipped (``strict=False``): verify reports them

    def keeps(self, sms_id: int, stored: StoredPart) -> bool:
        """Whether this part's row of ``sms_id`` is the id's newest version."""
        winner = self.winners.get(sms_id)
        return winner is None or winner == stored.info.key

    def whole(self, stored: StoredPart) -> bool:
        """Whether every row of the part is its id's newest version (the part may be copied as it is)."""
        return stored.info.key not in self.losing

    def replaced(self, old_keys: set[str], new_key: str) -> None:
        """Compaction wrote ``new_key`` with the winning rows of ``old_keys``: the winners moved there."""
        for sms_id, key in self.winners.items():
            if key in old_keys:
                self.winners[sms_id] = new_key
        for key in old_keys:
            self.losing.pop(key, None)

    def add_group(self, store: Store, parts: list[StoredPart], direction: Direction, *, strict: bool) -> None:
        """Scan the ids of a group of parts whose id ranges overlap; the part written last wins each id."""
        by_part: list[tuple[str, list[int]]] = []
        for stored in sorted(parts, key=lambda stored: stored.version):
            try:
                by_part.append((stored.info.key, _part_ids(store, stored, direction)))
            except KeyError:
                continue  # deleted since the listing (compaction): its rows live on in the compacted part
            except (IntegrityError, StorageError):
                if strict:
                    raise
                self.unreadable.add(stored.info.key)
        counts = Counter(itertools.chain.from_iterable(ids for _key, ids in by_part))
        stored_twice = {sms_id for sms_id, count in counts.items() if count > 1}
        if not stored_twice:
            return  # the usual case: ranges overlap, ids do not
        holder: dict[int, str] = {}  # id -> the newest part seen so far that holds it
        for key, ids in by_part:  # oldest first
            for sms_id in stored_twice.intersection(ids):
                previous = holder.get(sms_id)
                if previous is not None:
                    self.losing[previous] = self.losing.get(previous, 0) + 1
                holder[sms_id] = key
        self.winners.update(holder)


def _part_ids(store: Store, stored: StoredPart, direction: Direction) -> list[int]:
    """The ids of a part's rows (their first field)."""
    key = stored.info.key
    if stored.info.size < _READ_WHOLE_BELOW and stored.rows is not None:
        data = store.get(key)
        try:
            if stored.part.compressed:
                data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise IntegrityError(f"{key}: unreadable ({error})") from None
        ids = _scanned_ids(data, COLUMNS[direction][0])
        if ids is not None and len(ids) == stored.rows:
            return ids
    stream = _open(store, stored)
    try:
        binary: BinaryIO = gzip.GzipFile(fileobj=stream, mode="rb") if stored.part.compressed else stream  # type: ignore[assignment]
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        header = text.readline()
        if not header.startswith(COLUMNS[direction][0]) or header[2:3] in ("", "\r", "\n", '"'):
            raise IntegrityError(f"{key}: unexpected header {header[:80]!r}")
        return [int(row[0]) for row in csv.reader(text, delimiter=header[2:3], quotechar='"', strict=True)]
    except (csv.Error, UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError, ValueError, IndexError) as error:
        raise IntegrityError(f"{key}: unreadable ids ({error})") from None
    finally:
        stream.close()


def _scanned_ids(data: bytes, first_column: str) -> list[int] | None:
    """The ids of a part's bytes without a CSV parse: each row starts after a line end outside quotes.

    Parts are written with ``\\r\\n`` line ends and quotes only around fields (doubled inside), so
    a line end is a row's end exactly when the quotes before it are even in number. The caller
    checks the count against the manifest's and parses the CSV if it differs (None: no header).
    """
    header = first_column.encode()
    if not data.startswith(header) or len(data) <= len(header):
        return None
    delimiter = data[len(header) : len(header) + 1]
    ids = []
    quotes = 0
    last = 0
    for match in re.finditer(rb"\r\n([0-9]+)" + re.escape(delimiter), data):
        start = match.start()
        quotes += data.count(b'"', last, start)
        last = start
        if not quotes % 2:
            ids.append(int(match[1]))
    return ids


class ArchiveParts:
    """The parts of one service and direction: listed once; a month's manifest read once, when needed."""

    def __init__(self, store: Store, service: str, direction: Direction) -> None:
        self.store = store
        self.service = service
        self.direction = direction
        self._listed: dict[tuple[int, int], list[tuple[ObjectInfo, PartKey]]] = {}
        for info, part in _listed_parts(store, service_prefix(service, direction), service, direction):
            self._listed.setdefault((part.day.year, part.day.month), []).append((info, part))
        self._parts: dict[tuple[int, int], list[StoredPart]] = {}

    def months(self) -> list[tuple[int, int]]:
        """Months that hold parts, in order."""
        return sorted(self._listed)

    def parts(self, year: int, month: int) -> list[StoredPart]:
        """The parts of one month, in key order, with what its manifest recorded about them."""
        if (year, month) not in self._parts:
            listed = self._listed.get((year, month), [])
            recorded = load_manifest(self.store, self.service, self.direction, year, month).parts if listed else {}
            self._parts[(year, month)] = [_stored_part(info, part, recorded) for info, part in listed]
        return self._parts[(year, month)]

    def days(self, year: int, month: int) -> list[tuple[dt.date, list[StoredPart]]]:
        """The parts of a month, grouped by day, in day order."""
        by_day: dict[dt.date, list[StoredPart]] = {}
        for stored in self.parts(year, month):
            by_day.setdefault(stored.part.day, []).append(stored)
        return sorted(by_day.items())

    def resolution(self, months: Iterable[tuple[int, int]] | None = None, *, strict: bool = True) -> Resolution:
        """Resolve every id of ``months`` (default: all) stored more than once, wherever its versions sit.

        Only groups of parts with overlapping id ranges that include a part of ``months`` are read
        (ids only); other months' manifests are read only for such groups. ``strict=False`` skips an
        unreadable part (noted in ``unreadable``) instead of raising ``IntegrityError``.
        """
        wanted = set(self._listed) if months is None else set(months)
        ranges = [(part, (info, month_key)) for month_key, listed in self._listed.items() for info, part in listed]
        resolution = Resolution()
        for group in _overlapping_keys(ranges):
            if len(group) < 2 or not any(month_key in wanted for _info, month_key in group):
                continue
            keys = {info.key for info, _month in group}
            parts = [stored for month_key in {m for _i, m in group} for stored in self.parts(*month_key)]
            resolution.add_group(
                self.store, [stored for stored in parts if stored.info.key in keys], self.direction, strict=strict
            )
        return resolution


def _overlapping_keys(
    ranges: list[tuple[PartKey, tuple[ObjectInfo, tuple[int, int]]]],
) -> list[list[tuple[ObjectInfo, tuple[int, int]]]]:
    """Group listed parts whose id ranges overlap, transitively (the range is in the name: no manifest read).

    A part alone in its group shares no id with any other part.
    """
    groups: list[list[tuple[ObjectInfo, tuple[int, int]]]] = []
    end = -1
    for part, item in sorted(ranges, key=lambda entry: _id_range(entry[0])):
        first, last = _id_range(part)
        if groups and first <= end:
            groups[-1].append(item)
            end = max(end, last)
        else:
            groups.append([item])
            end = last
    return groups


def _ranked_records(
    store: Store, stored: StoredPart, direction: Direction, rank: int
) -> Iterator[tuple[dt.datetime, int, int, Record]]:
    # A function, not a generator expression in a comprehension: there ``rank`` would be bound late,
    # every stream would carry the last rank, and the source part reported would be the oldest one.
    for record in _part_records(store, stored, direction):
        yield record.created, record.id, rank, record


def iter_day_records(
    store: Store, parts: list[StoredPart], direction: Direction, resolution: Resolution
) -> Iterator[Record]:
    """Merge one day's parts: one record per id (newest version), by (creation instant, id)."""
    for record, _source in iter_day_sources(store, parts, direction, resolution):
        yield record


def iter_day_sources(
    store: Store, parts: list[StoredPart], direction: Direction, resolution: Resolution
) -> Iterator[tuple[Record, StoredPart]]:
    """Like ``iter_day_records``, with the part each record's newest version comes from.

    ``resolution`` must cover these parts (``ArchiveParts.resolution`` of their month): it drops the
    rows of ids whose newest version is elsewhere, in another day or month.
    """
    if not parts:
        return
    # Rank 0 is the newest part: on equal (instant, id) the merge yields it first.
    ranked = sorted(parts, key=lambda stored: stored.version, reverse=True)
    streams = [_ranked_records(store, stored, direction, rank) for rank, stored in enumerate(ranked)]
    merged = heapq.merge(*streams, key=lambda item: item[:3]) if len(streams) > 1 else streams[0]
    last_id: int | None = None
    for _created, sms_id, rank, record in merged:
        if not resolution.keeps(sms_id, ranked[rank]):
            continue  # a newer version of this id is stored elsewhere, maybe in another day or month
        if sms_id != last_id:
            last_id = sms_id
            yield record, ranked[rank]


def resolved_copies(
    store: Store,
    service: str,
    direction: Direction,
    wanted: Iterable[int],
    months: Iterable[tuple[int, int]] | None = None,
) -> Iterator[tuple[Record, StoredPart]]:
    """The newest archived version of each wanted id, with its part; newest month first.

    ``months`` limits where to look (default: every month); an id whose newest version moved out
    of them is still found there. Stops reading once every wanted id is found.
    """
    index = ArchiveParts(store, service, direction)
    chosen = sorted(set(index.months()) & set(months if months is not None else index.months()), reverse=True)
    resolution = index.resolution(chosen)
    remaining = set(wanted)

    def scan(year: int, month: int, resolution: Resolution) -> Iterator[tuple[Record, StoredPart]]:
        for _day, parts in index.days(year, month):
            for record, stored in iter_day_sources(store, parts, direction, resolution):
                if record.id in remaining:
                    remaining.discard(record.id)
                    yield record, stored

    for year, month in chosen:
        if not remaining:
            return
        yield from scan(year, month, resolution)
    # Newest versions whose date moved out of the months given (their losers were in them).
    elsewhere = {
        (part.day.year, part.day.month)
        for sms_id in remaining
        if sms_id in resolution.winners and (part := parse_part_key(resolution.winners[sms_id])) is not None
    } - set(chosen)
    if elsewhere:
        resolution = index.resolution(elsewhere)
    for year, month in sorted(elsewhere, reverse=True):
        yield from scan(year, month, resolution)


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
    """Every archived record of a month, one per id (newest, and only if its newest version is dated
    in this month), by (creation instant, id)."""
    index = ArchiveParts(store, service, direction)
    resolution = index.resolution([(year, month)])
    for _day, parts in index.days(year, month):
        yield from iter_day_records(store, parts, direction, resolution)


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
