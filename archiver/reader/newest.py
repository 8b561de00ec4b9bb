"""The newest version of each id: which part holds it, and the records of a day merged one row per id.

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
  and every other row of it is dropped, in whichever month or day it sits. A group whose parts all
  lie in one day may instead be settled when that day is read, from the ids read then
  (``Resolution.deferred``, ``day_bytes.day_chunks``): the same rule, the day read once instead of twice.

Memory: one entry per row of the largest group of overlapping parts while it is scanned, then one
per id stored more than once.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import gzip
import heapq
import io
import itertools
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from archiver.csvfile import read_rows
from archiver.errors import IntegrityError, StorageError
from archiver.manifest import load_manifest
from archiver.naming import Direction
from archiver.reader.parts import (
    READ_WHOLE_BELOW,
    StoredPart,
    id_range,
    listed_parts,
    open_part,
    overlapping_groups,
    stored_part,
)
from archiver.reader.rows import scanned_ids
from archiver.records import COLUMNS, Record, record_from_row
from archiver.store import ObjectInfo, Store
from archiver.store.layout import PartKey, parse_part_key, service_prefix

__all__ = [
    "ArchiveParts",
    "Resolution",
    "iter_day_records",
    "iter_day_sources",
    "iter_records",
    "part_records",
    "resolved_copies",
]


def part_records(store: Store, stored: StoredPart, direction: Direction) -> Iterator[Record]:
    """Every row of one part (every version it holds), as records, in row order."""
    stream = open_part(store, stored)
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
    ``deferred``: groups of overlapping parts that all lie in one day, left unscanned for the reader
    of that day to settle from the ids it reads anyway (``ArchiveParts.resolution(defer_days=True)``);
    ``keeps`` and ``whole`` speak of a part only once its group is settled.
    """

    winners: dict[int, str] = field(default_factory=dict)  # id -> key of the part with its newest version
    losing: dict[str, int] = field(default_factory=dict)  # part key -> its rows that a newer version supersedes
    unreadable: set[str] = field(default_factory=set)  # parts skipped (``strict=False``): verify reports them
    deferred: dict[str, list[StoredPart]] = field(default_factory=dict)  # part key -> its (unscanned) group
    strict: bool = True  # what ``settle`` does with an unreadable part: raise, or note it in ``unreadable``

    def keeps(self, sms_id: int, stored: StoredPart) -> bool:
        """Whether this part's row of ``sms_id`` is the id's newest version."""
        winner = self.winners.get(sms_id)
        return winner is None or winner == stored.info.key

    def whole(self, stored: StoredPart) -> bool:
        """Whether every row of the part is its id's newest version (the part may be copied as it is)."""
        return stored.info.key not in self.losing and stored.info.key not in self.deferred

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
        self._resolve(by_part)

    def settle(
        self,
        store: Store,
        parts: Iterable[StoredPart],
        direction: Direction,
        ids: Mapping[str, list[int]] | None = None,
        *,
        distinct: Collection[str] = (),
    ) -> None:
        """Resolve the deferred groups that hold one of ``parts``: from ``ids`` (a part's ids, in its
        row order) when it has every part of the group, else by scanning them (``add_group``).

        ``distinct``: parts the caller read and found to hold no id twice, even across them: a group
        made of them only has nothing to resolve (its ids need not be given).
        """
        for stored in parts:
            group = self.deferred.get(stored.info.key)
            if group is None:
                continue
            for member in group:
                self.deferred.pop(member.info.key, None)
            if all(member.info.key in distinct for member in group):
                continue
            if ids is not None and all(member.info.key in ids for member in group):
                ordered = sorted(group, key=lambda member: member.version)
                self._resolve([(member.info.key, ids[member.info.key]) for member in ordered])
            else:
                self.add_group(store, group, direction, strict=self.strict)

    def _resolve(self, by_part: list[tuple[str, list[int]]]) -> None:
        """``by_part``: each part's ids, oldest part first; an id stored twice goes to the newest."""
        if sum(len(ids) for _key, ids in by_part) == len(set().union(*(ids for _key, ids in by_part))):
            return  # the usual case: ranges overlap, ids do not
        counts = Counter(itertools.chain.from_iterable(ids for _key, ids in by_part))
        stored_twice = {sms_id for sms_id, count in counts.items() if count > 1}
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
    if stored.info.size < READ_WHOLE_BELOW and stored.rows is not None:
        data = store.get(key)
        try:
            if stored.part.compressed:
                data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise IntegrityError(f"{key}: unreadable ({error})") from None
        ids = scanned_ids(data, COLUMNS[direction][0], stored.rows)
        if ids is not None:
            return ids
    stream = open_part(store, stored)
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


