"""Erasure requests: every archived SMS sent to or received from one phone number leaves the archive.

The number is compared in one canonical form (``holds.normalize_number``) with the sender of both
directions and the receiver of outgoing SMS, in every version of every row: an older version of an
SMS, superseded by a newer one in another part, holds the number as much as the newest one.

A day that holds the number anywhere is rewritten by ``rewrite.rewrite_day`` without it: one new
verified part, the manifest updated, the old parts deleted only then (compaction's crash safety, and
its idempotence: a second run after a crash finishes the job, a run after a complete one finds
nothing). What stays, and is reported:

- an SMS under an active legal hold (``holds.held_by``): kept, with the hold's id;
- a day with a part under S3 Object Lock whose retention has not ended: not touched at all (the
  locked version cannot be rewritten, and a DELETE would only hide it behind a delete marker); the
  part is reported with the date its lock ends, and the erasure is incomplete until a run after it.

With ``at_ovh``, the erased SMS are deleted at OVH too (404: already gone). They are deleted *before*
the archive is rewritten, so that a crash in between leaves them in the archive and the next run
finds and deletes them again; an ``erasure_ovh_intent`` audit event lists their ids before the first
DELETE. Each applied run is journaled by an ``erasure_started`` audit event before it changes anything
and one ``erasure`` event at its end: actor, reason, counts, and the number only as its keyed digest
(``audit.number_digest``), never in clear (nor in logs).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import structlog

from archiver.audit import AuditEvent, actor_name, number_digest, read_events, record_event
from archiver.config import Settings
from archiver.csvfile import read_rows
from archiver.errors import ConfigError
from archiver.holds import Hold, held_by, load_holds, normalize_number
from archiver.naming import DIRECTIONS, Direction
from archiver.reader import ArchiveParts, Resolution, StoredPart, iter_day_records, part_records
from archiver.records import COLUMNS, Record, record_from_row
from archiver.rewrite import rewrite_day
from archiver.services import services_known
from archiver.store import Store
from archiver.store.layout import parse_part_key, service_prefix
from archiver.store.lease import Lease

if TYPE_CHECKING:
    # A type only: the OVH client is imported by whoever makes a source (--at-ovh), not by a dry run.
    from archiver.source import OvhSource

__all__ = [
    "ERASURE_KEY_SETTING",
    "ErasureReport",
    "LockedPart",
    "MonthErasure",
    "earlier_erasures",
    "erasure_number",
    "run_erase",
]

log = structlog.get_logger()

ERASURE_KEY_SETTING = "SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY"
_PHONE_NUMBER = re.compile(r"\+?[0-9]{3,20}")


def erasure_number(text: str) -> str:
    """The canonical form of the number to erase; ``ConfigError`` for anything but a phone number.

    An alphanumeric sender id (``MyShop``) is refused: it names a company's own sender, and erasing
    it would erase everything that sender ever sent.
    """
    try:
        number = normalize_number(text)
    except ValueError:
        number = ""
    if not _PHONE_NUMBER.fullmatch(number):
        raise ConfigError("--number: expected a phone number such as +33612345678 (digits, optionally after +)")
    return number


@dataclass(frozen=True, slots=True)
class LockedPart:
    """A part that holds the number, or shares its day with one, under Object Lock until ``locked_until``."""

    service: str
    direction: Direction
    key: str
    locked_until: dt.datetime
    version_id: str = ""  # an older version a versioned bucket keeps ("": the current one)


@dataclass(slots=True)
class MonthErasure:
    """One month of one service and direction: the number's SMS found, erased, held, locked."""

    service: str
    direction: Direction
    month: str  # YYYY-MM
    found: int = 0  # SMS (newest versions) with the number
    erased: int = 0  # removed from the archive by this run
    held: int = 0  # kept: under a legal hold
    locked: int = 0  # rows (any version) in days that Object Lock keeps from being rewritten

    @property
    def label(self) -> str:
        return f"{self.service}/{self.direction}/{self.month}"


