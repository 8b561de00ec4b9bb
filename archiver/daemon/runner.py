"""How the daemon runs a job: one at a time, with a run id, one outcome logged, counted and recorded.

The jobs take turns (one works on the archive at a time): they all take the per-service lease, and
a verify running beside a compaction could report a part that is being replaced. A job waiting for
its turn gives up when the daemon stops. A job's failure is logged, counted and retried at its next
run; it never stops the daemon, nor the other jobs.

Log events: ``job_started``, then ``job_finished`` (with its summary), ``job_interrupted`` (a stop
at a safe point) or ``job_failed`` (``retry="at the next run"``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import structlog

from archiver.errors import ArchiverError, CycleInterrupted
from archiver.logs import new_run_id
from archiver.metrics import Metrics

__all__ = ["JobRecord", "JobRunner", "first_line", "iso"]

log = structlog.get_logger()

JobBody = Callable[[], str]  # does the job's work; returns its one-line summary, or raises


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


def iso(moment: dt.datetime | None) -> str | None:
    """An instant as ISO 8601 in UTC, to the second (``None`` stays ``None``)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds") if moment else None


def first_line(text: str, limit: int = 300) -> str:
    """The first line of ``text``, at most ``limit`` characters: what a status line has room for."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


class JobRunner:
    """Runs job bodies one at a time, and keeps each job's ``JobRecord``.

    ``after_body`` runs still inside the job's turn (e.g. reading the source's counters, which no
    other job is using then); ``after_job`` runs once the turn is given back, while the job still
    counts as active; ``wake`` once it no longer does (the main thread waits for that to stop).
    """

    def __init__(
        self,
        metrics: Metrics,
        stop: threading.Event,
        *,
        after_body: Callable[[], None] = lambda: None,
        after_job: Callable[[], None] = lambda: None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.metrics = metrics
        self.stop = stop
        self._after_body, self._after_job, self._wake = after_body, after_job, wake
        self._lock = threading.Lock()  # records and the count of active jobs
        self._records: dict[str, JobRecord] = {}
        self._active = 0
        self._turn = threading.Condition()
        self._turn_taken = False

    def add(self, name: str) -> None:
        """Start a fresh record for job ``name``."""
        with self._lock:
            self._records[name] = JobRecord()

    def note(self, name: str, summary: str) -> None:
        """Say something of job ``name`` between its runs (e.g. that it is due)."""
        with self._lock:
            self._records.setdefault(name, JobRecord()).last_summary = summary

    def records(self) -> dict[str, JobRecord]:
        """A copy of every job's record."""
        with self._lock:
            return {name: replace(record) for name, record in self._records.items()}

    def active(self) -> int:
        """How many jobs are running or waiting for their turn."""
        with self._lock:
            return self._active

    def release_waiters(self) -> None:
        """On a stop: wake every job waiting for its turn, so that it gives up."""
        with self._turn:
            self._turn.notify_all()

    def run(self, name: str, body: JobBody) -> None:
        """Run one job in its turn: a fresh run id, one outcome logged and counted. Never raises."""
        if self.stop.is_set():
            return  # submitted before the stop, started after it
        with self._lock:
            self._active += 1
        structlog.contextvars.clear_contextvars()
        try:
            with self.turn() as our_turn:
                if our_turn:
                    self.execute(name, body)
        finally:
            self._after_job()
            structlog.contextvars.clear_contextvars()
            with self._lock:
                self._active -= 1
            self._wake()

    @contextmanager
    def turn(self) -> Iterator[bool]:
        """Wait for the other jobs to finish with the archive; yield False if stopping meanwhile."""
        with self._turn:
            self._turn.wait_for(lambda: not self._turn_taken or self.stop.is_set())
            if self.stop.is_set():
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

    def execute(self, name: str, body: JobBody) -> str:
        """Run ``body`` as job ``name`` in the caller's turn; record and log its outcome; return the outcome.

        A job may execute another inside its own turn (retention after the archive): the caller's
        log context is restored afterwards.
        """
        outer_context = structlog.contextvars.get_contextvars()
        run_id = new_run_id()
        structlog.contextvars.bind_contextvars(job=name)
        started, clock = dt.datetime.now(dt.UTC), time.monotonic()
        with self._lock:
            record = self._records.setdefault(name, JobRecord())
            record.last_started, record.last_run_id = iso(started), run_id
        log.info("job_started")
        outcome, summary, error_text = _outcome_of(body)
        seconds = round(time.monotonic() - clock, 3)
        if outcome == "ok":
            log.info("job_finished", seconds=seconds, summary=summary)
        self.metrics.job_finished(name, outcome)
        self._after_body()
        with self._lock:
            record.last_finished, record.last_outcome, record.last_seconds = (
                iso(dt.datetime.now(dt.UTC)),
                outcome,
                seconds,
            )
            record.last_error = first_line(error_text) if error_text else None
            record.last_summary = summary
            if outcome == "ok":
                record.last_success = record.last_finished
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**outer_context)
        return outcome


def _outcome_of(body: JobBody) -> tuple[str, str | None, str | None]:
    """Call ``body``; return its outcome (ok, interrupted, failed), its summary and its error's text."""
    try:
        return "ok", body(), None
    except CycleInterrupted as error:
        log.info("job_interrupted", reason=str(error))
        return "interrupted", None, str(error)
    except ArchiverError as error:
        log.error("job_failed", error_type=type(error).__name__, error=str(error), retry="at the next run")
        return "failed", None, str(error)
    except Exception as error:
        # A bug, not an anticipated failure: logged with its traceback and counted, never fatal,
        # because one job's failure must not stop the others.
        log.exception("job_failed", error_type=type(error).__name__, retry="at the next run")
        return "failed", None, f"{type(error).__name__}: {error}"
