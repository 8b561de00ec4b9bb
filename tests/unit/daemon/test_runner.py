"""How the daemon runs a job: turns, outcomes, records, log context (archiver/daemon/runner.py).

Job bodies here are plain functions that wait on events the test sets; every wait is bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from archiver.daemon.runner import JobRunner, first_line
from archiver.errors import ArchiverError, CycleInterrupted, StorageError
from archiver.metrics import Metrics

WAIT = 10  # seconds: the longest any step may take before the test fails


def job_runs(metrics: Metrics, job: str, outcome: str) -> float:
    text = metrics.exposition(None)[0].decode()
    line = f'sms_archiver_job_runs_total{{job="{job}",outcome="{outcome}"}}'
    return next((float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)), 0.0)


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll ``condition`` until true or ``timeout``: for state no event announces (a thread blocked in a wait)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.005)
    return True


class Blocking:
    """A job body that says when it starts, then waits for the test to let it finish."""

    def __init__(self, summary: str = "done") -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.summary = summary

    def __call__(self) -> str:
        self.started.set()
        assert self.release.wait(WAIT), "the test never let the job finish"
        return self.summary


@pytest.fixture
def stop() -> threading.Event:
    return threading.Event()


@pytest.fixture
def runner(stop: threading.Event) -> JobRunner:
    return JobRunner(Metrics(max_age_seconds=3600), stop)


@pytest.fixture
def threads() -> Iterator[list[threading.Thread]]:
    started: list[threading.Thread] = []
    yield started
    for thread in started:
        thread.join(WAIT)
        assert not thread.is_alive(), "a job thread did not end"


def in_thread(threads: list[threading.Thread], function: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=function, daemon=True)
    thread.start()
    threads.append(thread)
    return thread


def test_one_job_works_at_a_time_the_next_starts_when_it_ends(
    runner: JobRunner, threads: list[threading.Thread]
) -> None:
    first, second = Blocking(), Blocking()
    in_thread(threads, lambda: runner.run("compact", first))
    assert first.started.wait(WAIT)
    in_thread(threads, lambda: runner.run("verify", second))
    assert wait_until(lambda: runner.active() == 2), "the second job never came to wait for its turn"
    assert not second.started.wait(0.3), "the second job ran beside the first"
    first.release.set()
    assert second.started.wait(WAIT), "the second job did not get its turn when the first ended"
    second.release.set()
    assert wait_until(lambda: runner.active() == 0)
    records = runner.records()
    assert records["compact"].last_outcome == records["verify"].last_outcome == "ok"
    assert records["compact"].last_finished is not None and records["verify"].last_started is not None
    assert records["compact"].last_finished <= records["verify"].last_started


def test_a_job_waiting_for_its_turn_gives_up_when_the_daemon_stops(
    stop: threading.Event, threads: list[threading.Thread]
) -> None:
    finished: list[str] = []
    runner = JobRunner(Metrics(max_age_seconds=3600), stop, after_job=lambda: finished.append("after_job"))
    holder, waiter = Blocking(), Blocking()
    in_thread(threads, lambda: runner.run("archive", holder))
    assert holder.started.wait(WAIT)
    waiting = in_thread(threads, lambda: runner.run("verify", waiter))
    assert wait_until(lambda: runner.active() == 2)
    stop.set()
    runner.release_waiters()
    waiting.join(WAIT)
    assert not waiting.is_alive(), "the waiting job did not give up on the stop"
    assert not waiter.started.is_set()
    assert "verify" not in runner.records() or runner.records()["verify"].last_started is None
    assert finished == ["after_job"]  # the waiter's, the holder still works
    holder.release.set()
    assert wait_until(lambda: runner.active() == 0)
    assert runner.records()["archive"].last_outcome == "ok"  # the stop is the body's to obey, at a safe point


def test_no_job_starts_once_the_daemon_is_stopping(runner: JobRunner, stop: threading.Event) -> None:
    calls: list[int] = []
    stop.set()

    def body() -> str:
        calls.append(1)
        return "done"

    runner.run("archive", body)
    assert calls == [] and runner.active() == 0 and runner.records() == {}


@pytest.mark.parametrize(
    ("error", "outcome", "recorded_error", "event"),
    [
        (None, "ok", None, "job_finished"),
        (CycleInterrupted("stopped at a safe point, progress saved"), "interrupted", "stopped at", "job_interrupted"),
        (StorageError("the bucket is gone\nsecond line"), "failed", "the bucket is gone", "job_failed"),
        (ValueError("a bug"), "failed", "ValueError: a bug", "job_failed"),
    ],
)
def test_each_outcome_is_logged_counted_and_recorded_never_raised(
    runner: JobRunner, error: Exception | None, outcome: str, recorded_error: str | None, event: str
) -> None:
    def body() -> str:
        if error is not None:
            raise error
        return "42 rows"

    with capture_logs() as logs:
        runner.run("archive", body)
    record = runner.records()["archive"]
    assert record.last_outcome == outcome
    if recorded_error is None:
        assert record.last_error is None and record.last_summary == "42 rows"
        assert record.last_success == record.last_finished is not None
    else:
        assert record.last_error is not None and record.last_error.startswith(recorded_error)
        assert "\n" not in record.last_error and record.last_success is None and record.last_summary is None
    assert record.last_run_id is not None and record.last_seconds is not None and record.last_seconds >= 0
    assert job_runs(runner.metrics, "archive", outcome) == 1
    events = [entry["event"] for entry in logs]
    assert events[0] == "job_started" and event in events
    if outcome == "failed":
        [failed] = [entry for entry in logs if entry["event"] == "job_failed"]
        assert failed["retry"] == "at the next run" and failed["error_type"] == type(error).__name__


def test_a_job_run_inside_another_has_its_own_run_id_and_gives_the_context_back(runner: JobRunner) -> None:
    def retention() -> str:
        return "0 deleted"

    def archive() -> str:
        assert runner.execute("retention", retention) == "ok"
        structlog.get_logger().info("after_inner_job")  # logged after the inner job: the archive's context
        return "done"

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        runner.run("archive", archive)
    by_job: dict[str, set[str]] = {}
    for entry in logs:
        by_job.setdefault(entry["job"], set()).add(entry["run_id"])
    assert set(by_job) == {"archive", "retention"}
    assert len(by_job["archive"]) == len(by_job["retention"]) == 1 and by_job["archive"] != by_job["retention"]
    [after] = [entry for entry in logs if entry["event"] == "after_inner_job"]
    assert after["job"] == "archive"
    records = runner.records()
    assert records["retention"].last_outcome == records["archive"].last_outcome == "ok"


def test_hooks_run_in_order_inside_then_after_the_turn(stop: threading.Event) -> None:
    calls: list[str] = []
    runner = JobRunner(
        Metrics(max_age_seconds=3600),
        stop,
        after_body=lambda: calls.append(f"after_body active={runner.active()}"),
        after_job=lambda: calls.append(f"after_job active={runner.active()}"),
        wake=lambda: calls.append(f"wake active={runner.active()}"),
    )

    def body() -> str:
        calls.append("body")
        return "done"

    runner.run("compact", body)
    # The status is published while the job still counts (the main thread's "stopped" comes last).
    assert calls == ["body", "after_body active=1", "after_job active=1", "wake active=0"]


def test_first_line_keeps_a_status_line_short() -> None:
    assert first_line("  one\ntwo") == "one"
    assert first_line("") == ""
    assert first_line("x" * 500) == "x" * 300


def test_note_says_something_of_a_job_between_runs(runner: JobRunner) -> None:
    runner.note("retention", "due: runs after the next successful archive")
    assert runner.records()["retention"].last_summary == "due: runs after the next successful archive"
    assert runner.records()["retention"].last_outcome is None


def test_records_are_copies(runner: JobRunner) -> None:
    runner.run("archive", lambda: "done")
    copy = runner.records()["archive"]
    copy.last_outcome = "tampered"
    assert runner.records()["archive"].last_outcome == "ok"


def test_an_archiver_error_is_no_exception_to_the_caller(runner: JobRunner) -> None:
    def body() -> str:
        raise ArchiverError("OVH said no")

    runner.run("archive", body)  # must not raise
    assert runner.records()["archive"].last_error == "OVH said no"