@dataclass(slots=True)
class ErasureReport:
    """What one ``erase`` run found and did (the number itself is never in it)."""

    applied: bool
    at_ovh: bool
    digest: str | None  # the number's keyed digest (None: a dry run without the erasure key)
    months: dict[str, MonthErasure] = field(default_factory=dict)
    hold_ids: set[str] = field(default_factory=set)
    locked: list[LockedPart] = field(default_factory=list)
    days_to_rewrite: int = 0  # days found holding the number (not held, not locked): what a run has to do
    days_rewritten: int = 0
    old_versions_found: int = 0  # older versions (versioned bucket) holding the number, not locked
    old_versions_deleted: int = 0
    deleted_at_ovh: int = 0
    gone_at_ovh: int = 0  # already gone at OVH (404)
    earlier: list[AuditEvent] = field(default_factory=list)  # earlier erasures of the same number

    @property
    def complete(self) -> bool:
        """Whether nothing of the number is left but what holds keep."""
        return not self.locked

    @property
    def found(self) -> int:
        return sum(month.found for month in self.months.values())

    @property
    def erased(self) -> int:
        return sum(month.erased for month in self.months.values())

    @property
    def held(self) -> int:
        return sum(month.held for month in self.months.values())

    @property
    def nothing_to_do(self) -> bool:
        """Nothing of the number was found to erase (erased before, or only held SMS)."""
        return self.days_to_rewrite == 0 and not self.locked and self.old_versions_found == 0

    def counts(self) -> dict[str, int]:
        """The audit event's counts: totals, then rows erased per month."""
        counts = {
            "rows_erased": self.erased,
            "rows_held": self.held,
            "locked_parts": len(self.locked),
            "days_rewritten": self.days_rewritten,
            "old_versions_deleted": self.old_versions_deleted,
            "deleted_at_ovh": self.deleted_at_ovh,
            "gone_at_ovh": self.gone_at_ovh,
        }
        for label, month in sorted(self.months.items()):
            if month.erased:
                counts[f"erased:{label}"] = month.erased
        return counts

    def as_dict(self) -> dict[str, object]:
        return {
            "applied": self.applied,
            "complete": self.complete,
            "nothing_to_do": self.nothing_to_do,
            "number_digest": self.digest,
            "found": self.found,
            "erased": self.erased,
            "held": self.held,
            "hold_ids": sorted(self.hold_ids),
            "days_to_rewrite": self.days_to_rewrite,
            "days_rewritten": self.days_rewritten,
            "old_versions_found": self.old_versions_found,
            "old_versions_deleted": self.old_versions_deleted,
            "at_ovh": self.at_ovh,
            "deleted_at_ovh": self.deleted_at_ovh,
            "gone_at_ovh": self.gone_at_ovh,
            "months": [asdict(month) for _label, month in sorted(self.months.items())],
            "locked_parts": [
                asdict(locked) | {"locked_until": locked.locked_until.isoformat()} for locked in self.locked
            ],
            "earlier_erasures": [{"at": event.at, "actor": event.actor, "id": event.id} for event in self.earlier],
        }


@dataclass(slots=True)
class _Day:
    """One day that holds the number somewhere in its parts."""

    day: dt.date
    parts: list[StoredPart]
    rows: int  # rows with the number, every version counted
    to_erase: list[int] = field(default_factory=list)  # ids whose newest version has the number, not held
    held: int = 0
    locked: list[tuple[str, dt.datetime]] = field(default_factory=list)

    @property
    def needs_rewrite(self) -> bool:
        # Every row with the number goes, except the newest version of a held SMS (kept as it is).
        return self.rows > self.held


class _Number:
    """Whether a record was sent to or received from the number (every version of it is checked)."""

    def __init__(self, number: str) -> None:
        self.number = number

    def _same(self, value: str) -> bool:
        if not value:
            return False
        try:
            return normalize_number(value) == self.number
        except ValueError:
            return False

    def in_record(self, record: Record) -> bool:
        # An incoming SMS has no receiver column: it was received by the service's own number.
        receiver = record.get("receiver") if "receiver" in COLUMNS[record.direction] else ""
        return self._same(record.get("sender")) or self._same(receiver)


def earlier_erasures(store: Store, digest: str) -> list[AuditEvent]:
    """The ``erasure`` events of the audit trail for the same number (same digest), oldest first."""
    return [event for event in read_events(store) if event.kind == "erasure" and event.what.get("number") == digest]


