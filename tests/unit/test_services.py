"""Which services an action works on (archiver/services.py), against a local archive and the emulator."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path

import pytest
from pydantic import SecretStr

from archiver.config import ArchiveSettings, OvhSettings, Settings, StorageSettings
from archiver.emulator import DEMO_CREDENTIALS, EmulatorServer
from archiver.errors import ConfigError
from archiver.records import Record, format_instant
from archiver.services import holds_service, services_at_ovh, services_known, services_to_maintain
from archiver.source import OvhSource
from archiver.store import LocalStore
from archiver.store.state import CursorState, save_state
from archiver.writer import write_parts


def configured(*names: str) -> OvhSettings:
    return OvhSettings.model_construct(services=list(names))


@pytest.fixture
def archive(tmp_path: Path) -> LocalStore:
    """An archive holding ``sms-parts`` (data only, as a backfill leaves it) and ``sms-cursor`` (a cursor only)."""
    store = LocalStore(tmp_path)
    created = dt.datetime(2025, 5, 2, 8, 0, tzinfo=dt.UTC)
    fields = ("1", format_instant(created), "+33600000001", "", "hello", "1.0")
    write_parts(
        store, ArchiveSettings(timezone="UTC"), "sms-parts", "incoming", [Record("incoming", 1, created, fields, True)]
    )
    save_state(store, "sms-cursor", "outgoing", CursorState())
    return store


def test_maintenance_acts_on_the_configured_services_else_on_the_archived_ones(archive: LocalStore) -> None:
    assert services_to_maintain(configured(), archive) == ["sms-cursor", "sms-parts"]
    assert services_to_maintain(configured("sms-other"), archive) == ["sms-other"]


def test_reading_commands_know_the_configured_and_the_archived_services(archive: LocalStore) -> None:
    assert services_known(configured("sms-other"), archive) == ["sms-cursor", "sms-other", "sms-parts"]
    assert services_known(configured(), archive, "sms-parts") == ["sms-parts"]
    assert services_known(configured("sms-other"), archive, "sms-other") == ["sms-other"]


def test_an_unknown_service_asked_for_is_an_error_naming_the_known_ones(archive: LocalStore) -> None:
    with pytest.raises(ConfigError, match=r"--service sms-nope: .*known: sms-cursor, sms-parts"):
        services_known(configured(), archive, "sms-nope")
    with pytest.raises(ConfigError, match="holds no service yet"):
        services_known(configured(), LocalStore(archive.directory / "empty"), "sms-nope")


def test_holds_service_reads_data_folders_and_cursors_and_refuses_odd_names(archive: LocalStore) -> None:
    assert holds_service(archive, "sms-parts") and holds_service(archive, "sms-cursor")
    assert not holds_service(archive, "sms-nope")
    assert not holds_service(archive, "../sms-parts") and not holds_service(archive, "_state")


def test_archiving_acts_on_the_configured_services_else_on_the_accounts() -> None:
    with EmulatorServer(**asdict(DEMO_CREDENTIALS)) as emulator:
        emulator.add_service("sms-ab12345-1")
        emulator.add_service("sms-cd67890-2")
        settings = OvhSettings.model_validate(
            {
                "endpoint": emulator.url,
                "application_key": DEMO_CREDENTIALS.application_key,
                "application_secret": DEMO_CREDENTIALS.application_secret,
                "consumer_key": DEMO_CREDENTIALS.consumer_key,
                "max_requests_per_second": 1000,
            }
        )
        with OvhSource(settings) as source:
            assert sorted(services_at_ovh(settings, source)) == ["sms-ab12345-1", "sms-cd67890-2"]
            calls = source.total_calls
            chosen = settings.model_copy(update={"services": ["sms-cd67890-2"]})
            assert services_at_ovh(chosen, source) == ["sms-cd67890-2"]
            assert source.total_calls == calls  # configured: OVH is not asked


def _three_accounts() -> Settings:
    """Accounts c, a, b, each with one configured service (no call is made: nothing listens on port 9)."""
    keys = {"application_key": SecretStr("ak"), "application_secret": SecretStr("as"), "consumer_key": SecretStr("ck")}
    return Settings(
        storage=StorageSettings(url="file:///tmp/unused"),
        accounts={
            name: OvhSettings(endpoint="http://127.0.0.1:9/1.0", services=[f"sms-{name}1-1"], max_retries=0, **keys)
            for name in "cab"
        },
    )


def test_each_account_has_its_turn_even_after_one_fails() -> None:
    from archiver.errors import SourceError
    from archiver.services import Accounts

    ran: list[tuple[str, str, list[str]]] = []

    def work(account: Settings, source: object) -> str:
        ran.append((account.account_name, account.ovh.endpoint, account.ovh.services))
        if account.account_name == "b":
            raise SourceError("refused")
        return account.account_name

    with Accounts(_three_accounts()) as accounts, pytest.raises(SourceError, match="refused"):
        accounts.run(work)
    # In name order, each with its own settings; "c" ran although "b" failed before it.
    assert [name for name, _endpoint, _services in ran] == ["a", "b", "c"]
    assert [services for _name, _endpoint, services in ran] == [["sms-a1-1"], ["sms-b1-1"], ["sms-c1-1"]]


def test_a_stop_ends_the_accounts_loop_at_once() -> None:
    from archiver.errors import CycleInterrupted
    from archiver.services import Accounts

    ran: list[str] = []

    def work(account: Settings, source: object) -> None:
        ran.append(account.account_name)
        raise CycleInterrupted("stopping")

    with Accounts(_three_accounts()) as accounts, pytest.raises(CycleInterrupted):
        accounts.run(work)
    assert ran == ["a"]


def test_an_account_without_credentials_is_named() -> None:
    from archiver.services import Accounts

    settings = _three_accounts()
    settings.accounts["b"] = OvhSettings(services=["sms-b1-1"])
    with pytest.raises(ConfigError, match="SMS_ARCHIVER_ACCOUNTS__B__APPLICATION_KEY: required"):
        Accounts(settings)


def test_check_config_checks_each_account_and_names_one_without_credentials(tmp_path: Path) -> None:
    from archiver.actions.check import run_check

    settings = _three_accounts().model_copy(update={"storage": StorageSettings(url=tmp_path.as_uri())})
    settings.accounts["b"] = OvhSettings(services=["sms-b1-1"])
    failed = {result.what: result.error for result in run_check(settings) if not result.ok}
    assert failed["account b: OVH API"] == (
        "SMS_ARCHIVER_ACCOUNTS__B__APPLICATION_KEY: required (with APPLICATION_SECRET and CONSUMER_KEY), "
        "or CLIENT_ID with CLIENT_SECRET"
    )
    # The other accounts were checked too (nothing answers on their endpoint's port).
    assert {"account a: OVH API", "account c: OVH API"} <= failed.keys()
