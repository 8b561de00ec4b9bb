"""The daemon's scheduled jobs: which run, and what each does with its action.

- ``archive`` at start-up, then every ``schedule.archive`` (``run_archive``); pings the dead man's
  switch; sets the archive's STATUS= line;
- ``retention``, when enabled: due every ``schedule.retention``, run right after the next
  successful archive, inside the archive job's turn, so that it never follows a failed cycle nor
  runs beside another job (``run_retention``);
- ``compact`` every ``schedule.compact`` (``run_compact``);
- ``verify`` every ``schedule.verify``, when set (``run_verify``); a problem found fails the job.

Each body returns its one-line summary or raises; ``runner.py`` records the outcome.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any, TypeVar

import structlog

from archiver.actions.archive import DirectionReport, run_archive
from archiver.actions.compact import run_compact
from archiver.actions.holds import active_hold_count
from archiver.actions.retention import HELD_REASON, run_retention
from archiver.actions.verify import run_verify
from archiver.config import Settings
from archiver.daemon.notify import Notifier
from archiver.daemon.runner import JobRunner, first_line
from archiver.errors import ArchiverError, CycleInterrupted, IntegrityError
from archiver.metrics import Metrics
from archiver.ping import Pinger
from archiver.services import Accounts
from archiver.source import OvhSource
from archiver.store import Store

__all__ = ["ARCHIVE", "COMPACT", "RETENTION", "VERIFY", "Jobs", "planned_jobs"]

log = structlog.get_logger()

ARCHIVE, RETENTION, COMPACT, VERIFY = "archive", "retention", "compact", "verify"

T = TypeVar("T")

# How many of verify's problems are logged one by one; the job's error gives the total.
_PROBLEMS_LOGGED = 50


def planned_jobs(settings: Settings) -> dict[str, str]:
    """The jobs these settings schedule, each with its schedule string."""
    schedule = settings.schedule
    plan = {ARCHIVE: schedule.archive, COMPACT: schedule.compact}
    if settings.retention.enabled:
        plan[RETENTION] = schedule.retention
    if schedule.verify:
        plan[VERIFY] = schedule.verify
    return plan


class Jobs:
    """The job bodies, with what they share: the last cycle's figures, and whether retention is due."""

    def __init__(
        self,
        settings: Settings,
        runner: JobRunner,
        *,
        host: str,
        metrics: Metrics,
        notifier: Notifier,
        pinger: Pinger,
        stop: threading.Event,
    ) -> None:
        self.settings, self.runner, self.host = settings, runner, host
        self.metrics, self.notifier, self.pinger, self.stop = metrics, notifier, pinger, stop
        self._lock = threading.Lock()
        self._last_cycle: list[dict[str, Any]] = []
        self._retention_due = False

    def last_cycle(self) -> list[dict[str, Any]]:
        """Each service and direction's figures from the last successful archive cycle."""
        with self._lock:
            return list(self._last_cycle)

    def _each_account(self, accounts: Accounts | OvhSource, work: Callable[[Settings, OvhSource], T]) -> list[T]:
        """``work`` once per account (``Accounts.run``); a lone source is the settings' one account."""
        if isinstance(accounts, Accounts):
            return [result for _name, result in accounts.run(work)]
        return [work(self.settings, accounts)]

    def archive(self, accounts: Accounts | OvhSource, store: Store) -> str:
        """One archive cycle (every account), monitored; then retention if it came due meanwhile."""
        with self.pinger.monitored(f"sms-archiver on {self.host}: archive cycle failed\n") as outcome:
            summary = self._archive_cycle(accounts, store)
            outcome.summary = f"sms-archiver on {self.host}: {summary}"
        self.notifier.status(f"last archive ok at {_now():%H:%M:%S} UTC: {summary.splitlines()[0]}")
        with self._lock:
            retention_due, self._retention_due = self._retention_due, False
        if retention_due and not self.stop.is_set():
            self.runner.execute(RETENTION, lambda: self.retention(accounts, store))
        return summary.splitlines()[0]

    def _archive_cycle(self, accounts: Accounts | OvhSource, store: Store) -> str:
        """One cycle; return its summary line, then one line per service and direction."""
        clock = time.monotonic()
        try:
            per_account = self._each_account(
                accounts, lambda account, source: run_archive(account, source, store, stop=self.stop)
            )
            reports = [report for account_reports in per_account for report in account_reports]
        except CycleInterrupted:
            raise  # a stop, not a failure: the next start resumes the cycle
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            self.notifier.status(f"last archive FAILED at {_now():%H:%M:%S} UTC: {first_line(message)}")
            raise
        seconds = time.monotonic() - clock
        self.metrics.observe_cycle(reports, seconds)
        self._observe_holds(store)
        self.metrics.set_service_accounts({report.service: report.account for report in reports})
        with self._lock:
            self._last_cycle = [_report_figures(report) for report in reports]
        return "\n".join([cycle_summary(reports, seconds), *_report_lines(reports)])

    def _observe_holds(self, store: Store) -> None:
        """The active legal holds gauge; a hold that cannot be read is logged (retention stops on it)."""
        try:
            self.metrics.set_legal_holds(active_hold_count(store))
        except ArchiverError as error:
            log.warning("legal_holds_unreadable", error=str(error))

    def retention_due_now(self) -> None:
        """Retention's own schedule fired: it runs after the next successful archive cycle."""
        with self._lock:
            self._retention_due = True
        self.runner.note(RETENTION, "due: runs after the next successful archive")
        log.info("retention_due", runs="after the next successful archive cycle")

    def retention(self, accounts: Accounts | OvhSource, store: Store) -> str:
        """Delete at OVH what the archive verifiably keeps (every account); fail when the deletion cap kept some."""
        reports = self._each_account(
            accounts, lambda account, source: run_retention(account, source, store, apply=True)
        )
        unmatchable: Counter[tuple[str, str]] = Counter()
        for report in reports:
            for decision in report.decisions:
                unmatchable[(decision.service, decision.direction)] += 0  # each pair looked at: its gauge goes to 0
                if decision.action == "deleted":
                    self.metrics.add_deletions(decision.service, decision.direction, 1)
                elif decision.action == "keep" and decision.reason.startswith(HELD_REASON):
                    self.metrics.add_held(decision.service, decision.direction, "ovh", 1)
            for purge in report.purges:
                self.metrics.add_held(purge.service, purge.direction, "archive", purge.held)
            for decision in report.unmatchable:
                unmatchable[(decision.service, decision.direction)] += 1
        if reports:
            self.metrics.set_legal_holds(reports[-1].holds_active)
        self.metrics.set_unmatchable(unmatchable)
        capped = sum(report.capped for report in reports)
        if capped:
            raise ArchiverError(
                f"retention cap reached: {capped} eligible record(s) kept "
                "(SMS_ARCHIVER_RETENTION__MAX_DELETIONS_PER_RUN)"
            )
        deleted = sum(report.deleted for report in reports)
        summary = f"{deleted} record(s) deleted at OVH, {sum(report.count('keep') for report in reports)} kept"
        held = sum(report.held for report in reports)
        archive_held = sum(report.archive_held for report in reports)
        if held or archive_held:
            summary += f" ({held} at OVH and {archive_held} in the archive under a legal hold)"
        never = sum(len(report.unmatchable) for report in reports)
        if never:
            summary += f"; {never} can never match their archived copy (see the log)"
        return summary

    def compact(self, store: Store) -> str:
        """Merge each settled day's parts; return the report's counts."""
        report = run_compact(self.settings.archive_wide(), store)
        counts = {key: value for key, value in asdict(report).items() if isinstance(value, int)}
        return ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in counts.items()) or "done"

    def verify(self, store: Store) -> str:
        """Check every part; raise ``IntegrityError`` counting the problems (each logged, up to a limit)."""
        checks = run_verify(self.settings.archive_wide(), store)
        problems = [(check, problem) for check in checks for problem in check.problems]
        for check, problem in problems[:_PROBLEMS_LOGGED]:
            log.error(
                "verify_problem",
                service=check.service,
                direction=check.direction,
                month=check.label,
                kind=problem.kind,
                key=problem.key,
                detail=problem.detail,
            )
        if problems:
            months = len({id(check) for check, _ in problems})
            raise IntegrityError(
                f"verify found {len(problems)} problem(s) in {months} month(s) (see the verify_problem events, "
                "or run `sms-archiver verify`)"
            )
        return f"{len(checks)} month(s) verified, no problem"


