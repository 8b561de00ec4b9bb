"""Compaction: once a day can no longer change, merge its parts into one, without a window of loss.

A day is settled once it ended more than ``settle + lookback`` ago (plus a day of margin): no cycle
writes into it any more. Its parts are merged into one by ``rewrite.rewrite_day`` (one row per id,
the newest version; the new part is written and verified before the old ones go, so that a crash
at any step is repaired by the next run).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from archiver.config import Settings
from archiver.manifest import PartEntry
from archiver.naming import Direction
from archiver.reader import ArchiveParts, Resolution, StoredPart
from archiver.rewrite import rewrite_day
from archiver.services import services_to_maintain
from archiver.store import Store
from archiver.store.lease import Lease

__all__ = ["CompactReport", "compact_day", "run_compact", "settled_before"]


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
    """Merge one day's parts into one verified part, then remove the old ones (``rewrite.rewrite_day``).

    ``resolution`` covers the day's month (default: computed here) and learns about the new part.
    Returns None when every row of the day has a newer version elsewhere: the parts are removed.
    """
    return rewrite_day(store, settings.archive, service, direction, day, parts, resolution).entry


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
