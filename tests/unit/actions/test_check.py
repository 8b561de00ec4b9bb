"""The checks of ``check-config`` and of the daemon's start-up (archiver/actions/check.py).

Against the OVH emulator over HTTP and a LocalStore on disk (the S3 side, conditional writes
included, is covered by tests/integration/test_fence.py through the CLI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.actions.check import CheckResult, check_ovh_services, check_storage, run_check
from archiver.config import Settings, load_settings
from archiver.errors import ArchiverError, StorageError
from archiver.source import OvhSource
from archiver.store import LocalStore
from tests.integration.helpers import SERVICE, cli_env, local_storage_env, make_emulator


@pytest.fixture
def emulator() -> Iterator[Any]:
    with make_emulator(outgoing=5, incoming=0, days=2) as server:
        yield server


def settings_for(emulator: Any, monkeypatch: pytest.MonkeyPatch, directory: Path, **extra: str) -> Settings:
    for key, value in cli_env(emulator, local_storage_env(directory), **extra).items():
        if key.startswith("SMS_ARCHIVER_"):
            monkeypatch.setenv(key, value)
    return load_settings()


def checked(results: list[CheckResult]) -> list[tuple[str, bool]]:
    return [(result.what, result.ok) for result in results]


def test_every_check_passes_in_the_order_check_config_prints_them(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = settings_for(emulator, monkeypatch, tmp_path / "archive", SMS_ARCHIVER_OVH__SERVICES=SERVICE)
    results = run_check(settings)
    assert checked(results) == [
        ("settings", True),
        ("OVH credentials", True),
        ("clock", True),
        (f"OVH service {SERVICE}", True),
        ("storage", True),
        ("conditional writes", True),
    ]
    by_name = {result.what: result for result in results}
    assert by_name["OVH credentials"].detail == f"1 SMS service(s): {SERVICE}"
    assert by_name["clock"].detail.startswith("OVH's clock minus this machine's: ")
    assert by_name["storage"].detail.endswith(" is reachable and writable")
    assert by_name["conditional writes"].detail.startswith("enforced by the store")


def test_a_failed_check_does_not_stop_the_others(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings = settings_for(
        emulator, monkeypatch, blocker / "archive", SMS_ARCHIVER_OVH__SERVICES=f"sms-nope-1,{SERVICE}"
    )
    results = run_check(settings)
    assert checked(results) == [
        ("settings", True),
        ("OVH credentials", True),
        ("clock", True),
        ("OVH service sms-nope-1", False),
        (f"OVH service {SERVICE}", True),
        ("storage", False),
    ]
    assert all(result.error for result in results if not result.ok)


def test_credentials_refused_is_one_failure_and_the_storage_is_still_checked(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = settings_for(
        emulator, monkeypatch, tmp_path / "archive", SMS_ARCHIVER_OVH__APPLICATION_SECRET="wrong-secret-xyz"
    )
    results = run_check(settings)
    assert checked(results) == [("settings", True), ("OVH API", False), ("storage", True), ("conditional writes", True)]
    [failed] = [result for result in results if not result.ok]
    assert failed.error is not None and "wrong-secret-xyz" not in failed.error


def test_check_ovh_services_asks_for_each_configured_service_else_lists_the_account(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    listing = settings_for(emulator, monkeypatch, tmp_path)
    with OvhSource(listing.ovh) as source:
        assert check_ovh_services(listing.ovh, source) == [SERVICE]
    assert emulator.stats.count("GET", "/sms") == 1
    configured = settings_for(emulator, monkeypatch, tmp_path, SMS_ARCHIVER_OVH__SERVICES=SERVICE)
    with OvhSource(configured.ovh) as source:
        assert check_ovh_services(configured.ovh, source) == [SERVICE]
    # Asked for by name: an API key restricted to its services need not list the account's.
    assert emulator.stats.count("GET", "/sms") == 1
    assert emulator.stats.count("GET", "/sms/{sn}") == 1
    unknown = settings_for(emulator, monkeypatch, tmp_path, SMS_ARCHIVER_OVH__SERVICES=f"{SERVICE},sms-nope-1")
    with OvhSource(unknown.ovh) as source, pytest.raises(ArchiverError, match="sms-nope-1"):
        check_ovh_services(unknown.ovh, source)


def test_settings_that_cannot_build_a_store_are_a_failed_check_too(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = settings_for(emulator, monkeypatch, tmp_path / "archive")
    unusable = settings.model_copy(
        update={"storage": settings.storage.model_copy(update={"url": "ftp://example.invalid/x"})}
    )
    results = run_check(unusable)
    assert checked(results)[-1] == ("storage", False)
    assert checked(results)[:3] == [("settings", True), ("OVH credentials", True), ("clock", True)]


def test_check_storage_says_why_a_store_cannot_be_written(tmp_path: Path) -> None:
    check_storage(LocalStore(tmp_path / "archive"))  # creates it
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="writable"):
        check_storage(LocalStore(blocker / "archive"))