def cycle_summary(reports: list[DirectionReport], seconds: float) -> str:
    """The archive cycle's summary line: rows written, services left to others, malformed records."""
    rows = sum(report.rows_written for report in reports)
    summary = f"{rows} rows written for {len(reports)} service/direction pair(s) in {seconds:.1f} s"
    skipped = sorted({report.service for report in reports if report.skipped})
    if skipped:
        summary += f"; left to other instances (lease held): {', '.join(skipped)}"
    malformed = sum(report.malformed for report in reports)
    if malformed:
        log.warning("malformed_records_skipped", count=malformed, hint="they are retried on every cycle")
        summary += f"; {malformed} malformed record(s) skipped, retried next cycle"
    return summary


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _report_figures(report: DirectionReport) -> dict[str, Any]:
    keys = (
        "service",
        "direction",
        "listed",
        "fetched",
        "rows_written",
        "parts_written",
        "malformed",
        "finished_at",
        "skipped",
        "account",
    )
    return {key: getattr(report, key) for key in keys}


def _report_lines(reports: Iterable[DirectionReport]) -> list[str]:
    return [
        f"{report.service} {report.direction}: listed {report.listed}, fetched {report.fetched}, "
        f"wrote {report.rows_written} rows in {report.parts_written} parts, malformed {report.malformed}"
        for report in reports
    ]