def run_erase(
    settings: Settings,
    store: Store,
    number: str,
    *,
    apply: bool,
    source_of: Callable[[str], OvhSource] | None = None,
    why: str = "erasure request",
    now: dt.datetime | None = None,
) -> ErasureReport:
    """Find (and with ``apply``, erase) every archived SMS to or from ``number`` (see module docstring).

    ``number``: as given by the requester (``erasure_number`` checks it). ``source``: also delete at
    OVH (``--at-ovh``). With ``apply``, the erasure key (``SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY``) is
    required, checked before anything is touched. A dry run writes nothing and takes no lease.
    """
    wanted = _Number(erasure_number(number))
    key = settings.compliance.erasure_key
    if apply and key is None:
        raise ConfigError(
            f"{ERASURE_KEY_SETTING} is not set: erase --yes journals the number as a keyed digest and needs this key"
            " (a secret of at least 16 characters; keep it: the same key matches later requests for the same number)"
        )
    now = now or dt.datetime.now(dt.UTC)
    digest = number_digest(key.get_secret_value(), wanted.number) if key is not None else None
    services = services_known(settings.ovh, store)
    sources = {service: source_of(service) for service in services} if apply and source_of is not None else {}
    at_ovh = source_of is not None
    report = ErasureReport(applied=apply, at_ovh=at_ovh, digest=digest)
    if digest is not None:
        report.earlier = earlier_erasures(store, digest)
    actor = actor_name(settings.actor)
    if apply:
        # Before anything changes: a run cut short (kill -9) is still in the journal; the next run finishes it.
        record_event(store, "erasure_started", actor=actor, why=why, what={"number": digest, "at_ovh": at_ovh})
    for service in services:
        if not apply:
            holds = load_holds(store)  # read-only: no lease, nothing written
            for direction in DIRECTIONS:
                _plan(settings, store, service, direction, wanted, holds, report, now)
                _old_versions(store, service, direction, wanted, report, now, apply=False)
            continue
        with Lease.on_service(store, service, settings.lease) as lease:
            holds = load_holds(store)  # read under the lease: a hold placed before it counts
            planned = [
                (direction, *_plan(settings, store, service, direction, wanted, holds, report, now, lease))
                for direction in DIRECTIONS
            ]
            if service in sources:
                _delete_at_ovh(
                    store, sources[service], service, planned, report, lease, actor=actor, why=why, digest=digest
                )
            for direction, days, resolution in planned:
                _rewrite(settings, store, service, direction, days, resolution, wanted, holds, report, lease)
                _old_versions(store, service, direction, wanted, report, now, apply=True)
    if apply:
        record_event(
            store,
            "erasure",
            actor=actor,
            why=why,
            what={
                "number": digest,
                "complete": report.complete,
                "at_ovh": at_ovh,
                "hold_ids": sorted(report.hold_ids),
                "locked_parts": [
                    {
                        "key": locked.key,
                        "version_id": locked.version_id,
                        "locked_until": locked.locked_until.isoformat(),
                    }
                    for locked in report.locked
                ],
            },
            counts=report.counts(),
        )
    log.info(
        "erasure_done" if apply else "erasure_planned",
        number_digest=digest,
        found=report.found,
        erased=report.erased,
        held=report.held,
        locked_parts=len(report.locked),
        days_rewritten=report.days_rewritten,
        deleted_at_ovh=report.deleted_at_ovh,
        complete=report.complete,
    )
    return report


def _plan(
    settings: Settings,
    store: Store,
    service: str,
    direction: Direction,
    wanted: _Number,
    holds: list[Hold],
    report: ErasureReport,
    now: dt.datetime,
    lease: Lease | None = None,
) -> tuple[list[_Day], Resolution]:
    """The days of one service and direction that hold the number, counted into ``report``.

    Every part is read: ``lease`` (None in a dry run) is renewed as due on the way.
    """
    index = ArchiveParts(store, service, direction)
    days: list[_Day] = []
    for year, month_number in index.months():
        for day, parts in index.days(year, month_number):
            rows = sum(_rows_with(store, stored, direction, wanted) for stored in parts)
            if rows:
                days.append(_Day(day, parts, rows))
            if lease is not None:
                lease.renew_if_due()
    resolution = index.resolution(sorted({(day.day.year, day.day.month) for day in days}))
    zone = settings.archive.zone
    for planned in days:
        label = f"{service}/{direction}/{planned.day:%Y-%m}"
        month = report.months.setdefault(label, MonthErasure(service, direction, f"{planned.day:%Y-%m}"))
        for record in iter_day_records(store, planned.parts, direction, resolution):
            if not wanted.in_record(record):
                continue
            month.found += 1
            hold = held_by(holds, service, direction, record, zone)
            if hold is not None:
                planned.held += 1
                month.held += 1
                report.hold_ids.add(hold.id)
            else:
                planned.to_erase.append(record.id)
        if not planned.needs_rewrite:
            continue
        for stored in planned.parts:
            info = store.head(stored.info.key)
            if info is not None and info.locked_until is not None and info.locked_until > now:
                planned.locked.append((stored.info.key, info.locked_until))
        if planned.locked:
            month.locked += planned.rows
            report.locked += [LockedPart(service, direction, key, until) for key, until in planned.locked]
        else:
            report.days_to_rewrite += 1
    return days, resolution


