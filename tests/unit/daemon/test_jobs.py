"""The daemon's job bodies (archiver/daemon/jobs.py), run by a real JobRunner against the emulator and a LocalStore."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from archiver.actions.archive import DirectionReport
from archiver.daemon.jobs import ARCHIVE, RETENTION, Jobs, cycle_summary, planned_jobs
from archiver.daemon.notify import Notifier
from archiver.daemon.runner import JobRunner
from archiver.errors import IntegrityError
from archiver.metrics import Metrics
from archiver.ping import Pinger
from archiver.source import OvhSource
from archiver.store import LocalStore
from tests.integration.helpers import SERVICE, api_truth, archive_contents, part_keys
from tests.unit.daemon.conftest import SettingsFactory


def jobs_for(settings: Any) -> Jobs:
    metrics = Metrics(max_age_seconds=3600)
    runner = JobRunner(metrics, threading.Event())
    return Jobs(
        settings,
        runner,
        host="test-host",
        metrics=metrics,
        notifier=Notifier(environ={}),
        pinger=Pinger(settings.ping),
        stop=runner.stop,
    )


def test_the_archive_job_archives_and_sums_up_the_cycle(
    make_settings: SettingsFactory, store: LocalStore, emulator: Any
) -> None:
    settings = make_settings()
    jobs = jobs_for(settings)
    with OvhSource(settings.ovh) as source:
        summary = jobs.archive(source, store)
    truth = api_truth(emulator)
    assert archive_contents(store) == truth
    rows = sum(len(rows) for rows in truth.values())
    assert summary.startswith(f"{rows} rows written for 2 service/direction pair(s) in ")
    assert "\n" not in summary
    figures = {(pair["service"], pair["direction"]): pair["rows_written"] for pair in jobs.last_cycle()}
    assert figures == {(SERVICE, direction): len(rows) for direction, rows in truth.items()}


def test_retention_runs_right_after_the_next_successful_archive_never_after_a_failed_one(
    make_settings: SettingsFactory, store: LocalStore, archive_dir: Path
) -> None:
    settings = make_settings(
        SMS_ARCHIVER_RETENTION__ENABLED="true",
        SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS="3650",  # nothing old enough: retention runs, deletes nothing
    )
    jobs = jobs_for(settings)
    runner = jobs.runner
    with OvhSource(settings.ovh) as source:
        jobs.retention_due_now()
        assert runner.records()[RETENTION].last_summary == "due: runs after the next successful archive"
        # A file where the service's folder must go: the archive cannot write its parts and fails.
        blocker = archive_dir / SERVICE
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_text("in the way")
        runner.run(ARCHIVE, lambda: jobs.archive(source, store))
        assert runner.records()[ARCHIVE].last_outcome == "failed"
        assert runner.records()[RETENTION].last_started is None, "retention ran after a failed archive"

        blocker.unlink()
        runner.run(ARCHIVE, lambda: jobs.archive(source, store))
        records = runner.records()
        assert records[ARCHIVE].last_outcome == "ok"
        assert records[RETENTION].last_outcome == "ok", records[RETENTION]
        assert records[RETENTION].last_summary is not None
        assert records[RETENTION].last_summary.startswith("0 record(s) deleted at OVH")
        retention_run = records[RETENTION].last_run_id

        runner.run(ARCHIVE, lambda: jobs.archive(source, store))  # not due any more
        assert runner.records()[RETENTION].last_run_id == retention_run


def test_verify_fails_with_the_count_of_problems_each_logged(
    make_settings: SettingsFactory, store: LocalStore, archive_dir: Path
) -> None:
    settings = make_settings()
    jobs = jobs_for(settings)
    with OvhSource(settings.ovh) as source:
        jobs.archive(source, store)
    summary = jobs.verify(store)
    assert summary.endswith("month(s) verified, no problem") and not summary.startswith("0 ")

    damaged = part_keys(store)[0]
    path = archive_dir / damaged
    path.write_bytes(path.read_bytes()[:-10])  # a part cut short, as a bad disk or a bad copy leaves it
    with capture_logs() as logs, pytest.raises(IntegrityError, match=r"verify found \d+ problem\(s\) in 1 month"):
        jobs.verify(store)
    problems = [entry for entry in logs if entry["event"] == "verify_problem"]
    assert problems and {entry["key"] for entry in problems} == {damaged}


def test_compact_sums_up_its_counts(make_settings: SettingsFactory, store: LocalStore) -> None:
    settings = make_settings()
    jobs = jobs_for(settings)
    with OvhSource(settings.ovh) as source:
        jobs.archive(source, store)
    summary = jobs.compact(store)
    assert summary and all(": " in item for item in summary.split(", ")), summary


def test_planned_jobs_follow_the_settings(make_settings: SettingsFactory) -> None:
    assert planned_jobs(make_settings(SMS_ARCHIVER_SCHEDULE__COMPACT="1d")) == {"archive": "15m", "compact": "1d"}
    everything = make_settings(
        SMS_ARCHIVER_SCHEDULE__ARCHIVE="5m",
        SMS_ARCHIVER_SCHEDULE__VERIFY="1w",
        SMS_ARCHIVER_RETENTION__ENABLED="true",
        SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS="365",
    )
    plan = planned_jobs(everything)
    assert set(plan) == {"archive", "compact", "retention", "verify"}
    assert plan["archive"] == "5m" and plan["verify"] == "1w"


def test_cycle_summary_names_services_left_to_others_and_malformed_records() -> None:
    reports = [
        DirectionReport(SERVICE, "outgoing", rows_written=3, malformed=2),
        DirectionReport(SERVICE, "incoming", rows_written=4),
        DirectionReport("sms-other-1", "outgoing", skipped="lease held by host-b"),
    ]
    with capture_logs() as logs:
        summary = cycle_summary(reports, 1.25)
    assert summary == (
        "7 rows written for 3 service/direction pair(s) in 1.2 s; left to other instances (lease held): "
        "sms-other-1; 2 malformed record(s) skipped, retried next cycle"
    )
    assert [entry["event"] for entry in logs] == ["malformed_records_skipped"]


def test_the_retention_job_counts_what_a_legal_hold_kept_and_the_active_holds(
    make_settings: SettingsFactory, store: LocalStore, emulator: Any
) -> None:
    from archiver.holds import HoldScope, place_hold

    settings = make_settings(SMS_ARCHIVER_RETENTION__ENABLED="true", SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS="2")
    jobs = jobs_for(settings)
    place_hold(store, HoldScope(direction="incoming"), reason="case 5", actor="dpo")
    with OvhSource(settings.ovh) as source:
        jobs.archive(source, store)
        text = jobs.metrics.exposition(None)[0].decode()
        assert "sms_archiver_legal_holds_active 1.0" in text  # read at each archive cycle
        summary = jobs.retention(source, store)
    deleted = {direction for _service, direction, _id in emulator.deleted}
    assert deleted == {"outgoing"}, "the held direction was deleted, or nothing was: the test proves nothing"
    found = re.search(r"\((\d+) at OVH and 0 in the archive under a legal hold\)", summary)
    assert found, summary
    held = int(found.group(1))
    assert held > 0
    text = jobs.metrics.exposition(None)[0].decode()
    assert f'sms_archiver_held_records_total{{direction="incoming",service="{SERVICE}",where="ovh"}} {held}.0' in text
