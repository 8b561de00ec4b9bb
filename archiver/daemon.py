"""``sms-archiver run``: the long-running daemon. Scheduling, signals, sd_notify, health; no business rules.

Start-up: signal handlers, the metrics endpoint (if configured), then the checks systemd waits
for before ``READY=1``: the settings are valid (done by the caller), the store answers (``check``)
and OVH answers (``GET /sms``, or each configured service). A failed check raises the
``ArchiverError`` that says why, so the CLI exits non-zero and ``Restart=on-failure`` retries.

Jobs (APScheduler 3, one thread each, at most one instance of each, late runs still run within
``misfire_grace_seconds`` and piled-up runs are coalesced into one catch-up run):

- ``archive`` at start-up, then every ``schedule.archive``; pings the dead man's switch;
- ``retention``, when enabled: due every ``schedule.retention``, run right after the next
  successful archive (never after a failed one);
- ``compact`` every ``schedule.compact``;
- ``verify`` every ``schedule.verify``, when set.

Compaction, verification and retention intervals count from midnight in the archive's time zone
(``1d``: every midnight), so a daemon restarted daily still compacts; the archive runs at start-up,
then every interval from there. Cron lines use that zone too.

The jobs take turns (one works on the archive at a time): they all take the per-service lease, and
a verify running beside a compaction could report a part that is being replaced. A job's failure
is logged, counted and retried at its next run; it never stops the daemon.

Stop: the first SIGTERM/SIGINT stops scheduling, asks the running cycle to stop at its next safe
point (after a checkpointed chunk) and waits up to ``daemon.shutdown_seconds``; then exit 0. If
the work is still running at that deadline, the process exits at once with status 1. A second
signal exits at once with 128 + its number. The archive stays correct either way: the cursor
never passes data that is not durable, and the lease of a dead local process is taken over at
once by the next start.

After each job, the daemon publishes its schedule and last outcomes to
``_state/_daemons/{host}.json`` for ``sms-archiver status``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog

from archiver import __version__
from archiver.archive import DirectionReport, archive_cycle
from archiver.compact import compact_archive
from archiver.config import Settings
from archiver.errors import ArchiverError, ConfigError, CycleInterrupted, IntegrityError, StorageError
from archiver.layout import daemon_status_key
from archiver.logs import new_run_id
from archiver.metrics import Metrics, MetricsServer, start_metrics_server
from archiver.notify import Notifier, start_heartbeat
from archiver.ping import Pinger
from archiver.retention import run_retention
from archiver.schedule import parse_schedule
from archiver.source import OvhSource
from archiver.state import load_state
from archiver.store import Store, open_store
from archiver.verify import verify_archive

if TYPE_CHECKING:
    from archiver.web.serve import WebServer

__all__ = ["Daemon", "run_daemon"]

log = structlog.get_logger()

ARCHIVE, RETENTION, COMPACT, VERIFY = "archive", "retention", "compact", "verify"
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_daemon(settings: Settings, *, config_path: str | None = None) -> int:
    """Run the daemon until SIGTERM or SIGINT; return 0 after a clean stop.

    Must be called from the main thread (signal handlers). Raises ``ArchiverError`` when a
    start-up check fails (exit non-zero so that systemd restarts later). When the running work
    does not reach a safe point within ``daemon.shutdown_seconds``, or on a second signal, the
    process exits at once (``os._exit``): waiting for the worker thread is what must not happen.
    """
    return Daemon(settings, config_path=config_path).run()


@dataclass(slots=True)
class JobRecord:
    """What the daemon knows of one job's last run, for ``status`` and STATUS=."""

    last_started: str | None = None
    last_finished: str | None = None
    last_outcome: str | None = None  # ok | failed | interrupted | skipped
    last_error: str | None = None
    last_summary: str | None = None
    last_seconds: float | None = None
    last_run_id: str | None = None
    last_success: str | None = None