def _old_versions(
    store: Store,
    service: str,
    direction: Direction,
    wanted: _Number,
    report: ErasureReport,
    now: dt.datetime,
    *,
    apply: bool,
) -> None:
    """Find (and with ``apply``, delete for good) the older versions of parts that hold the number.

    A versioned bucket (Object Lock needs one) keeps what ``delete`` removed and what ``put``
    replaced: the parts a rewrite deleted, a crash's leftovers, compaction's merged parts. Each is
    read once; a version holding the number is deleted unless Object Lock still retains it (then
    reported, like a current part). A held SMS keeps its current copy: older copies of it go.
    Run after the rewrites, so that the parts they just deleted are found; a store that keeps no
    versions yields none.
    """
    for version in store.old_versions(service_prefix(service, direction)):
        part = parse_part_key(version.key)
        if part is None:
            continue  # manifests and anything else hold ids and digests, not numbers
        try:
            data = store.get_version(version.key, version.version_id)
        except KeyError:
            continue  # removed since the listing
        stream = io.BytesIO(data)
        rows = read_rows(stream, header=COLUMNS[direction], compressed=part.compressed, source=version.key)
        if not any(wanted.in_record(record_from_row(direction, row)) for row in rows):
            continue
        until = store.old_version_lock(version.key, version.version_id)
        if until is not None and until > now:
            report.locked.append(LockedPart(service, direction, version.key, until, version.version_id))
            continue
        report.old_versions_found += 1
        if apply:
            store.delete_version(version.key, version.version_id)
            report.old_versions_deleted += 1


def _rows_with(store: Store, stored: StoredPart, direction: Direction, wanted: _Number) -> int:
    """Rows of one part (every version) sent to or received from the number."""
    try:
        return sum(1 for record in part_records(store, stored, direction) if wanted.in_record(record))
    except KeyError:
        return 0  # deleted since the listing (a dry run takes no lease): its rows live on in a newer part


def _delete_at_ovh(
    store: Store,
    source: OvhSource,
    service: str,
    planned: list[tuple[Direction, list[_Day], Resolution]],
    report: ErasureReport,
    lease: Lease,
    *,
    actor: str,
    why: str,
    digest: str | None,
) -> None:
    """Delete the number's SMS of one service at OVH (not the held ones), journaled before the first DELETE."""
    ids = {direction: sorted({sms_id for day in days for sms_id in day.to_erase}) for direction, days, _ in planned}
    if not any(ids.values()):
        return
    record_event(
        store,
        "erasure_ovh_intent",
        actor=actor,
        why=why,
        what={"number": digest, "service": service, "ids": {direction: found for direction, found in ids.items()}},
        counts={direction: len(found) for direction, found in ids.items()},
    )
    lease.renew()  # right before deleting, prove the lease is still ours
    for direction, found in ids.items():
        for sms_id in found:
            lease.renew_if_due()
            if source.delete_record(service, direction, sms_id):
                report.deleted_at_ovh += 1
            else:
                report.gone_at_ovh += 1
    log.info("erasure_deleted_at_ovh", service=service, deleted=report.deleted_at_ovh, gone=report.gone_at_ovh)


def _rewrite(
    settings: Settings,
    store: Store,
    service: str,
    direction: Direction,
    days: list[_Day],
    resolution: Resolution,
    wanted: _Number,
    holds: list[Hold],
    report: ErasureReport,
    lease: Lease,
) -> None:
    """Rewrite each planned day without the number (held SMS kept; days under Object Lock left alone)."""
    zone = settings.archive.zone

    def keep(record: Record) -> bool:
        return not wanted.in_record(record) or held_by(holds, service, direction, record, zone) is not None

    for planned in days:
        if planned.locked or not planned.needs_rewrite:
            continue
        result = rewrite_day(
            store, settings.archive, service, direction, planned.day, planned.parts, resolution, keep=keep
        )
        report.months[f"{service}/{direction}/{planned.day:%Y-%m}"].erased += result.dropped
        report.days_rewritten += 1
        lease.renew_if_due()
