"""Retention: delete SMS at OVH only once they are verifiably archived. Dry run unless told to apply.

A record is deleted only when all of these hold (each failing one is the reason it is kept):

1. it is older than the policy (``delete_after_days``) on OVH's clock: the cutoff is OVH's time
   minus the policy, and the live record's own ``creationDatetime`` is checked against it (OVH's
   date filter is not trusted alone);
2. the archive holds it, in a part that verifies against the SHA-256 and row count recorded at write
   time, in a month whose listing is readable and non-empty;
3. the API's current record equals the archived copy field for field, and its status is final, or
   it never settled: still not final once the lookback (``lookback_hours``) is over, the last
   status is what the archive keeps (see ``records.NON_FINAL_PTT``);
4. no active legal hold covers it (``archiver.holds``): a held record is kept, with the reason
   ``under legal hold {id}``, and counted (``held``);
5. the run has had no error so far, and the per-run cap is not reached.

A record that is old but not archived (or whose archived copy is older than the API's) is archived
now and kept: it becomes deletable on a later run, once it can be read back from the store.

Every batch of deletions is journaled in the archive before the DELETE calls (``intent``) and after
(``done``), so that an interrupted run can be audited and resumed: an id that is already gone (404)
counts as deleted. Any error stops the run; nothing is deleted after it.

Legal holds are read at the start of a run (an unreadable one stops it before anything is deleted)
and listed again before each batch: if they changed, the batch's records are fetched again and
checked. A hold placed while a batch is under way applies from the next one (``_BATCH`` deletions).
The archive purge (``archive_keep_months``, ``archiver.purge``) keeps what a hold covers too.

An applied run that deleted records one ``retention_deletion`` event in the audit trail when it ends,
an error included (``archiver.audit``): the actor (``SMS_ARCHIVER_ACTOR``, else the OS user and host;
the page's user for the history browser), the run id, the counts.

``run_selected_deletion`` (the history browser's "delete selected") applies rules 2 to 4 (``_proof``)
to the SMS a user chose, without the age policy and without archiving anything; the journal names
the user (``RETENTION_USER`` for retention's own runs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import structlog

from archiver.audit import actor_name, record_event
from archiver.config import Settings
from archiver.csvfile import encode_rows
from archiver.errors import MalformedRecordError
from archiver.holds import ActiveHolds, held_by
from archiver.manifest import record_parts
from archiver.naming import Direction
from archiver.purge import MonthPurge, purge_old_months
from archiver.reader import ArchiveParts, StoredPart, read_checked
from archiver.records import Record, differing_columns, parse_api_record
from archiver.services import services_at_ovh
from archiver.source import GONE, OvhSource
from archiver.store import Store
from archiver.store.layout import journal_key
from archiver.store.lease import Lease
from archiver.writer import write_parts

__all__ = ["HELD_REASON", "Decision", "MonthPurge", "RetentionReport", "run_retention", "run_selected_deletion"]

log = structlog.get_logger()

# ``user``: who asked; "retention" for retention's own runs, the page's user for a deletion from the history browser.
JOURNAL_COLUMNS = ("run", "service", "direction", "id", "date", "part", "action", "at", "user")
RETENTION_USER = "retention"
_BATCH = 100
# The reason of a record kept because a legal hold covers it (followed by the hold's id).
HELD_REASON = "under legal hold"


@dataclass(slots=True)
class Decision:
    """What retention decided for one old record, and why."""

    service: str
    direction: Direction
    id: int
    date: str
    action: str  # delete | keep | deleted | gone
    reason: str
    part: str = ""


@dataclass(slots=True)
class RetentionReport:
    """The outcome of one retention run."""

    run_id: str
    applied: bool
    decisions: list[Decision] = field(default_factory=list)
    # No longer filled: counting the records younger than the policy cost a listing of every record.
    # Kept so that scripts reading ``retention --json`` find the key they know.
    younger: dict[str, int] = field(default_factory=dict)
    deleted: int = 0
    capped: int = 0  # eligible records kept because the per-run cap was reached: the run failed
    purges: list[MonthPurge] = field(default_factory=list)
    # Records whose archived copy, read back right after archiving them, still differs from the API: they
    # could never be deleted. Reported (log, status, metrics), never kept silently.
    unmatchable: list[Decision] = field(default_factory=list)
    by: str = RETENTION_USER  # who asked: written in the journal
    held: int = 0  # records kept at OVH because a legal hold covers them (reason ``HELD_REASON``)
    holds_active: int = 0  # active legal holds when the run ended

    def count(self, action: str) -> int:
        return sum(1 for decision in self.decisions if decision.action == action)

    @property
    def archive_held(self) -> int:
        """SMS the archive purge kept because a legal hold covers them."""
        return sum(purge.held for purge in self.purges)

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "applied": self.applied,
            "deleted": self.deleted,
            "capped": self.capped,
            "younger": self.younger,
            "decisions": [asdict(decision) for decision in self.decisions],
            "archive_purges": [asdict(purge) for purge in self.purges],
            "unmatchable": [asdict(decision) for decision in self.unmatchable],
            "by": self.by,
            "held": self.held,
            "archive_held": self.archive_held,
            "holds_active": self.holds_active,
        }


def _archived_copies(
    store: Store, service: str, direction: Direction, wanted: set[int], parts: list[StoredPart] | None = None
) -> dict[int, tuple[Record, StoredPart, list[str]]]:
    """The newest archived copy of each ``wanted`` id (the reader's rule), with the problems of its part.

    Reads each part at most once, and only the parts whose id range can hold a wanted id (``parts``:
    only these): each is read whole, checked against its manifest entry as ``verify`` does, and its
    wanted records kept. An id's newest version is in the part written last that holds it.
    """
    if parts is None:
        parts = ArchiveParts(store, service, direction).holding(wanted)
    copies: dict[int, tuple[Record, StoredPart, list[str]]] = {}
    for stored in parts:
        records, problem = read_checked(store, stored, direction, wanted)
        problems = [f"{problem.kind}: {problem.detail}"] if problem is not None else []
        for record in records:
            held = copies.get(record.id)
            if held is None or stored.version > held[1].version:
                copies[record.id] = (record, stored, problems)
    return copies


_Copy = tuple[Record, StoredPart, list[str]]


def _proof(live: Record, copy: _Copy | None, settled_before: dt.datetime, *, archiving: bool) -> tuple[str, str, bool]:
    """The per-record rule, past the age policy: ``(action, reason, stale)``; action is delete or keep.

    ``copy``: the archived copy (``_archived_copies``), None if not archived. ``stale``: the archive
    lacks the live version (the caller may archive it; ``archiving`` says it does, for the reason).
    """
    if copy is None:
        return "keep", "not yet archived" + (": archived now, deletable on a later run" if archiving else ""), True
    if copy[2]:
        return "keep", f"archived part fails verification ({'; '.join(copy[2])})", False
    if not live.final and live.created > settled_before:
        return "keep", "status not final", False
    if differing := differing_columns(live, copy[0]):
        suffix = ": newer version archived now" if archiving else ""
        return "keep", f"archived copy differs from the API ({', '.join(differing)}){suffix}", True
    return "delete", "archived and verified" + ("" if live.final else "; its status never settled"), False


class _Run:
    def __init__(
        self,
        settings: Settings,
        source: OvhSource,
        store: Store,
        *,
        apply: bool,
        now: dt.datetime,
        user: str = RETENTION_USER,
    ) -> None:
        self.settings = settings
        self.source = source
        self.store = store
        self.apply = apply
        self.now = now
        self.report = RetentionReport(run_id=now.strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8], applied=apply)
        self.report.by = user
        # Who acts, for the audit trail: the page's user, or this process's (``SMS_ARCHIVER_ACTOR``).
        self.actor = user if user != RETENTION_USER else actor_name(settings.actor)
        self.remaining_cap = settings.retention.max_deletions_per_run
        self.batches = 0
        self.holds = ActiveHolds(store)  # before anything is decided: an unreadable hold stops the run here
        self.judged_under = 0
        self.services: set[str] = set()

    def decide(self, service: str, direction: Direction, lease: Lease) -> list[Decision]:
        """Look at every record older than the policy and decide; archive what is not archived yet."""
        assert self.settings.retention.delete_after_days is not None
        cutoff = self.now - dt.timedelta(days=self.settings.retention.delete_after_days)
        # One listing: the ids older than the policy (younger ones are not counted: it would cost another).
        old_ids = set(self.source.list_ids(service, direction, since=None, until=cutoff))
        if not old_ids:
            return []
        archived = _archived_copies(self.store, service, direction, old_ids)
        lease.renew_if_due()
        decisions, to_archive = self.judge(
            service, direction, old_ids, archived, lease, cutoff=cutoff, archiving=self.apply
        )
        # Never in a dry run: it writes nothing. A record archived now is only deleted by a later run,
        # after it has been read back from the store.
        if to_archive and self.apply:
            entries = write_parts(self.store, self.settings.archive, service, direction, to_archive)
            record_parts(self.store, service, direction, entries)
            self._read_back(service, direction, to_archive, {entry.key for entry in entries}, archived, decisions)
        decisions.sort(key=lambda decision: (decision.date, decision.id))
        self._apply_cap(decisions)
        return decisions

    def judge(
        self,
        service: str,
        direction: Direction,
        ids: set[int],
        archived: dict[int, _Copy],
        lease: Lease,
        *,
        cutoff: dt.datetime | None,
        archiving: bool,
    ) -> tuple[list[Decision], list[Record]]:
        """Fetch the live records of ``ids`` and decide for each (``_proof``); also the ones to archive.

        ``cutoff``: the age policy (None: no age rule, the user chose these SMS). ``archiving``: the
        caller archives the records to archive (said in their reason).
        """
        settled_before = self.now - dt.timedelta(hours=self.settings.archive.lookback_hours)
        self.judged_under = self.holds.generation  # the holds these decisions saw
        decisions: list[Decision] = []
        to_archive: list[Record] = []
        for sms_id, raw in self.source.fetch(service, direction, sorted(ids)):
            lease.renew_if_due()  # a long fetch at a low rate can outlast the lease (no I/O unless due)
            copy = archived.get(sms_id)
            date = copy[0].get("date") if copy else ""
            part = copy[1].info.key if copy else ""
            if raw is GONE:
                decisions.append(Decision(service, direction, sms_id, date, "gone", "already gone at OVH", part))
                continue
            try:
                live = parse_api_record(direction, raw, api_zone=self.source.api_zone, ptt_text=self.source.ptt_text)
            except MalformedRecordError as error:
                decisions.append(
                    Decision(service, direction, sms_id, date, "keep", f"API record malformed: {error}", part)
                )
                continue
            date = live.get("date")
            if cutoff is not None and live.created > cutoff:
                reason = "younger than the policy on OVH's clock"
                decisions.append(Decision(service, direction, sms_id, date, "keep", reason, part))
                continue
            action, reason, stale = _proof(live, copy, settled_before, archiving=archiving)
            if stale:
                to_archive.append(live)  # a held record is archived all the same
            decision = Decision(service, direction, sms_id, date, action, reason, part)
            if action == "delete":
                self._keep_if_held(decision, live)
            decisions.append(decision)
        return decisions, to_archive

    def _keep_if_held(self, decision: Decision, live: Record) -> None:
        """Keep ``decision``'s record if an active hold covers it (counted in ``report.held``)."""
        hold = held_by(self.holds.active, decision.service, decision.direction, live, self.settings.archive.zone)
        if hold is not None:
            decision.action, decision.reason = "keep", f"{HELD_REASON} {hold.id}"
            self.report.held += 1

    def _recheck_holds(self, service: str, direction: Direction, batch: list[Decision]) -> list[Decision]:
        """The holds changed since the batch was decided: fetch its records again and keep the held ones.

        Returns the batch's decisions still to delete. A record gone meanwhile stays in the batch (its
        DELETE finds it gone); one that can no longer be read is kept.
        """
        by_id = {decision.id: decision for decision in batch}
        for sms_id, raw in self.source.fetch(service, direction, sorted(by_id)):
            decision = by_id[sms_id]
            if raw is GONE:
                continue
            try:
                live = parse_api_record(direction, raw, api_zone=self.source.api_zone, ptt_text=self.source.ptt_text)
            except MalformedRecordError as error:
                decision.action, decision.reason = "keep", f"API record malformed: {error}"
                continue
            self._keep_if_held(decision, live)
        return [decision for decision in batch if decision.action == "delete"]

    def _read_back(
        self,
        service: str,
        direction: Direction,
        written: list[Record],
        keys: set[str],
        archived: dict[int, tuple[Record, StoredPart, list[str]]],
        decisions: list[Decision],
    ) -> None:
        """Read what was just archived (the parts ``keys``) back: the reader must now give what the API gives.

        Otherwise the record could never be deleted (every run would find its copy "differs" and archive
        it again): such records are reported with the reason, not kept silently forever. The reader's
        rule picks, for each id, the newest of the copies ``archived`` (read before, not read again) and
        the ones just written, as listed now (a store may have lost them).
        """
        wanted = {record.id: record for record in written}
        index = ArchiveParts(self.store, service, direction)
        parts = [stored for stored in index.holding(wanted) if stored.info.key in keys]
        written_back = _archived_copies(self.store, service, direction, set(wanted), parts)
        by_id = {decision.id: decision for decision in decisions}
        for sms_id, live in wanted.items():
            versions = [held for held in (archived.get(sms_id), written_back.get(sms_id)) if held is not None]
            copy = max(versions, key=lambda held: held[1].version)[0] if versions else None
            differing = differing_columns(live, copy) if copy is not None else ["the whole record"]
            if differing:
                decision = by_id[sms_id]
                decision.reason = (
                    f"cannot match: archived now, but the archive reads back another version ({', '.join(differing)})"
                )
                self.report.unmatchable.append(decision)

    def _apply_cap(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if decision.action != "delete":
                continue
            if self.remaining_cap > 0:
                self.remaining_cap -= 1
            else:
                decision.action, decision.reason = "keep", "cap reached (SMS_ARCHIVER_RETENTION__MAX_DELETIONS_PER_RUN)"
                self.report.capped += 1

    def delete(self, service: str, direction: Direction, decisions: list[Decision], lease: Lease) -> None:
        """Delete the eligible records in journaled batches; stop at the first error."""
        eligible = [decision for decision in decisions if decision.action == "delete"]
        for start in range(0, len(eligible), _BATCH):
            batch = eligible[start : start + _BATCH]
            # A legal hold placed since the decision: the batch's records are checked against it again.
            self.holds.refresh()
            if self.holds.generation != self.judged_under and self.holds.covering(
                service, direction, dt.date.min, dt.date.max
            ):
                batch = self._recheck_holds(service, direction, batch)
                if not batch:
                    continue
            # Right before deleting, prove the lease is still ours: a holder that lost it deletes nothing.
            lease.renew()
            self.batches += 1
            name = f"{self.batches:04d}"
            self._journal(f"{name}-intent", batch, "intent")
            done: list[Decision] = []
            try:
                for decision in batch:
                    lease.renew_if_due()
                    existed = self.source.delete_record(service, direction, decision.id)
                    decision.action = "deleted" if existed else "gone"
                    decision.reason = "deleted at OVH" if existed else "already gone at OVH (404)"
                    done.append(decision)
                    self.report.deleted += existed
                    self.services.add(service)
            finally:
                if done:
                    self._journal(f"{name}-done", done, None)
            log.info("retention_batch_deleted", service=service, direction=direction, count=len(done))

    @contextlib.contextmanager
    def audited(self, why: str) -> Iterator[None]:
        """Record the run's audit event when it ends, an error included (see the module docstring).

        After an error, an event that cannot be written is logged: the run's own error is the one raised.
        """
        try:
            yield
        except BaseException as error:
            try:
                self._record_audit(why, outcome=f"stopped by an error: {type(error).__name__}: {error}"[:400])
            except Exception as audit_error:
                log.error("audit_event_failed", run_id=self.report.run_id, error=str(audit_error))
            raise
        self._record_audit(why, outcome="ok")

    def purge_archive(self, service: str, direction: Direction, lease: Lease | None = None) -> None:
        """The archive purge (``archiver.purge``): months older than ``archive_keep_months``, holds kept."""
        purge_old_months(
            self.store,
            self.settings,
            service,
            direction,
            self.holds,
            self.report.purges,
            apply=self.apply,
            run_id=self.report.run_id,
            now=self.now,
            lease=lease,
            actor=self.actor,
        )

    def _record_audit(self, why: str, *, outcome: str) -> None:
        report = self.report
        report.holds_active = len(self.holds.active)  # as last read
        if self.apply and self.services:  # DELETE calls were made
            record_event(
                self.store,
                "retention_deletion",
                actor=self.actor,
                why=why,
                what={
                    "run": report.run_id,
                    "services": sorted(self.services),
                    "journal_user": report.by,
                    "outcome": outcome,
                },
                counts={
                    "deleted": report.deleted,
                    "gone": report.count("gone"),
                    "kept": report.count("keep"),
                    "held": report.held,
                    "capped": report.capped,
                },
            )

    def _journal(self, name: str, decisions: list[Decision], action: str | None) -> None:
        at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        rows = (
            (
                self.report.run_id,
                d.service,
                d.direction,
                str(d.id),
                d.date,
                d.part,
                action or d.action,
                at,
                self.report.by,
            )
            for d in decisions
        )
        encoded = encode_rows(JOURNAL_COLUMNS, rows)
        self.store.put(journal_key("deletions", self.now, self.report.run_id, name), encoded.data)


def run_retention(
    settings: Settings,
    source: OvhSource,
    store: Store,
    *,
    apply: bool,
    services: list[str] | None = None,
    now: dt.datetime | None = None,
) -> RetentionReport:
    """Decide (and with ``apply``, delete) per the retention policy; see the module docstring.

    Past the per-run cap, eligible records are kept and counted in ``report.capped`` (the caller
    reports the run as failed). Any error stops the run at once: nothing is deleted after it.
    Raises ``ConfigError`` without a policy, or with ``apply`` while retention is not enabled.
    """
    settings.retention.check_policy(apply=apply)
    # OVH's clock, not ours: the cutoff is compared with OVH's timestamps.
    run = _Run(settings, source, store, apply=apply, now=now or source.now())
    policy = f"retention policy: SMS older than {settings.retention.delete_after_days} days and verifiably archived"
    with run.audited(policy):
        for service in services or services_at_ovh(settings.ovh, source):
            with Lease.on_service(store, service, settings.lease) as lease:
                for direction in settings.retention.directions:
                    decisions = run.decide(service, direction, lease)
                    run.report.decisions.extend(decisions)
                    if apply:
                        run.delete(service, direction, decisions, lease)
                for direction in settings.archive.directions:
                    run.purge_archive(service, direction, lease)
    if run.report.unmatchable:
        log.warning(
            "retention_unmatchable",
            count=len(run.report.unmatchable),
            ids=[decision.id for decision in run.report.unmatchable[:20]],
            reason=run.report.unmatchable[0].reason,
        )
    log.info(
        "retention_done",
        run_id=run.report.run_id,
        applied=apply,
        deleted=run.report.deleted,
        kept=run.report.count("keep"),
        held=run.report.held,
        archive_held=run.report.archive_held,
        eligible=run.report.count("delete"),
    )
    return run.report


def run_selected_deletion(
    settings: Settings,
    source: OvhSource,
    store: Store,
    service: str,
    direction: Direction,
    ids: list[int],
    *,
    user: str,
    apply: bool,
    now: dt.datetime | None = None,
) -> RetentionReport:
    """Delete at OVH the SMS a user chose (the history browser), with retention's proof but no age policy.

    Under the service's lease: the live records of ``ids`` are fetched, their archived copies read
    (each part once, checked against its manifest) and each decided by ``_proof``, the rule retention
    applies past its age policy. Nothing is archived here: a record whose archive lacks the live version
    is kept, with the reason. A dry run (not ``apply``) only decides: the confirmation page shows it.
    With ``apply``, the eligible ones are deleted in retention's journaled batches, ``user`` in the
    journal; any error stops the run at once.
    """
    run = _Run(settings, source, store, apply=apply, now=now or source.now(), user=user)
    wanted = set(ids)
    with run.audited("chosen in the history browser"), Lease.on_service(store, service, settings.lease) as lease:
        archived = _archived_copies(store, service, direction, wanted)
        lease.renew_if_due()
        decisions, _stale = run.judge(service, direction, wanted, archived, lease, cutoff=None, archiving=False)
        decisions.sort(key=lambda decision: (decision.date, decision.id))
        run._apply_cap(decisions)
        run.report.decisions.extend(decisions)
        if apply:
            run.delete(service, direction, decisions, lease)
    log.info(
        "selected_deletion_done",
        run_id=run.report.run_id,
        by=user,
        applied=apply,
        deleted=run.report.deleted,
        kept=run.report.count("keep"),
        held=run.report.held,
        eligible=run.report.count("delete"),
    )
    return run.report