class _Wakeup:
    """A self-pipe: signal handlers and worker threads wake the main thread without taking a lock.

    A signal handler that set a ``threading.Event`` could deadlock with a main thread interrupted
    inside that event's own lock; a write to a pipe cannot.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe holds wake-ups enough
            os.write(self.write_fd, b"\0")

    def wait(self, timeout: float | None) -> None:
        """Return when woken, or after ``timeout`` seconds (``None``: no limit)."""
        readable, _, _ = select.select([self.read_fd], [], [], None if timeout is None else max(timeout, 0.0))
        if readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.read_fd, 4096):
                    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds") if moment else None


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


class Daemon:
    """The daemon's state: collaborators, scheduler, job records. Use ``run()`` once."""

    def __init__(self, settings: Settings, *, config_path: str | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self.host = socket.gethostname()
        self.notifier = Notifier()
        self.metrics = Metrics(max_age_seconds=settings.metrics.max_age_seconds)
        self.pinger = Pinger(settings.ping)
        self.stop_event = threading.Event()
        self.started_at = _now()
        self.scheduler: Any = None
        self.source: OvhSource | None = None
        self.store: Store | None = None
        self.services: list[str] = []
        self.jobs: dict[str, JobRecord] = {}
        self.last_cycle: list[dict[str, Any]] = []
        self.phase = "starting"  # starting | running | stopping | stopped
        self._wakeup = _Wakeup()
        self._signals: list[int] = []
        self._lock = threading.Lock()  # jobs, last_cycle, counters below
        self._active_jobs = 0
        self._catch_up: set[str] = set()
        self._retention_due = False
        self._turn = threading.Condition()  # one job works on the archive at a time
        self._turn_taken = False
        self._publish_lock = threading.Lock()  # documents are written in the order they are built

    # -- the main thread -------------------------------------------------------------------------

    def run(self) -> int:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("run_daemon() must run in the main thread (it handles SIGTERM and SIGINT)")
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _SIGNALS}
        # Our listener reports missed and skipped runs as structured events; APScheduler's own
        # plain-text warnings would only repeat them outside the JSON log.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        heartbeat = start_heartbeat(self.notifier, self._healthy)
        metrics_server: MetricsServer | None = None
        web_server: WebServer | None = None
        try:
            log.info(
                "daemon_starting",
                version=__version__,
                pid=os.getpid(),
                host=self.host,
                config=self.config_path,
                schedule=self._schedule_settings(),
            )
            self.notifier.status("starting: checking OVH and the storage")
            if self.settings.metrics.listen:
                try:
                    metrics_server = start_metrics_server(self.metrics, self.settings.metrics.listen)
                except OSError as error:
                    raise ConfigError(
                        f"SMS_ARCHIVER_METRICS__LISTEN: cannot listen on {self.settings.metrics.listen}: "
                        f"{error.strerror or error}"
                    ) from None
            if self.settings.web.enabled:  # the history browser beside the scheduler
                from archiver.web.serve import start_beside_daemon

                web_server = start_beside_daemon(self.settings)
            if not self._start_up():
                self.notifier.stopping("stopped during start-up")
                log.info("daemon_stopped", during="start-up")
                return 0
            self._start_scheduler()
            self.phase = "running"
            self._publish_status()
            self.notifier.ready(f"running; archive every {self.settings.schedule.archive}, first cycle now")
            log.info("daemon_ready", services=self.services, jobs=self._next_runs())
            while not self._signals:
                self._wakeup.wait(None)
            return self._shut_down()
        except ArchiverError as error:
            self.notifier.status(f"start-up failed: {_first_line(str(error))}")
            raise
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            if metrics_server is not None:
                metrics_server.stop()
            if web_server is not None:
                web_server.stop()
            if self.source is not None:
                self.source.close()
            self.pinger.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            # The wake-up pipe stays open: an abandoned start-up thread may still write to it.

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._signals:
            # Second signal: leave now. No logging call here (its lock may be held by the
            # interrupted code); one JSON line written straight to stderr.
            line = {"event": "second_signal_exit", "level": "warning", "signal": signal.Signals(signum).name}
            os.write(2, json.dumps(line).encode() + b"\n")
            os._exit(128 + signum)
        self._signals.append(signum)
        self._wakeup.wake()

    def _healthy(self) -> bool:
        """For the watchdog: start-up and shut-down are bounded by systemd's timeouts; else the scheduler runs."""
        if self.phase != "running":
            return True
        scheduler = self.scheduler
        thread = getattr(scheduler, "_thread", None)
        return bool(scheduler is not None and scheduler.running and thread is not None and thread.is_alive())

    def _start_up(self) -> bool:
        """Run the start-up checks in a thread, so that a signal meanwhile is obeyed at once.

        Return False when stopped by a signal; raise the check's ``ArchiverError``.
        """
        outcome: list[BaseException | None] = []

        def checks() -> None:
            try:
                self._check_both_sides()
                outcome.append(None)
            except BaseException as error:  # handed to the main thread, which re-raises it
                outcome.append(error)
            self._wakeup.wake()

        # A daemon thread: on a signal during start-up it is abandoned, mid-request perhaps.
        threading.Thread(target=checks, name="start-up-checks", daemon=True).start()
        while not outcome and not self._signals:
            self._wakeup.wait(None)
        if not outcome:
            return False
        if outcome[0] is not None:
            raise outcome[0]
        return True

    def _check_both_sides(self) -> None:
        settings = self.settings
        store = open_store(settings.storage)
        try:
            check = getattr(store, "check", None)
            if callable(check):
                check()
            else:
                next(iter(store.list("_state/")), None)
        except StorageError as error:
            raise StorageError(f"start-up check of the storage failed: {error}") from error
        source = OvhSource(settings.ovh)
        try:
            if settings.ovh.services:
                for service in settings.ovh.services:
                    source.check_service(service)
                services = list(settings.ovh.services)
            else:
                services = source.list_services()
        except ArchiverError as error:
            source.close()
            raise type(error)(f"start-up check of the OVH API failed: {error}") from error
        self.store, self.source, self.services = store, source, services
        self.metrics.observe_source(source.calls, source.retries)
        # The archive remembers when each pair last completed a cycle: metrics start from there.
        for service in services:
            for direction in settings.archive.directions:
                try:
                    finished = load_state(store, service, direction).last_cycle.get("finished_at")
                except ArchiverError:
                    continue  # a damaged state is the archive job's to report
                if finished:
                    self.metrics.seed_last_success(service, direction, dt.datetime.fromisoformat(finished).timestamp())
        log.info("start_up_checks_passed", storage=store.describe(), services=services)

    def _start_scheduler(self) -> None:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        schedule = self.settings.schedule
        zone = self.settings.archive.timezone
        scheduler = BackgroundScheduler(
            # One thread per job, plus one: a job waiting for its turn still holds its thread.
            executors={"default": ThreadPoolExecutor(max_workers=5)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                # APScheduler's default of 1 s would silently drop a run that starts a little late.
                "misfire_grace_time": schedule.misfire_grace_seconds,
            },
            timezone=zone,
        )

        def add(name: str, spec: str, function: Callable[[], None], **options: Any) -> None:
            scheduler.add_job(function, trigger=_trigger(spec, zone), id=name, name=name, **options)
            self.jobs[name] = JobRecord()

        add(ARCHIVE, schedule.archive, lambda: self._run_job(ARCHIVE, self._archive), next_run_time=_now())
        if self._retention_enabled():
            add(RETENTION, schedule.retention, self._retention_due_now)
        add(COMPACT, schedule.compact, lambda: self._run_job(COMPACT, self._compact))
        if schedule.verify:
            add(VERIFY, schedule.verify, lambda: self._run_job(VERIFY, self._verify))
        scheduler.add_listener(self._on_scheduler_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        scheduler.add_listener(self._on_job_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self.scheduler = scheduler  # before start(): the first job runs at once and looks at it
        scheduler.start()

    def _on_scheduler_event(self, event: Any) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        if event.code == EVENT_JOB_MAX_INSTANCES:
            # The previous run is still going: run once more as soon as it ends (piled-up runs coalesce).
            with self._lock:
                self._catch_up.add(event.job_id)
            log.info("job_run_deferred", job=event.job_id, reason="the previous run is still going")
        else:
            log.warning(
                "job_run_missed",
                job=event.job_id,
                scheduled=_iso(event.scheduled_run_time),
                reason=f"started more than {self.settings.schedule.misfire_grace_seconds} s late; "
                "SMS_ARCHIVER_SCHEDULE__MISFIRE_GRACE_SECONDS allows more",
            )

    def _on_job_done(self, event: Any) -> None:
        # APScheduler counts the run as finished only after the job function returned, just before
        # this event: a catch-up scheduled from inside the job would find it still running.
        from apscheduler.jobstores.base import JobLookupError
        from apscheduler.schedulers import SchedulerNotRunningError

        with self._lock:
            catch_up = event.job_id in self._catch_up
            self._catch_up.discard(event.job_id)
        if catch_up and not self.stop_event.is_set():
            try:
                self.scheduler.modify_job(event.job_id, next_run_time=_now())
            except (JobLookupError, SchedulerNotRunningError) as error:  # stopping: no catch-up wanted
                log.debug("catch_up_not_scheduled", job=event.job_id, error_type=type(error).__name__)

    def _shut_down(self) -> int:
        signum = self._signals[0]
        grace = self.settings.daemon.shutdown_seconds
        log.info("shutdown_requested", signal=signal.Signals(signum).name, grace_seconds=grace)
        self.phase = "stopping"
        self.notifier.stopping("stopping: letting the running work reach a safe point")
        self.stop_event.set()
        with self._turn:
            self._turn.notify_all()
        self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + grace
        while self._active() and time.monotonic() < deadline:
            self._wakeup.wait(deadline - time.monotonic())
        if self._active():
            log.error(
                "shutdown_forced",
                grace_seconds=grace,
                reason="the running work did not reach a safe point in time; the archive is consistent "
                "and the next start resumes it",
            )
            # No status published: a slow store must not delay an exit that is already late.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        self.phase = "stopped"
        self._publish_status()
        log.info("daemon_stopped", signal=signal.Signals(signum).name)
        return 0

    def _active(self) -> int:
        with self._lock:
            return self._active_jobs

    # -- jobs (worker threads) -------------------------------------------------------------------

    def _run_job(self, name: str, body: Callable[[], str]) -> None:
        """Run one job: a fresh run id, one outcome logged and counted, status published. Never raises."""
        if self.stop_event.is_set():
            return  # submitted before the stop, started after it
        with self._lock:
            self._active_jobs += 1
        structlog.contextvars.clear_contextvars()
        try:
            with self._turn_to_work() as our_turn:
                if our_turn:
                    self._execute(name, body)
        finally:
            self._after_job(name)
            structlog.contextvars.clear_contextvars()
            with self._lock:
                self._active_jobs -= 1
            self._wakeup.wake()

    def _execute(self, name: str, body: Callable[[], str]) -> str:
        """Run ``body`` as job ``name``; record and log its outcome; return the outcome."""
        outer_context = structlog.contextvars.get_contextvars()  # retention runs inside the archive job
        run_id = new_run_id()
        structlog.contextvars.bind_contextvars(job=name)
        started, clock = _now(), time.monotonic()
        with self._lock:
            record = self.jobs.setdefault(name, JobRecord())
            record.last_started, record.last_run_id = _iso(started), run_id
        log.info("job_started")
        error_text: str | None = None
        summary: str | None = None
        try:
            summary = body()
            outcome = "ok"
        except CycleInterrupted as error:
            outcome, error_text = "interrupted", str(error)
            log.info("job_interrupted", reason=str(error))
        except ArchiverError as error:
            outcome, error_text = "failed", str(error)
            log.error("job_failed", error_type=type(error).__name__, error=str(error), retry="at the next run")
        except Exception as error:
            # A bug, not an anticipated failure: logged with its traceback and counted, never fatal,
            # because one job's failure must not stop the others.
            outcome, error_text = "failed", f"{type(error).__name__}: {error}"
            log.exception("job_failed", error_type=type(error).__name__, retry="at the next run")
        seconds = round(time.monotonic() - clock, 3)
        if outcome == "ok":
            log.info("job_finished", seconds=seconds, summary=summary)
        self.metrics.job_finished(name, outcome)
        if self.source is not None:
            # Still in this job's turn: no other job is using the source while its counters are read.
            self.metrics.observe_source(self.source.calls, self.source.retries)
        with self._lock:
            record.last_finished, record.last_outcome, record.last_seconds = _iso(_now()), outcome, seconds
            record.last_error = _first_line(error_text) if error_text else None
            record.last_summary = summary
            if outcome == "ok":
                record.last_success = record.last_finished
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**outer_context)
        return outcome

    @contextmanager
    def _turn_to_work(self) -> Iterator[bool]:
        """Wait for the other jobs to finish with the archive; yield False if stopping meanwhile."""
        with self._turn:
            self._turn.wait_for(lambda: not self._turn_taken or self.stop_event.is_set())
            if self.stop_event.is_set():
                our_turn = False
            else:
                self._turn_taken = our_turn = True
        try:
            yield our_turn
        finally:
            if our_turn:
                with self._turn:
                    self._turn_taken = False
                    self._turn.notify_all()

    def _after_job(self, name: str) -> None:
        self._publish_status()

    def _archive(self) -> str:
        assert self.source is not None and self.store is not None
        self.pinger.start()
        clock = time.monotonic()
        try:
            reports = archive_cycle(self.settings, self.source, self.store, stop=self.stop_event)
        except CycleInterrupted:
            raise  # a stop, not a failure: the next start resumes the cycle
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            self.pinger.fail(f"sms-archiver on {self.host}: archive cycle failed\n{message}")
            self.notifier.status(f"last archive FAILED at {_now():%H:%M:%S} UTC: {_first_line(message)}")
            raise
        seconds = time.monotonic() - clock
        self.metrics.observe_cycle(reports, seconds)
        rows = sum(report.rows_written for report in reports)
        summary = f"{rows} rows written for {len(reports)} service/direction pair(s) in {seconds:.1f} s"
        skipped = sorted({report.service for report in reports if report.skipped})
        if skipped:
            summary += f"; left to other instances (lease held): {', '.join(skipped)}"
        malformed = sum(report.malformed for report in reports)
        if malformed:
            log.warning("malformed_records_skipped", count=malformed, hint="they are retried on every cycle")
            summary += f"; {malformed} malformed record(s) skipped, retried next cycle"
        with self._lock:
            self.last_cycle = [_report_summary(report) for report in reports]
        self.pinger.success(f"sms-archiver on {self.host}: {summary}\n" + "\n".join(_report_lines(reports)))
        self.notifier.status(f"last archive ok at {_now():%H:%M:%S} UTC: {summary}")
        with self._lock:
            retention_due, self._retention_due = self._retention_due, False
        if retention_due and not self.stop_event.is_set():
            self._execute(RETENTION, self._retention)
        return summary

    # -- retention ------------------------------------------------------------------------------------
    # Retention is due on its own schedule and runs right after the next successful archive cycle,
    # inside the archive job's turn, so that it never follows a failed cycle nor runs beside a job.

    def _retention_enabled(self) -> bool:
        return self.settings.retention.enabled

    def _retention_due_now(self) -> None:
        with self._lock:
            self._retention_due = True
            self.jobs.setdefault(RETENTION, JobRecord()).last_summary = "due: runs after the next successful archive"
        log.info("retention_due", runs="after the next successful archive cycle")

    def _retention(self) -> str:
        assert self.source is not None and self.store is not None
        report = run_retention(self.settings, self.source, self.store, apply=True)
        unmatchable: Counter[tuple[str, str]] = Counter()
        for decision in report.decisions:
            unmatchable[(decision.service, decision.direction)] += 0  # each pair looked at: its gauge goes back to 0
            if decision.action == "deleted":
                self.metrics.add_deletions(decision.service, decision.direction, 1)
        for decision in report.unmatchable:
            unmatchable[(decision.service, decision.direction)] += 1
        self.metrics.set_unmatchable(unmatchable)
        if report.capped:
            raise ArchiverError(
                f"retention cap reached: {report.capped} eligible record(s) kept "
                "(SMS_ARCHIVER_RETENTION__MAX_DELETIONS_PER_RUN)"
            )
        summary = f"{report.deleted} record(s) deleted at OVH, {report.count('keep')} kept"
        if report.unmatchable:
            summary += f"; {len(report.unmatchable)} can never match their archived copy (see the log)"
        return summary

    # -- compaction and verification -----------------------------------------------------------------

    def _compact(self) -> str:
        assert self.store is not None
        report = compact_archive(self.settings, self.store)
        counts = {key: value for key, value in asdict(report).items() if isinstance(value, int)}
        return ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in counts.items()) or "done"

    def _verify(self) -> str:
        assert self.store is not None
        checks = verify_archive(self.settings, self.store)
        problems = [(check, problem) for check in checks for problem in check.problems]
        for check, problem in problems[:50]:
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

    # -- status --------------------------------------------------------------------------------------

    def _schedule_settings(self) -> dict[str, str]:
        schedule = self.settings.schedule
        plan = {ARCHIVE: schedule.archive, COMPACT: schedule.compact}
        if self._retention_enabled():
            plan[RETENTION] = schedule.retention
        if schedule.verify:
            plan[VERIFY] = schedule.verify
        return plan

    def _next_runs(self) -> dict[str, str | None]:
        scheduler = self.scheduler
        if scheduler is None or self.phase != "running":
            return {}
        return {job.id: _iso(job.next_run_time) for job in scheduler.get_jobs()}

    def status_document(self) -> dict[str, Any]:
        """What ``sms-archiver status`` shows of this daemon."""
        next_runs = self._next_runs()
        with self._lock:
            jobs = {
                name: {"schedule": spec, "next_run": next_runs.get(name), **asdict(self.jobs.get(name, JobRecord()))}
                for name, spec in self._schedule_settings().items()
            }
            last_cycle = list(self.last_cycle)
        return {
            "host": self.host,
            "pid": os.getpid(),
            "version": __version__,
            "state": self.phase,
            "started_at": _iso(self.started_at),
            "updated_at": _iso(_now()),
            "services": self.services,
            "jobs": jobs,
            "last_cycle": last_cycle,
            "metrics": self.settings.metrics.listen or None,
        }

    def _publish_status(self) -> None:
        if self.store is None:
            return
        try:
            with self._publish_lock:
                document = self.status_document()
                data = json.dumps(document, indent=2, sort_keys=True).encode()
                self.store.put(daemon_status_key(self.host), data)
        except ArchiverError as error:
            # Status is for people; the archive does not depend on it.
            log.warning("status_publish_failed", error=str(error))


def _trigger(spec: str, zone: str) -> Any:
    """The schedule's trigger; intervals counted from midnight of 2000-01-01 in ``zone``.

    APScheduler counts an interval from the moment the job is added, so a daemon restarted more
    often than daily would never compact. Anchored, ``1d`` means every midnight whenever the daemon
    started. (A job given a first run time, like the archive at start-up, counts from that run.)
    """
    from apscheduler.triggers.interval import IntervalTrigger

    trigger = parse_schedule(spec, timezone=zone)
    if isinstance(trigger, IntervalTrigger):
        anchor = dt.datetime(2000, 1, 1, tzinfo=zoneinfo.ZoneInfo(zone))
        return IntervalTrigger(seconds=int(trigger.interval_length), start_date=anchor, timezone=zone)
    return trigger


def _report_summary(report: DirectionReport) -> dict[str, Any]:
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
    )
    return {key: getattr(report, key) for key in keys}


def _report_lines(reports: Iterable[DirectionReport]) -> list[str]:
    return [
        f"{report.service} {report.direction}: listed {report.listed}, fetched {report.fetched}, "
        f"wrote {report.rows_written} rows in {report.parts_written} parts, malformed {report.malformed}"
        for report in reports
    ]
