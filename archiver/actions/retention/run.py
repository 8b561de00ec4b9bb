"""One retention run: deciding per record, archiving what is missing, deleting in journaled batches."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator

import structlog

from archiver.actions.retention.proof import Copy, archived_copies, proof
from archiver.actions.retention.report import HELD_REASON, JOURNAL_COLUMNS, RETENTION_USER, Decision, RetentionReport
from archiver.audit import actor_name, record_event
from archiver.config import Settings
from archiver.csvfile import encode_rows
from archiver.errors import MalformedRecordError
from archiver.holds import ActiveHolds, held_by
from archiver.manifest import record_parts
from archiver.naming import Direction
from archiver.purge import purge_old_months
from archiver.reader import ArchiveParts, StoredPart
from archiver.records import Record, differing_columns, parse_api_record
from archiver.source import GONE, OvhSource
from archiver.store import Store
from archiver.store.layout import journal_key
from archiver.store.lease import Lease
from archiver.writer import write_parts

__all__ = ["Run"]

log = structlog.get_logger()

_BATCH = 100


class Run:
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
        archived = archived_copies(self.store, service, direction, old_ids)
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
        self.apply_cap(decisions)
        return decisions

    def judge(
        self,
        service: str,
        direction: Direction,
        ids: set[int],
        archived: dict[int, Copy],
        lease: Lease,
        *,
        cutoff: dt.datetime | None,
        archiving: bool,
    ) -> tuple[list[Decision], list[Record]]:
        """Fetch the live records of ``ids`` and decide for each (``proof``); also the ones to archive.

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
            action, reason, stale = proof(live, copy, settled_before, archiving=archiving)
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
        written_back = archived_copies(self.store, service, direction, set(wanted), parts)
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

    def apply_cap(self, decisions: list[Decision]) -> None:
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
