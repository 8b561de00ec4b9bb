"""The daemon's start-up check (archiver/daemon/startup.py): the emulator over HTTP, a LocalStore on disk."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from archiver.actions.archive import run_archive
from archiver.daemon.startup import connect_both_sides
from archiver.errors import ArchiverError, StorageError
from archiver.metrics import Metrics
from archiver.source import OvhSource
from archiver.store import LocalStore
from archiver.store.layout import state_key
from tests.integration.helpers import CREDENTIALS, SERVICE
from tests.unit.daemon.conftest import SettingsFactory


def last_success_gauges(metrics: Metrics) -> dict[tuple[str, str], float]:
    """``sms_archiver_last_success_timestamp_seconds`` by (service, direction)."""
    text = metrics.exposition(None)[0].decode()
    return {
        (sample.labels["service"], sample.labels["direction"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sms_archiver_last_success_timestamp_seconds"
    }


def test_both_sides_answer_the_account_services_are_listed(make_settings: SettingsFactory) -> None:
    with capture_logs() as logs:
        connected = connect_both_sides(make_settings(), Metrics(max_age_seconds=3600))
    try:
        assert connected.services == [SERVICE]
        assert isinstance(connected.store, LocalStore)
    finally:
        connected.source.close()
    [passed] = [entry for entry in logs if entry["event"] == "start_up_checks_passed"]
    assert passed["services"] == [SERVICE]


def test_each_configured_service_is_checked_by_name(make_settings: SettingsFactory) -> None:
    settings = make_settings(SMS_ARCHIVER_OVH__SERVICES=f"{SERVICE},sms-nope-1")
    with pytest.raises(ArchiverError) as raised:
        connect_both_sides(settings, Metrics(max_age_seconds=3600))
    message = str(raised.value)
    assert message.startswith("start-up check of the OVH API failed: ") and "sms-nope-1" in message


def test_credentials_refused_say_so_without_the_secret(make_settings: SettingsFactory) -> None:
    settings = make_settings(SMS_ARCHIVER_OVH__APPLICATION_SECRET="wrong-secret-xyz")
    with pytest.raises(ArchiverError) as raised:
        connect_both_sides(settings, Metrics(max_age_seconds=3600))
    message = str(raised.value)
    assert message.startswith("start-up check of the OVH API failed: ") and "OVH rejected the credentials" in message
    assert "wrong-secret-xyz" not in message and CREDENTIALS["consumer_key"] not in message


def test_an_unwritable_store_fails_before_ovh_is_asked(make_settings: SettingsFactory, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    # OVH's credentials are wrong too: the storage's error is the one raised, OVH comes second.
    settings = make_settings(blocker / "archive", SMS_ARCHIVER_OVH__APPLICATION_SECRET="wrong-secret-xyz")
    with pytest.raises(StorageError) as raised:
        connect_both_sides(settings, Metrics(max_age_seconds=3600))
    assert str(raised.value).startswith("start-up check of the storage failed: ")


def test_metrics_start_from_the_last_cycle_the_archive_remembers(
    make_settings: SettingsFactory, store: LocalStore
) -> None:
    settings = make_settings()
    with OvhSource(settings.ovh) as source:
        reports = run_archive(settings, source, store)
    finished = {report.direction: report.finished_at for report in reports}
    assert set(finished) == {"outgoing", "incoming"} and all(finished.values())
    # A damaged state is the archive job's to report: start-up goes on without it.
    store.put(state_key(SERVICE, "incoming"), b"{not json")

    metrics = Metrics(max_age_seconds=3600)
    connected = connect_both_sides(settings, metrics)
    connected.source.close()

    expected = dt.datetime.fromisoformat(finished["outgoing"]).timestamp()
    assert last_success_gauges(metrics) == {(SERVICE, "outgoing"): expected}
