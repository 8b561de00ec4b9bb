"""One SMS with every archived version of it: what each said, when it was archived, and from which part.

The versions are the rows of that id in every part whose id range (in its name) contains it; which
one counts is the reader's decision (``resolved_copies``), never re-decided here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from archiver.naming import Direction
from archiver.reader import Resolution, StoredPart, iter_day_sources, list_parts, resolved_copies
from archiver.records import COLUMNS
from archiver.store import Store

__all__ = ["Version", "sms_versions"]


@dataclass(frozen=True, slots=True)
class Version:
    fields: dict[str, str]
    part: str  # the key of the part the row was read from
    archived_at: dt.datetime  # when that part was written
    current: bool  # the newest version: the one every reader returns

    def as_json(self) -> dict[str, object]:
        return {
            "fields": self.fields,
            "part": self.part,
            "archived_at": self.archived_at.isoformat(),
            "current": self.current,
        }


def _row_in(store: Store, stored: StoredPart, direction: Direction, sms_id: int) -> tuple[str, ...] | None:
    # An empty resolution keeps every row of the part: each id appears once in a part.
    for record, _part in iter_day_sources(store, [stored], direction, Resolution()):
        if record.id == sms_id:
            return record.fields
    return None


def sms_versions(store: Store, service: str, direction: Direction, sms_id: int) -> list[Version]:
    """Every archived version of one SMS, oldest first (empty if the archive has none)."""
    candidates = [stored for stored in list_parts(store, service, direction) if _holds(stored, sms_id)]
    found = [(stored, row) for stored in candidates if (row := _row_in(store, stored, direction, sms_id)) is not None]
    if not found:
        return []
    months = {(stored.part.day.year, stored.part.day.month) for stored, _row in found}
    newest = next(iter(resolved_copies(store, service, direction, [sms_id], months)), None)
    current_key = newest[1].info.key if newest is not None else None
    columns = COLUMNS[direction]
    return [
        Version(
            dict(zip(columns, row, strict=True)),
            stored.info.key,
            stored.written,
            current=stored.info.key == current_key,
        )
        for stored, row in sorted(found, key=lambda item: item[0].version)
    ]


def _holds(stored: StoredPart, sms_id: int) -> bool:
    first, last = stored.id_range
    return first <= sms_id <= last
