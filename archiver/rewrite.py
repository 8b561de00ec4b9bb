"""Rewriting one day of the archive as one part, without a window of loss (compaction, erasure, purges).

A day's parts are merged into one (one row per id, the newest version, following the reader's rule:
a row whose id has a newer version in another day or month is dropped, and a row that is its id's
newest version is kept, whatever other days hold), optionally without the rows ``keep`` refuses, and
then, in this order:

1. the new part is written (its name comes from its content, with a ``-c`` suffix) and read back:
   SHA-256 and row count must match;
2. the month's manifest records it and marks the old parts ``superseded``;
3. the old parts are deleted, then dropped from the manifest.

A reader at any moment sees every kept record (old parts, new part, or both, deduplicated by id). A
crash at any step is repaired by running again: rewriting the same parts with the same rule gives
the same bytes, hence the same key. The new part, written last, holds only newest versions, so the
archive resolves every kept id as it did before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog

from archiver.config import ArchiveSettings
from archiver.csvfile import encode_rows
from archiver.errors import IntegrityError
from archiver.manifest import PartEntry, load_manifest, save_manifest
from archiver.naming import Direction
from archiver.reader import ArchiveParts, Resolution, StoredPart, check_part, iter_day_records
from archiver.records import COLUMNS, Record
from archiver.store import Store
from archiver.writer import put_part

__all__ = ["DayRewrite", "rewrite_day"]

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class DayRewrite:
    """What rewriting one day did: the new part (None: nothing of the day was kept) and the rows dropped."""

    entry: PartEntry | None
    dropped: int  # newest versions that ``keep`` refused (older versions superseded elsewhere not counted)


def rewrite_day(
    store: Store,
    settings: ArchiveSettings,
    service: str,
    direction: Direction,
    day: dt.date,
    parts: list[StoredPart],
    resolution: Resolution | None = None,
    keep: Callable[[Record], bool] | None = None,
) -> DayRewrite:
    """Merge one day's parts into one verified part, then remove the old ones (see module docstring).

    ``resolution`` covers the day's month (default: computed here) and learns about the new part.
    ``keep``: which of the day's newest versions stay (default: all of them).
    """
    if resolution is None:
        resolution = ArchiveParts(store, service, direction).resolution([(day.year, day.month)])
    ids: list[int] = []
    first: list[Record] = []  # the first and the last record, in row order
    last: list[Record] = []
    dropped = 0

    def rows(records: Iterator[Record]) -> Iterator[tuple[str, ...]]:
        nonlocal dropped
        for record in records:
            if keep is not None and not keep(record):
                dropped += 1
                continue
            ids.append(record.id)
            if not first:
                first.append(record)
            last[:] = [record]
            yield record.fields

    encoded = encode_rows(
        COLUMNS[direction],
        rows(iter_day_records(store, parts, direction, resolution)),
        delimiter=settings.delimiter,
        compress=settings.gzip,
    )
    entry: PartEntry | None = None
    if ids:
        entry = put_part(store, settings, service, direction, day, encoded, ids, (first[0], last[0]), compacted=True)
        _, _, problem = check_part(store, entry.key, direction, entry)
        if problem is not None:
            raise IntegrityError(f"rewritten part {entry.key} did not verify after writing: {problem.detail}")
    # else: nothing of the day stays (every row refused, or only older versions of SMS dated elsewhere).

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
        "day_rewritten",
        service=service,
        direction=direction,
        day=day.isoformat(),
        parts=len(parts),
        rows=encoded.rows,
        dropped=dropped,
    )
    return DayRewrite(entry, dropped)
