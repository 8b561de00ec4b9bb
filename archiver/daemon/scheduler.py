"""When the daemon's jobs run: APScheduler 3, its triggers, and the catch-up of a run that came due too soon.

One thread per job, at most one instance of each; late runs still run within
``misfire_grace_seconds``, and runs that pile up while the previous one goes on are coalesced
into one catch-up run, started as soon as that one ends.

Compaction, verification and retention intervals count from midnight on the clock of the
archive's time zone (``1d``: every midnight, summer time included), so a daemon restarted daily
still compacts; the archive runs at start-up, then every interval from there. Cron lines use that
zone too.

Log events: ``job_run_deferred`` (a catch-up will follow), ``job_run_missed`` (too late to run).
"""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from collections.abc import Callable
from typing import Any

import structlog
from apscheduler.triggers.base import BaseTrigger

from archiver.config import ScheduleSettings
from archiver.daemon.runner import iso
from archiver.schedule import parse_schedule

__all__ = ["CatchUp", "WallClockInterval", "anchored_trigger", "listen", "new_scheduler", "next_runs"]

log = structlog.get_logger()


def new_scheduler(schedule: ScheduleSettings, zone: str) -> Any:
    """A background scheduler in ``zone``, not started, with the daemon's job defaults."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    return BackgroundScheduler(
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


def listen(scheduler: Any, *, run_not_started: Callable[[Any], None], run_done: Callable[[Any], None]) -> None:
    """Call ``run_not_started`` for a run missed or deferred, ``run_done`` after each run."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

    scheduler.add_listener(run_not_started, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    scheduler.add_listener(run_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)


def next_runs(scheduler: Any) -> dict[str, str | None]:
    """When each scheduled job runs next (ISO, UTC)."""
    return {job.id: iso(job.next_run_time) for job in scheduler.get_jobs()}


def anchored_trigger(spec: str, zone: str) -> Any:
    """The schedule's trigger: a cron line as it is; an interval counted on the local clock from midnight.

    APScheduler counts an interval from the moment the job is added, so a daemon restarted more
    often than daily would never compact. Anchored, ``1d`` means every midnight whenever the daemon
    started. (A job given a first run time, like the archive at start-up, counts from that run.)
    """
    from apscheduler.triggers.interval import IntervalTrigger

    trigger = parse_schedule(spec, timezone=zone)
    if isinstance(trigger, IntervalTrigger):
        return WallClockInterval(int(trigger.interval_length), zone)
    return trigger


class WallClockInterval(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 ships no types
    """Every ``seconds`` of wall-clock time in ``zone``, counted from local midnight of 2000-01-01.

    APScheduler's own interval counts elapsed seconds: anchored at a winter midnight, ``1d`` would
    fire at 01:00 under summer time. Counted on the local clock, it is every midnight all year round.
    A time the clocks skip (spring forward) fires an hour on; a time they repeat (fall back) fires
    once.
    """

    # Readings of the local clock are tagged UTC, a zone without summer time, so that adding to a
    # reading moves the clock's hands and nothing else.
    _ANCHOR = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

    def __init__(self, seconds: int, zone: str) -> None:
        if seconds <= 0:
            raise ValueError(f"an interval must be positive, got {seconds} s")
        self.step = dt.timedelta(seconds=seconds)
        self.zone = zoneinfo.ZoneInfo(zone)

    def get_next_fire_time(self, previous_fire_time: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        """One step of the local clock after the previous fire time, or the grid's first at ``now`` or later.

        Counted from the previous fire time, a job given a first run time (the archive at start-up)
        keeps counting from that run, as APScheduler's own interval does.
        """
        if previous_fire_time is not None:
            after = previous_fire_time
            candidate = self._reading(previous_fire_time) + self.step
        else:
            after = now
            steps, rest = divmod(self._reading(now) - self._ANCHOR, self.step)
            candidate = self._ANCHOR + (steps if rest == dt.timedelta(0) else steps + 1) * self.step
        while True:
            # Through UTC and back: a reading the clocks skip becomes the instant an hour on.
            fire = candidate.replace(tzinfo=self.zone).astimezone(dt.UTC).astimezone(self.zone)
            if fire > after or (fire == after and previous_fire_time is None):
                return fire
            candidate += self.step

    def _reading(self, moment: dt.datetime) -> dt.datetime:
        """What the local clock reads at ``moment`` (tagged UTC: see ``_ANCHOR``)."""
        return moment.astimezone(self.zone).replace(tzinfo=dt.UTC, fold=0)

    def __str__(self) -> str:
        return f"every {int(self.step.total_seconds())} s of the clock in {self.zone.key}"

    def __repr__(self) -> str:
        return f"<WallClockInterval (seconds={int(self.step.total_seconds())}, zone={self.zone.key!r})>"


class CatchUp:
    """Runs that came due while the previous run of their job went on: one catch-up run each."""

    def __init__(self, stop: threading.Event, *, misfire_grace_seconds: float) -> None:
        self.stop = stop
        self.misfire_grace_seconds = misfire_grace_seconds
        self._lock = threading.Lock()
        self._pending: set[str] = set()

    def run_not_started(self, event: Any) -> None:
        """A run was deferred (its previous run goes on: catch up later) or missed (too late: say so)."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        if event.code == EVENT_JOB_MAX_INSTANCES:
            # Piled-up runs coalesce: one catch-up, however many came due.
            with self._lock:
                self._pending.add(event.job_id)
            log.info("job_run_deferred", job=event.job_id, reason="the previous run is still going")
        else:
            log.warning(
                "job_run_missed",
                job=event.job_id,
                scheduled=iso(event.scheduled_run_time),
                reason=f"started more than {self.misfire_grace_seconds} s late; "
                "SMS_ARCHIVER_SCHEDULE__MISFIRE_GRACE_SECONDS allows more",
            )

    def run_done(self, event: Any, scheduler: Any) -> None:
        """A run ended: start its catch-up now if one is pending (and the daemon is not stopping)."""
        # APScheduler counts the run as finished only after the job function returned, just before
        # this event: a catch-up scheduled from inside the job would find it still running.
        from apscheduler.jobstores.base import JobLookupError
        from apscheduler.schedulers import SchedulerNotRunningError

        with self._lock:
            pending = event.job_id in self._pending
            self._pending.discard(event.job_id)
        if pending and not self.stop.is_set():
            try:
                scheduler.modify_job(event.job_id, next_run_time=dt.datetime.now(dt.UTC))
            except (JobLookupError, SchedulerNotRunningError) as error:  # stopping: no catch-up wanted
                log.debug("catch_up_not_scheduled", job=event.job_id, error_type=type(error).__name__)
