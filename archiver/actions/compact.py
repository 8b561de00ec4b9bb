"""Compaction: once a day can no longer change, merge its parts into one, without a window of loss.

A day is settled once it ended more than ``settle + lookback`` ago (plus a day of margin): no cycle
writes into it any more. Its parts are merged (one row per id, the newest version, following the
reader's rule: a row whose id has a newer version in another day or month is dropped, and a row
that is its id's newest version is kept, whatever other days hold), and then, in this order:

1. the merged part is written (its name comes from its content, with a ``-c`` suffix) and read
   back: SHA-256 and row count must match;
2. the month's manifest records it and marks the old parts ``superseded``;
3. the old parts are deleted, then dropped from the manifest.

A reader at any moment sees every record (old parts, new part, or both, deduplicated by id). A
crash at any step is repaired by the next run: merging the same parts again gives the same bytes,
hence the same key. The merged part, written last, holds only newest versions, so the archive
resolves every id as it did before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog

from archiver.config import Settings
from archiver.csvfile import encode_rows
from archiver.errors import IntegrityError
from archiver.manifest import PartEntry, load_manifest, save_manifest
from archiver.naming import Direction
from archiver.reader import ArchiveParts, Resolution, StoredPart, check_part, iter_day_records
from archiver.records import COLUMNS, Record
from archiver.services import services_to_maintain
from archiver.store import Store
from archiver.store.lease import Lease
from archiver.writer import put_part

__all__ = ["CompactReport", "compact_day", "run_compact", "settled_before"]

log = structlog.get_logger()


@dataclass(slots=True)
class CompactReport:
    """What one compaction run did."""

    days_compacted: int = 0
    parts_merged: int = 0
    parts_deleted: int = 0
    rows: int = 0
    days: list[str] = field(default_factory=list)


def settled_before(settings: Settings, now: dt.datetime) -> dt.date:
    """The first day that may still change; every earlier day is settled."""
    horizon = now - dt.timedelta(seconds=settings.archive.settle_seconds, hours=settings.archive.lookback_hours, days=1)
    return horizon.astimezone(settings.archive.zone).date()


def compact_day(
    settings: Settings,
    store: Store,
    service: str,
    direction: Direction,
    day: dt.date,
    parts: list[StoredPart],
    resolution: Resolution | None = None,
) -> PartEntry | None:
    """Merge one day's parts into one verified part, then remove the old ones (see module docstring).

    ``resolution`` covers the day's month (default: computed here) and learns about the new part.
    Returns None when every row of the day has a newer version elsewhere: the parts are removed.
    """
    if resolution is None:
        resolution = ArchiveParts(store, service, direction).resolution([(day.year, day.month)])
    ids: list[int] = []
    first: list[Record] = []  # the first and the last record, in row order
    last: list[Record] = []

    def rows(records: Iterator[Record]) -> Iterator[tuple[str, ...]]:
        for record in records:
            ids.append(record.id)
            if not first:
                first.append(record)
            last[:] = [record]
            yield record.fields

    encoded = encode_rows(
        COLUMNS[direction],
        rows(iter_day_records(store, parts, direction, resolution)),
        delimiter=settings.archive.delimiter,
        compress=settings.archive.gzip,
    )
    entry: PartEntry | None = None
    if ids:
        entry = put_part(
            store, settings.archive, service, direction, day, encoded, ids, (first[0], last[0]), compacted=True
        )
        _, _, problem = check_part(store, entry.key, direction, entry)
        if problem is not None:
            raise IntegrityError(f"compacted part {entry.key} did not verify after writing: {problem.detail}")
    # else: the day held only older versions of SMS whose newest version is dated elsewhere.

    old_keys = {stored.info.key for stored in parts} - ({entry.key} if entry else set())
    manifest = load_manifest(store, service, direction, day.year, day.month)
    if entry is not None:
        manifest.parts[entry.key] = entry
    for old in old_keys:
        manifest.parts.pop(old, None)
    manifest.superseded |= old_keys
    save_manifest(store, manifest)
    if entry is not None:
        resolution.replaced(old_keys, entry.key)
    for old in sorted(old_keys):
        store.delete(old)
    manifest.superseded -= old_keys
    save_manifest(store, manifest)
    log.debug(
        "day_compacted", service=service, direction=direction, day=day.isoformat(), parts=len(parts), rows=encoded.rows
    )
    return entry


def run_compact(settings: Settings, store: Store, *, now: dt.datetime | None = None) -> CompactReport:
    """Merge the parts of every settled day that has more than one, for every service and direction."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = settled_before(settings, now)
    report = CompactReport()
    services = services_to_maintain(settings.ovh, store)
    for service in services:
        with Lease.on_service(store, service, settings.lease) as lease:
            for direction in settings.archive.directions:
                index = ArchiveParts(store, service, direction)
                by_day: dict[dt.date, list[StoredPart]] = {}
                for year, month in index.months():
                    for day, parts in index.days(year, month):
                        if day < cutoff and len(parts) >= 2:  # one part already: nothing to merge
                            by_day[day] = parts
                resolution = index.resolution(sorted({(day.year, day.month) for day in by_day}))
                for day, parts in sorted(by_day.items()):
                    entry = compact_day(settings, store, service, direction, day, parts, resolution)
                    new_key = entry.key if entry else None
                    report.days_compacted += 1
                    report.parts_merged += len(parts)
                    report.parts_deleted += sum(1 for stored in parts if stored.info.key != new_key)
                    report.rows += entry.rows if entry else 0
                    report.days.append(f"{service}/{direction}/{day.isoformat()}")
                    lease.renew_if_due()
    return report
