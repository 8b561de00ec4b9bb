"""Writing the archive: records encoded as a CSV part under a content-derived key, and its manifest entry.

Every part in the bucket is written here (an archive cycle's, a backfill's, a compaction's, the copies
retention makes before deleting), so the key rule, the object metadata and the manifest entry cannot
drift apart. A part is immutable and named after its content: writing the same rows twice writes the
same key (docs/architecture.md, Invariants).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import structlog

from archiver.config import ArchiveSettings
from archiver.csvfile import EncodedPart, encode_rows
from archiver.manifest import PartEntry, row_key
from archiver.naming import Direction
from archiver.records import COLUMNS, Record
from archiver.store import Store
from archiver.store.layout import part_key, part_name

__all__ = ["put_part", "write_parts"]

log = structlog.get_logger()


def put_part(
    store: Store,
    settings: ArchiveSettings,
    service: str,
    direction: Direction,
    day: dt.date,
    encoded: EncodedPart,
    ids: list[int],
    span: tuple[Record, Record],
    *,
    compacted: bool = False,
) -> PartEntry:
    """Write one encoded part under its content-derived key; return its manifest entry.

    ``span``: the part's first and last records in row order.
    """
    name = part_name(min(ids), max(ids), encoded.sha256, compacted=compacted)
    key = part_key(service, direction, day, name, compressed=settings.gzip)
    # The delimiter is not metadata: readers take it from the header (S3 trims a tab from headers).
    store.put(key, encoded.data, metadata={"sha256": encoded.sha256, "rows": str(encoded.rows)}, lock=True)
    log.debug("part_written", key=key, rows=encoded.rows, bytes=len(encoded.data))
    return PartEntry(
        key=key,
        sha256=encoded.sha256,
        rows=encoded.rows,
        size=len(encoded.data),
        first_id=min(ids),
        last_id=max(ids),
        written_at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        first_row=row_key(span[0].created, span[0].id),
        last_row=row_key(span[1].created, span[1].id),
    )


def write_parts(
    store: Store, settings: ArchiveSettings, service: str, direction: Direction, records: Iterable[Record]
) -> list[PartEntry]:
    """Write records as one part per day (in the archive's zone); return the manifest entries.

    Each part is written in full before the next; a failure raises before anything is recorded.
    """
    zone = settings.zone
    by_day: dict[dt.date, list[Record]] = {}
    for record in records:
        by_day.setdefault(record.created.astimezone(zone).date(), []).append(record)
    entries: list[PartEntry] = []
    for day, day_records in sorted(by_day.items()):
        day_records.sort(key=lambda record: (record.created, record.id))
        encoded = encode_rows(
            COLUMNS[direction],
            (record.fields for record in day_records),
            delimiter=settings.delimiter,
            compress=settings.gzip,
        )
        ids = [record.id for record in day_records]
        span = (day_records[0], day_records[-1])
        entries.append(put_part(store, settings, service, direction, day, encoded, ids, span))
    return entries
