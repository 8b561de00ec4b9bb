"""Several instances on one bucket: a service another live instance holds is left to it, the rest goes on."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from archiver.actions.archive import run_archive
from archiver.config import Settings, load_settings
from archiver.emulator import EmulatorServer, Faults, generate_sample_data
from archiver.errors import SourceError
from archiver.source import OvhSource
from archiver.store.layout import lease_key
from archiver.store.lease import LeaseInfo
from tests.integration.helpers import (
    CREDENTIALS,
    api_truth,
    archive_contents,
    cli_env,
    local_storage_env,
    run_cli,
    store_from_env,
)

SERVICES = ("sms-fleet00001-1", "sms-fleet00002-1", "sms-fleet00003-1", "sms-fleet00004-1")


def fleet_emulator(**faults: object) -> EmulatorServer:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    data = generate_sample_data(services=SERVICES, outgoing=160, incoming=40, days=30, now=now)
    return EmulatorServer(**CREDENTIALS, services=data, faults=Faults(**faults))  # type: ignore[arg-type]


def foreign_lease(service: str) -> bytes:
    now = dt.datetime.now(dt.UTC)
    return LeaseInfo("another-instance", "another-host", 4242, "", now, now + dt.timedelta(hours=1)).to_json()


def test_a_held_service_is_skipped_and_the_cycle_goes_on(tmp_path: Path) -> None:
    with fleet_emulator() as emulator:
        storage = local_storage_env(tmp_path / "archive")
        store = store_from_env(storage)
        store.put(lease_key(SERVICES[1]), foreign_lease(SERVICES[1]))
        result = run_cli("archive", env=cli_env(emulator, storage))
        assert result.code == 0, result.stderr[-3000:]
        assert [event["service"] for event in result.events("service_skipped")] == [SERVICES[1]]
        for service in SERVICES:
            expected = {"outgoing": {}, "incoming": {}} if service == SERVICES[1] else api_truth(emulator, service)
            assert archive_contents(store, service) == expected, service


def test_exit_75_only_when_every_service_is_held(tmp_path: Path) -> None:
    with fleet_emulator() as emulator:
        storage = local_storage_env(tmp_path / "archive")
        store = store_from_env(storage)
        for service in SERVICES:
            store.put(lease_key(service), foreign_lease(service))
        result = run_cli("archive", env=cli_env(emulator, storage))
        assert result.code == 75, result.stderr[-3000:]
        assert "every service" in result.stderr


def test_two_instances_at_once_split_the_services_and_the_archive_is_exact(tmp_path: Path) -> None:
    with fleet_emulator(latency_seconds=0.02) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        store = store_from_env(storage)
        env = cli_env(
            emulator,
            storage,
            SMS_ARCHIVER_OVH__FETCH="per-id",
            SMS_ARCHIVER_OVH__CONCURRENCY="2",
            SMS_ARCHIVER_ARCHIVE__SERVICE_CONCURRENCY="2",  # half the services at a time: room for the other
        )
        first = subprocess.Popen(
            [sys.executable, "-m", "archiver", "archive"], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while store.head(lease_key(SERVICES[0])) is None:  # the first instance is at work
                assert first.poll() is None and time.monotonic() < deadline, "the first instance never took a lease"
                time.sleep(0.01)
            second = run_cli("archive", env=env, timeout=300)
            first_stderr = first.communicate(timeout=300)[1]
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert first.returncode == 0, first_stderr[-3000:]
        assert second.code == 0, second.stderr[-3000:]
        assert second.events("service_skipped"), "the second instance found no service held: nothing was shared"
        for service in SERVICES:
            assert archive_contents(store, service) == api_truth(emulator, service), service
        assert run_cli("verify", env=env).code == 0


def in_process(emulator: EmulatorServer, storage: dict[str, str], monkeypatch: Any, **extra: str) -> Settings:
    for key, value in cli_env(emulator, storage, **extra).items():
        monkeypatch.setenv(key, value)
    return load_settings()


def test_services_are_archived_several_at_once(tmp_path: Path, monkeypatch: Any) -> None:
    with fleet_emulator(latency_seconds=0.05) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        settings = in_process(emulator, storage, monkeypatch, SMS_ARCHIVER_ARCHIVE__SERVICE_CONCURRENCY="4")
        store = store_from_env(storage)
        with OvhSource(settings.ovh) as source, capture_logs(processors=[]) as logs:
            reports = run_archive(settings, source, store)
        events = [event["event"] for event in logs if event["event"] in ("lease_acquired", "cursor_advanced")]
        # Every service took its lease before any finished a direction: they ran at once.
        assert events[: len(SERVICES)] == ["lease_acquired"] * len(SERVICES), events
        assert [report.service for report in reports] == [s for s in SERVICES for _ in ("outgoing", "incoming")]
        for service in SERVICES:
            assert archive_contents(store, service) == api_truth(emulator, service), service


def test_a_failing_service_stops_the_others_and_its_error_is_raised(tmp_path: Path, monkeypatch: Any) -> None:
    with fleet_emulator(latency_seconds=0.02) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        services = ",".join([*SERVICES, "sms-nosuch00000-1"])
        settings = in_process(emulator, storage, monkeypatch, SMS_ARCHIVER_OVH__SERVICES=services)
        with OvhSource(settings.ovh) as source, pytest.raises(SourceError, match="sms-nosuch00000-1"):
            run_archive(settings, source, store_from_env(storage))
