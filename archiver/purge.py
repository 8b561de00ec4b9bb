"""The archive purge (``SMS_ARCHIVER_RETENTION__ARCHIVE_KEEP_MONTHS``): old months go, except what a legal hold covers.

Run by retention (``actions/retention/``), under the service's lease. For each archived month older
than the ones kept:

- no active hold could cover it (``holds.ActiveHolds.covering``: service, direction and dates): every
  object of the month is removed, the manifest last (until then, verify still knows what it held);
- a hold could: the month is rewritten day by day with ``rewrite.rewrite_day`` keeping only the SMS a
  hold covers (the kept ones are written as one verified part before the old parts go: compaction's
  crash safety); a day no hold's dates meet is emptied; a month left with no part goes whole.
  ``MonthPurge.held`` counts the SMS kept. A dry run reads such a month to count them.

The holds are listed again before each month (a hold placed since the run began protects it too).
Each purged month is journaled before and after (``_journal/purges/``: the keys it removes), then
recorded in the audit trail (an ``archive_purge`` event: the actor, the month, what it removed and kept).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from archiver.audit import record_event
from archiver.config import Settings
from archiver.csvfile import encode_rows
from archiver.holds import ActiveHolds, Hold, held_by
from archiver.naming import Direction
from archiver.reader import ArchiveParts, archived_months, iter_day_records
from archiver.records import Record
from archiver.rewrite import rewrite_day
from archiver.store import Store
from archiver.store.layout import journal_key, month_prefix, parse_part_key
from archiver.store.lease import Lease

__all__ = ["MonthPurge", "purge_old_months"]

log = structlog.get_logger()


@dataclass(slots=True)
class MonthPurge:
    """An archive month removed (or to be removed) by ``archive_keep_months``."""

    service: str
    direction: Direction
    month: str
    objects: int
    action: str  # purge | purged (the month removed whole, or rewritten without the SMS no hold covers)
    held: int = 0  # SMS kept in the month because a legal hold covers them (0: the month goes whole)


def purge_old_months(
    store: Store,
    settings: Settings,
    service: str,
    direction: Direction,
    holds: ActiveHolds,
    purges: list[MonthPurge],
    *,
    apply: bool,
    run_id: str,
    now: dt.datetime,
    lease: Lease | None = None,
    actor: str,
) -> None:
    """Purge (with ``apply``; else only report) the months older than ``archive_keep_months``.

    Each month is appended to ``purges`` before it is touched, so that a caller stopped by an error
    still knows what was done (``action`` says ``purged`` once the month is).
    """
    keep = settings.retention.archive_keep_months
    if keep is None:
        return
    purge = _Purge(store, settings, holds, apply=apply, run_id=run_id, now=now, lease=lease, actor=actor)
    purge.run(service, direction, keep, purges)


class _Purge:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        holds: ActiveHolds,
        *,
        apply: bool,
        run_id: str,
        now: dt.datetime,
        lease: Lease | None,
        actor: str,
    ) -> None:
        self.store, self.settings, self.holds = store, settings, holds
        self.apply, self.run_id, self.now, self.lease, self.actor = apply, run_id, now, lease, actor

    def run(self, service: str, direction: Direction, keep: int, purges: list[MonthPurge]) -> None:
        current = self.now.astimezone(self.settings.archive.zone)
        index = current.year * 12 + current.month - 1 - keep
        oldest_kept = (index // 12, index % 12 + 1)
        for year, month in archived_months(self.store, service, direction):
            if (year, month) >= oldest_kept:
                continue
            keys = [info.key for info in self.store.list(month_prefix(service, direction, year, month))]
            purge = MonthPurge(service, direction, f"{year:04d}-{month:02d}", len(keys), "purge")
            purges.append(purge)
            self.holds.refresh()  # a hold placed since the run started protects this month too
            last_day = dt.date(year, month, calendar.monthrange(year, month)[1])
            holds = self.holds.covering(service, direction, dt.date(year, month, 1), last_day)
            if holds:
                self._purge_held_month(purge, year, month, keys, holds)
                continue
            if not self.apply:
                continue
            self._journal(purge, keys, "intent")
            self._delete_objects(keys)
            self._journal(purge, keys, "done")
            self._purged(purge, len(keys))

    def _journal(self, purge: MonthPurge, keys: list[str], step: str) -> None:
        name = f"purge-{purge.service}-{purge.direction}-{purge.month}-{step}"
        listing = encode_rows(("run", "key"), ((self.run_id, key) for key in keys))
        self.store.put(journal_key("purges", self.now, self.run_id, name), listing.data)

    def _delete_objects(self, keys: list[str]) -> None:
        # The manifest goes last: until then, verify still knows what the month held.
        for key in sorted(keys, key=lambda key: key.endswith("_manifest.json")):
            self.store.delete(key)

    def _purge_held_month(self, purge: MonthPurge, year: int, month: int, keys: list[str], holds: list[Hold]) -> None:
        """Rewrite each day of a month some hold could cover, keeping only the SMS a hold covers."""
        service, direction = purge.service, purge.direction
        index = ArchiveParts(self.store, service, direction)  # listed now: earlier months may have been rewritten
        resolution = index.resolution([(year, month)])
        if self.apply:
            self._journal(purge, keys, "intent")
        for day, parts in index.days(year, month):
            day_holds = [hold for hold in holds if hold.scope.could_cover_dates(day, day)]
            keep = self._held_filter(service, direction, day_holds)
            kept = refused = 0
            if day_holds:
                for record in iter_day_records(self.store, parts, direction, resolution):
                    if keep(record):
                        kept += 1
                    else:
                        refused += 1
            if not self.apply:
                purge.held += kept
                continue
            if day_holds and refused == 0 and len(parts) == 1 and parts[0].rows == kept:
                purge.held += kept  # one part holding only held SMS: nothing to remove (a later run's case)
                continue
            rewritten = rewrite_day(self.store, self.settings.archive, service, direction, day, parts, resolution, keep)
            purge.held += rewritten.entry.rows if rewritten.entry is not None else 0
            if self.lease is not None:
                self.lease.renew_if_due()
        if not self.apply:
            return
        remaining = [info.key for info in self.store.list(month_prefix(service, direction, year, month))]
        if not any(parse_part_key(key) for key in remaining):
            self._delete_objects(remaining)  # nothing held is left: the manifest goes too
            remaining = []
        removed = sorted(set(keys) - set(remaining))
        self._journal(purge, removed, "done")
        self._purged(purge, len(removed))

    def _purged(self, purge: MonthPurge, removed: int) -> None:
        """The month is purged: say so (log, report) and record it in the audit trail."""
        purge.action = "purged"
        where = {"service": purge.service, "direction": purge.direction, "month": purge.month}
        log.info("archive_month_purged", **where, objects=removed, held=purge.held)
        keep_months = self.settings.retention.archive_keep_months
        record_event(
            self.store,
            "archive_purge",
            actor=self.actor,
            why=f"archive months older than {keep_months} months (SMS_ARCHIVER_RETENTION__ARCHIVE_KEEP_MONTHS)",
            what={**where, "run": self.run_id},
            counts={"objects_removed": removed, "held": purge.held},
        )

    def _held_filter(self, service: str, direction: Direction, holds: list[Hold]) -> Callable[[Record], bool]:
        """Whether a record of the archive is covered by one of ``holds`` (its date in the archive's zone)."""
        zone = self.settings.archive.zone
        return lambda record: held_by(holds, service, direction, record, zone) is not None
