"""When the daemon's jobs run (archiver/daemon/scheduler.py): anchored triggers and catch-up runs."""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from archiver.daemon.scheduler import CatchUp, anchored_trigger

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
UTC_INSTANTS = st.datetimes(
    min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 12, 31), timezones=st.just(dt.UTC)
)


@given(now=UTC_INSTANTS, zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Australia/Sydney"]))
def test_a_daily_interval_fires_at_the_next_local_midnight_whenever_the_daemon_started(
    now: dt.datetime, zone: str
) -> None:
    trigger = anchored_trigger("1d", zone)
    fire = trigger.get_next_fire_time(None, now)
    local = fire.astimezone(zoneinfo.ZoneInfo(zone))
    assert (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
    assert now <= fire and fire - now <= dt.timedelta(hours=25)  # 25: the night the clocks go back
    following = trigger.get_next_fire_time(fire, fire)
    assert following.astimezone(zoneinfo.ZoneInfo(zone)).date() == local.date() + dt.timedelta(days=1)
    assert following.astimezone(zoneinfo.ZoneInfo(zone)).time() == dt.time(0, 0)


def test_a_daily_interval_fires_at_local_midnight_under_summer_time_too() -> None:
    """The bug this trigger fixes: counted in elapsed seconds from a winter midnight, 1d fired at 01:00 in July."""
    summer = dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC)
    fire = anchored_trigger("1d", "Europe/Paris").get_next_fire_time(None, summer)
    assert fire.astimezone(PARIS).replace(tzinfo=None) == dt.datetime(2026, 7, 2, 0, 0)


def test_a_job_given_a_first_run_counts_from_that_run() -> None:
    """The archive runs at start-up, then every interval from there (README, the daemon's schedule)."""
    started = dt.datetime(2026, 3, 29, 0, 43, 12, tzinfo=dt.UTC)  # 01:43:12 in Paris; at 02:00 it is 03:00
    trigger = anchored_trigger("1h", "Europe/Paris")
    fire = trigger.get_next_fire_time(started, started)
    assert fire.astimezone(PARIS).replace(tzinfo=None) == dt.datetime(2026, 3, 29, 3, 43, 12)  # 02:43 does not exist
    assert trigger.get_next_fire_time(fire, fire).astimezone(PARIS).replace(tzinfo=None) == dt.datetime(
        2026, 3, 29, 4, 43, 12
    )


@given(
    now=UTC_INSTANTS,
    seconds=st.sampled_from([10, 60, 900, 3600, 6 * 3600, 7 * 3600, 86400, 2 * 86400, 7 * 86400]),
)
def test_the_fire_times_of_any_interval_only_move_forward(now: dt.datetime, seconds: int) -> None:
    trigger = anchored_trigger(f"{seconds}s", "Europe/Paris")
    fire = trigger.get_next_fire_time(None, now)
    assert now <= fire <= now + dt.timedelta(seconds=seconds) + dt.timedelta(hours=1)
    following = trigger.get_next_fire_time(fire, fire)
    assert fire < following <= fire + dt.timedelta(seconds=seconds) + dt.timedelta(hours=1)


@given(now=UTC_INSTANTS)
def test_a_six_hour_interval_fires_on_the_quarters_of_the_local_day(now: dt.datetime) -> None:
    fire = anchored_trigger("6h", "UTC").get_next_fire_time(None, now)
    assert fire.hour % 6 == 0 and (fire.minute, fire.second) == (0, 0)
    assert now <= fire and fire - now <= dt.timedelta(hours=6)


def test_a_cron_line_is_taken_as_it_is_in_the_archive_zone() -> None:
    trigger = anchored_trigger("30 2 * * *", "Europe/Paris")
    assert isinstance(trigger, CronTrigger)
    fire = trigger.get_next_fire_time(None, dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC))
    assert fire.astimezone(PARIS).replace(tzinfo=None) == dt.datetime(2026, 7, 2, 2, 30)


class RecordingScheduler:
    """Stands for the scheduler in ``run_done``: records the catch-up runs asked for."""

    def __init__(self) -> None:
        self.modified: list[str] = []

    def modify_job(self, job_id: str, **changes: Any) -> None:
        assert set(changes) == {"next_run_time"}
        self.modified.append(job_id)


def event(code: int, job_id: str) -> JobExecutionEvent:
    return JobExecutionEvent(code, job_id, "default", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


@pytest.fixture
def stop() -> threading.Event:
    return threading.Event()


def test_runs_that_pile_up_behind_a_long_one_become_one_catch_up_run(stop: threading.Event) -> None:
    catch_up, scheduler = CatchUp(stop, misfire_grace_seconds=3600), RecordingScheduler()
    with capture_logs() as logs:
        for _ in range(3):
            catch_up.run_not_started(event(EVENT_JOB_MAX_INSTANCES, "archive"))
    assert [entry["event"] for entry in logs] == ["job_run_deferred"] * 3
    catch_up.run_done(event(EVENT_JOB_EXECUTED, "compact"), scheduler)  # another job: nothing pending
    assert scheduler.modified == []
    catch_up.run_done(event(EVENT_JOB_EXECUTED, "archive"), scheduler)
    catch_up.run_done(event(EVENT_JOB_EXECUTED, "archive"), scheduler)  # the catch-up run itself ends
    assert scheduler.modified == ["archive"]


def test_no_catch_up_once_the_daemon_is_stopping(stop: threading.Event) -> None:
    catch_up, scheduler = CatchUp(stop, misfire_grace_seconds=3600), RecordingScheduler()
    catch_up.run_not_started(event(EVENT_JOB_MAX_INSTANCES, "archive"))
    stop.set()
    catch_up.run_done(event(EVENT_JOB_EXECUTED, "archive"), scheduler)
    assert scheduler.modified == []


def test_a_missed_run_is_reported_with_the_setting_that_allows_more(stop: threading.Event) -> None:
    catch_up, scheduler = CatchUp(stop, misfire_grace_seconds=600), RecordingScheduler()
    with capture_logs() as logs:
        catch_up.run_not_started(event(EVENT_JOB_MISSED, "verify"))
    [missed] = logs
    assert missed["event"] == "job_run_missed" and missed["log_level"] == "warning"
    assert missed["scheduled"] == "2026-01-01T00:00:00+00:00"
    assert "600 s late" in missed["reason"] and "SMS_ARCHIVER_SCHEDULE__MISFIRE_GRACE_SECONDS" in missed["reason"]
    catch_up.run_done(event(EVENT_JOB_EXECUTED, "verify"), scheduler)
    assert scheduler.modified == []  # a missed run is not caught up: the next one comes on schedule
