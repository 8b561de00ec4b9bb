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

``run_selected_deletion`` (the history browser's "delete selected") applies rules 2 to 4 (``proof.proof``)
to the SMS a user chose, without the age policy and without archiving anything; the journal names
the user (``RETENTION_USER`` for retention's own runs).
"""

from __future__ import annotations

import datetime as dt

import structlog

from archiver.actions.retention.proof import archived_copies
from archiver.actions.retention.report import HELD_REASON, Decision, RetentionReport
from archiver.actions.retention.run import Run
from archiver.config import Settings
from archiver.naming import Direction
from archiver.purge import MonthPurge
from archiver.services import services_at_ovh
from archiver.source import OvhSource
from archiver.store import Store
from archiver.store.lease import Lease

__all__ = ["HELD_REASON", "Decision", "MonthPurge", "RetentionReport", "run_retention", "run_selected_deletion"]

log = structlog.get_logger()


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
    run = Run(settings, source, store, apply=apply, now=now or source.now())
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
    (each part once, checked against its manifest) and each decided by ``proof``, the rule retention
    applies past its age policy. Nothing is archived here: a record whose archive lacks the live version
    is kept, with the reason. A dry run (not ``apply``) only decides: the confirmation page shows it.
    With ``apply``, the eligible ones are deleted in retention's journaled batches, ``user`` in the
    journal; any error stops the run at once.
    """
    run = Run(settings, source, store, apply=apply, now=now or source.now(), user=user)
    wanted = set(ids)
    with run.audited("chosen in the history browser"), Lease.on_service(store, service, settings.lease) as lease:
        archived = archived_copies(store, service, direction, wanted)
        lease.renew_if_due()
        decisions, _stale = run.judge(service, direction, wanted, archived, lease, cutoff=None, archiving=False)
        decisions.sort(key=lambda decision: (decision.date, decision.id))
        run.apply_cap(decisions)
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
