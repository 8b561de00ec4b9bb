"""The status document a daemon publishes for ``sms-archiver status`` (archiver/daemon/published.py)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from structlog.testing import capture_logs

from archiver import __version__
from archiver.actions.status import read_daemons
from archiver.daemon.published import Publisher, status_document
from archiver.daemon.runner import JobRecord
from archiver.store import LocalStore
from archiver.store.layout import daemon_status_key
from tests.integration.helpers import FailingStore

# The fields ``sms-archiver status`` and people's scripts read: a contract, renamed never.
DOCUMENT_FIELDS = {
    "host",
    "pid",
    "version",
    "state",
    "started_at",
    "updated_at",
    "services",
    "jobs",
    "last_cycle",
    "metrics",
}
JOB_FIELDS = {
    "schedule",
    "next_run",
    "last_started",
    "last_finished",
    "last_outcome",
    "last_error",
    "last_summary",
    "last_seconds",
    "last_run_id",
    "last_success",
}


def a_document(**changes: object) -> dict[str, object]:
    arguments: dict[str, object] = {
        "host": "host-a",
        "state": "running",
        "started_at": dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "services": ["sms-ab12345-1"],
        "plan": {"archive": "15m", "compact": "1d"},
        "next_runs": {"archive": "2026-03-01T11:15:00+00:00", "compact": None, "verify": "ignored: not planned"},
        "records": {"archive": JobRecord(last_outcome="ok", last_summary="3 rows written")},
        "last_cycle": [{"service": "sms-ab12345-1", "direction": "outgoing", "rows_written": 3}],
        "metrics_listen": "",
    }
    arguments.update(changes)
    return status_document(**arguments)  # type: ignore[arg-type]


def test_one_entry_per_planned_job_with_its_next_and_last_run() -> None:
    document = a_document()
    assert set(document) == DOCUMENT_FIELDS
    assert set(document["jobs"]) == {"archive", "compact"}  # type: ignore[arg-type]
    jobs = document["jobs"]
    assert isinstance(jobs, dict)
    assert all(set(job) == JOB_FIELDS for job in jobs.values())
    assert jobs["archive"]["next_run"] == "2026-03-01T11:15:00+00:00" and jobs["archive"]["last_outcome"] == "ok"
    assert jobs["compact"]["last_outcome"] is None and jobs["compact"]["schedule"] == "1d"
    assert document["started_at"] == "2026-03-01T11:00:00+00:00"  # UTC, to the second
    assert document["metrics"] is None  # no listen address: null, not ""
    assert document["pid"] == os.getpid() and document["version"] == __version__


def test_what_is_published_is_what_status_reads(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive")
    document = a_document(metrics_listen="127.0.0.1:9108")
    Publisher("host-a").publish(store, lambda: document)
    assert store.head(daemon_status_key("host-a")) is not None
    assert read_daemons(store) == [document]

    stopped = a_document(state="stopped")
    Publisher("host-a").publish(store, lambda: stopped)  # replaces the host's document
    assert read_daemons(store) == [stopped]


def test_a_failed_publish_is_logged_and_the_daemon_goes_on(tmp_path: Path) -> None:
    store = FailingStore(LocalStore(tmp_path / "archive"), method="put", match="_daemons")
    with capture_logs() as logs:
        Publisher("host-a").publish(store, a_document)  # type: ignore[arg-type]
    [failed] = [entry for entry in logs if entry["event"] == "status_publish_failed"]
    assert "injected crash" in failed["error"]
    assert read_daemons(store.inner) == []
