"""The daemon's life: start, signals, readiness, the watchdog's health, stop.

Start-up: signal handlers, the metrics endpoint (if configured), then the start-up check
(``startup.py``) in a thread, so that a signal meanwhile is obeyed at once; then the scheduler
(``scheduler.py``) and ``READY=1``.

Stop: the first SIGTERM/SIGINT stops scheduling, asks the running cycle to stop at its next safe
point (after a checkpointed chunk) and waits up to ``daemon.shutdown_seconds``; then exit 0. If
the work is still running at that deadline, the process exits at once with status 1. A second
signal exits at once with 128 + its number. The archive stays correct either way: the cursor
never passes data that is not durable, and the lease of a dead local process is taken over at
once by the next start.
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
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog

from archiver import __version__
from archiver.config import Settings
from archiver.daemon.jobs import ARCHIVE, COMPACT, RETENTION, VERIFY, Jobs, planned_jobs
from archiver.daemon.notify import Notifier, start_heartbeat
from archiver.daemon.published import Publisher, status_document
from archiver.daemon.runner import JobRunner, first_line
from archiver.daemon.scheduler import CatchUp, anchored_trigger, listen, new_scheduler, next_runs
from archiver.daemon.startup import Connected, connect_both_sides
from archiver.errors import ArchiverError, ConfigError
from archiver.metrics import Metrics, MetricsServer, start_metrics_server
from archiver.ping import Pinger
from archiver.services import Accounts
from archiver.store import Store

if TYPE_CHECKING:
    from archiver.web.serve import WebServer

__all__ = ["Daemon", "run_daemon"]

log = structlog.get_logger()

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_daemon(settings: Settings, *, config_path: str | None = None) -> int:
    """Run the daemon until SIGTERM or SIGINT; return 0 after a clean stop.

    Must be called from the main thread (signal handlers). Raises ``ArchiverError`` when a
    start-up check fails (exit non-zero so that systemd restarts later). When the running work
    does not reach a safe point within ``daemon.shutdown_seconds``, or on a second signal, the
    process exits at once (``os._exit``): waiting for the worker thread is what must not happen.
    """
    return Daemon(settings, config_path=config_path).run()


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


class Daemon:
    """The daemon's state: collaborators, scheduler, jobs. Use ``run()`` once."""

    def __init__(self, settings: Settings, *, config_path: str | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self.host = socket.gethostname()
        self.notifier = Notifier()
        self.metrics = Metrics(max_age_seconds=settings.metrics.max_age_seconds)
        self.pinger = Pinger(settings.ping)
        self.stop_event = threading.Event()
        self.started_at = dt.datetime.now(dt.UTC)
        self.scheduler: Any = None
        self.accounts: Accounts | None = None
        self.store: Store | None = None
        self.services: list[str] = []
        self.phase = "starting"  # starting | running | stopping | stopped
        self._wakeup = _Wakeup()
        self._signals: list[int] = []
        self.runner = JobRunner(
            self.metrics,
            self.stop_event,
            after_body=self._observe_source,
            after_job=self._publish_status,
            wake=self._wakeup.wake,
        )
        self.jobs = Jobs(
            settings,
            self.runner,
            host=self.host,
            metrics=self.metrics,
            notifier=self.notifier,
            pinger=self.pinger,
            stop=self.stop_event,
        )
        self._catch_up = CatchUp(self.stop_event, misfire_grace_seconds=settings.schedule.misfire_grace_seconds)
        self._publisher = Publisher(self.host)

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
                schedule=planned_jobs(self.settings),
            )
            self.notifier.status("starting: checking OVH and the storage")
            metrics_server = self._serve_metrics()
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
            self.notifier.status(f"start-up failed: {first_line(str(error))}")
            raise
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            if metrics_server is not None:
                metrics_server.stop()
            if web_server is not None:
                web_server.stop()
            if self.accounts is not None:
                self.accounts.close()
            self.pinger.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            # The wake-up pipe stays open: an abandoned start-up thread may still write to it.

    def _serve_metrics(self) -> MetricsServer | None:
        """Serve /metrics and /healthz if configured; an address that cannot be listened on is a setting error."""
        listen_on = self.settings.metrics.listen
        if not listen_on:
            return None
        try:
            return start_metrics_server(self.metrics, listen_on)
        except OSError as error:
            raise ConfigError(
                f"SMS_ARCHIVER_METRICS__LISTEN: cannot listen on {listen_on}: {error.strerror or error}"
            ) from None

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
        thread = getattr(scheduler, "_thread", None)  # APScheduler's BackgroundScheduler keeps its thread there
        return bool(scheduler is not None and scheduler.running and thread is not None and thread.is_alive())

    def _start_up(self) -> bool:
        """Run the start-up check in a thread, so that a signal meanwhile is obeyed at once.

        Return False when stopped by a signal; raise the check's ``ArchiverError``.
        """
        outcome: list[Connected | BaseException] = []

        def check() -> None:
            try:
                outcome.append(connect_both_sides(self.settings, self.metrics))
            except BaseException as error:  # handed to the main thread, which re-raises it
                outcome.append(error)
            self._wakeup.wake()

        # A daemon thread: on a signal during start-up it is abandoned, mid-request perhaps.
        threading.Thread(target=check, name="start-up-checks", daemon=True).start()
        while not outcome and not self._signals:
            self._wakeup.wait(None)
        if not outcome:
            return False
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        self.store, self.accounts, self.services = outcome[0].store, outcome[0].accounts, outcome[0].services
        return True

    def _shut_down(self) -> int:
        signum = self._signals[0]
        grace = self.settings.daemon.shutdown_seconds
        log.info("shutdown_requested", signal=signal.Signals(signum).name, grace_seconds=grace)
        self.phase = "stopping"
        self.notifier.stopping("stopping: letting the running work reach a safe point")
        self.stop_event.set()
        self.runner.release_waiters()
        self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + grace
        while self.runner.active() and time.monotonic() < deadline:
            self._wakeup.wait(deadline - time.monotonic())
        if self.runner.active():
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

    # -- the scheduler ---------------------------------------------------------------------------

    def _start_scheduler(self) -> None:
        zone = self.settings.archive.timezone
        scheduler = new_scheduler(self.settings.schedule, zone)
        run_now = {ARCHIVE: {"next_run_time": dt.datetime.now(dt.UTC)}}
        for name, spec in planned_jobs(self.settings).items():
            function = self._scheduled_function(name)
            scheduler.add_job(
                function, trigger=anchored_trigger(spec, zone), id=name, name=name, **run_now.get(name, {})
            )
            self.runner.add(name)
        listen(scheduler, run_not_started=self._on_scheduler_event, run_done=self._on_job_done)
        self.scheduler = scheduler  # before start(): the first job runs at once and looks at it
        scheduler.start()

    def _scheduled_function(self, name: str) -> Callable[[], None]:
        """What the scheduler calls for job ``name``; the bodies are looked up at each run."""
        if name == RETENTION:
            return self.jobs.retention_due_now  # runs after the next archive, in its turn
        bodies: dict[str, Callable[[], str]] = {
            ARCHIVE: lambda: self._archive(),
            COMPACT: lambda: self._compact(),
            VERIFY: lambda: self._verify(),
        }
        body = bodies[name]
        return lambda: self.runner.run(name, body)

    def _on_scheduler_event(self, event: Any) -> None:
        self._catch_up.run_not_started(event)

    def _on_job_done(self, event: Any) -> None:
        self._catch_up.run_done(event, self.scheduler)

    def _next_runs(self) -> dict[str, str | None]:
        if self.scheduler is None or self.phase != "running":
            return {}
        return next_runs(self.scheduler)

    # -- the job bodies (worker threads), bound to what start-up connected ------------------------

    def _archive(self) -> str:
        assert self.accounts is not None and self.store is not None
        return self.jobs.archive(self.accounts, self.store)

    def _compact(self) -> str:
        assert self.store is not None
        return self.jobs.compact(self.store)

    def _verify(self) -> str:
        assert self.store is not None
        return self.jobs.verify(self.store)

    def _observe_source(self) -> None:
        if self.accounts is not None:
            # Still in the job's turn: no other job is using the sources while their counters are read.
            self.metrics.observe_source(self.accounts.calls(), self.accounts.retries())

    # -- status ----------------------------------------------------------------------------------

    def status_document(self) -> dict[str, Any]:
        """What ``sms-archiver status`` shows of this daemon."""
        return status_document(
            host=self.host,
            state=self.phase,
            started_at=self.started_at,
            services=self.services,
            plan=planned_jobs(self.settings),
            next_runs=self._next_runs(),
            records=self.runner.records(),
            last_cycle=self.jobs.last_cycle(),
            metrics_listen=self.settings.metrics.listen,
        )

    def _publish_status(self) -> None:
        if self.store is not None:
            self._publisher.publish(self.store, self.status_document)