class ArchiveParts:
    """The parts of one service and direction: listed once; a month's manifest read once, when needed."""

    def __init__(self, store: Store, service: str, direction: Direction) -> None:
        self.store = store
        self.service = service
        self.direction = direction
        self._listed: dict[tuple[int, int], list[tuple[ObjectInfo, PartKey]]] = {}
        for info, part in listed_parts(store, service_prefix(service, direction), service, direction):
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
            self._parts[(year, month)] = [stored_part(info, part, recorded) for info, part in listed]
        return self._parts[(year, month)]

    def days(self, year: int, month: int) -> list[tuple[dt.date, list[StoredPart]]]:
        """The parts of a month, grouped by day, in day order."""
        by_day: dict[dt.date, list[StoredPart]] = {}
        for stored in self.parts(year, month):
            by_day.setdefault(stored.part.day, []).append(stored)
        return sorted(by_day.items())

    def holding(self, ids: Iterable[int]) -> list[StoredPart]:
        """The parts that may hold one of ``ids``: those whose id range (in their name) contains one.

        Only the months of such parts have their manifest read; other months are not touched.
        """
        wanted = sorted(set(ids))
        months = {
            month_key
            for month_key, listed in self._listed.items()
            for _info, part in listed
            if _holds_one_of(wanted, *id_range(part))
        }
        return [
            stored
            for month_key in sorted(months)
            for stored in self.parts(*month_key)
            if _holds_one_of(wanted, *stored.id_range)
        ]

    def resolution(
        self, months: Iterable[tuple[int, int]] | None = None, *, strict: bool = True, defer_days: bool = False
    ) -> Resolution:
        """Resolve every id of ``months`` (default: all) stored more than once, wherever its versions sit.

        Only groups of parts with overlapping id ranges that include a part of ``months`` are read
        (ids only); other months' manifests are read only for such groups. ``strict=False`` skips an
        unreadable part (noted in ``unreadable``) instead of raising ``IntegrityError``.
        ``defer_days``: a group whose parts all lie in one day is not scanned here but left in
        ``deferred``, for the reader of that day to settle (``Resolution.settle``) with the ids it reads
        anyway: a month is then read once, not twice.
        """
        wanted = set(self._listed) if months is None else set(months)
        resolution = Resolution(strict=strict)
        for group in overlapping_groups(item for listed in self._listed.values() for item in listed):
            months_of_group = {(part.day.year, part.day.month) for _info, part in group}
            if len(group) < 2 or not months_of_group & wanted:
                continue
            keys = {info.key for info, _part in group}
            parts = [stored for month_key in months_of_group for stored in self.parts(*month_key)]
            members = [stored for stored in parts if stored.info.key in keys]
            if defer_days and len({part.day for _info, part in group}) == 1:
                resolution.deferred.update((stored.info.key, members) for stored in members)
                continue
            resolution.add_group(self.store, members, self.direction, strict=strict)
        return resolution


def _holds_one_of(wanted: list[int], first: int, last: int) -> bool:
    """Whether the sorted ``wanted`` has an id in ``[first, last]``."""
    index = bisect.bisect_left(wanted, first)
    return index < len(wanted) and wanted[index] <= last


def _ranked_records(
    store: Store, stored: StoredPart, direction: Direction, rank: int
) -> Iterator[tuple[dt.datetime, int, int, Record]]:
    # A function, not a generator expression in a comprehension: there ``rank`` would be bound late,
    # every stream would carry the last rank, and the source part reported would be the oldest one.
    for record in part_records(store, stored, direction):
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
    resolution.settle(store, parts, direction)
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


def iter_records(store: Store, service: str, direction: Direction, year: int, month: int) -> Iterator[Record]:
    """Every archived record of a month, one per id (newest, and only if its newest version is dated
    in this month), by (creation instant, id)."""
    index = ArchiveParts(store, service, direction)
    resolution = index.resolution([(year, month)])
    for _day, parts in index.days(year, month):
        yield from iter_day_records(store, parts, direction, resolution)
