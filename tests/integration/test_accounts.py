"""Several OVH accounts in one configuration, archived into one bucket: the real CLI, two emulators, S3.

Each account is an emulator of its own (its own endpoint URL and keys: a call signed with the other
account's keys is refused), so a service archived through the wrong account's source would fail.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
from pathlib import Path

import pytest

from archiver.emulator import EmulatorServer, generate_sample_data
from tests.conftest import S3Target
from tests.integration.helpers import api_truth, archive_contents, iter_all_objects, run_cli, store_from_env
from tests.integration.test_daemon import DaemonProcess, free_port, scrape

SHOP = ("sms-shop11111-1",)
AGENCY = ("sms-agency2222-1", "sms-agency2222-2")
SHOP_KEYS = {
    "application_key": "shop-app-key-1a2b",
    "application_secret": "shop-app-secret-DO-NOT-LEAK-51f0",
    "consumer_key": "shop-consumer-key-DO-NOT-LEAK-0c9d",
}
AGENCY_KEYS = {
    "application_key": "agency-app-key-3c4d",
    "application_secret": "agency-app-secret-DO-NOT-LEAK-77e1",
    "consumer_key": "agency-consumer-key-DO-NOT-LEAK-a4b3",
}
SECRETS = [value for keys in (SHOP_KEYS, AGENCY_KEYS) for name, value in keys.items() if name != "application_key"]


def account_emulator(services: tuple[str, ...], keys: dict[str, str], *, seed: int) -> EmulatorServer:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    data = generate_sample_data(services=services, outgoing=60, incoming=20, days=20, seed=seed, now=now)
    return EmulatorServer(**keys, services=data)


def two_accounts_env(
    tmp_path: Path, shop: EmulatorServer, agency: EmulatorServer, storage: dict[str, str], *, agency_services: str
) -> dict[str, str]:
    """The shop account in the TOML file as an [[accounts]] table (its services discovered); the agency
    account in the environment, its secrets in files of the secrets directory (a container's form)."""
    config = tmp_path / "accounts.toml"
    config.write_text(
        "[[accounts]]\n"
        'name = "shop"\n'
        f'endpoint = "{shop.url}"\n'
        f'application_key = "{SHOP_KEYS["application_key"]}"\n'
        f'application_secret = "{SHOP_KEYS["application_secret"]}"\n'
        f'consumer_key = "{SHOP_KEYS["consumer_key"]}"\n'
        "max_requests_per_second = 500\n"
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "accounts__agency__application_secret").write_text(AGENCY_KEYS["application_secret"] + "\n")
    (secrets / "SMS_ARCHIVER_ACCOUNTS__AGENCY__CONSUMER_KEY").write_text(AGENCY_KEYS["consumer_key"])
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMS_ARCHIVER_")}
    env.update(
        {
            "SMS_ARCHIVER_CONFIG": str(config),
            "SMS_ARCHIVER_SECRETS_DIR": str(secrets),
            "SMS_ARCHIVER_LOG__FORMAT": "json",
            "SMS_ARCHIVER_LOG__LEVEL": "debug",
            "SMS_ARCHIVER_ACCOUNTS__AGENCY__ENDPOINT": agency.url,
            "SMS_ARCHIVER_ACCOUNTS__AGENCY__APPLICATION_KEY": AGENCY_KEYS["application_key"],
            "SMS_ARCHIVER_ACCOUNTS__AGENCY__SERVICES": agency_services,
            "SMS_ARCHIVER_ACCOUNTS__AGENCY__MAX_REQUESTS_PER_SECOND": "400",
        }
    )
    env.update(storage)
    return env


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_two_accounts_archive_both_into_one_bucket(s3_bucket: S3Target, tmp_path: Path) -> None:
    with (
        account_emulator(SHOP, SHOP_KEYS, seed=3) as shop,
        account_emulator(AGENCY, AGENCY_KEYS, seed=4) as agency,
    ):
        env = two_accounts_env(tmp_path, shop, agency, s3_bucket.env, agency_services=",".join(AGENCY))
        result = run_cli("archive", env=env)
        assert result.code == 0, result.stderr[-3000:]
        store = store_from_env(s3_bucket.env)
        for emulator, services in ((shop, SHOP), (agency, AGENCY)):
            for service in services:
                truth = api_truth(emulator, service)
                assert truth["outgoing"] and truth["incoming"]
                assert archive_contents(store, service) == truth, service
        # Each account's calls went to its own endpoint, signed with its own keys (others are refused).
        assert shop.stats.status_count(403) == agency.stats.status_count(403) == 0
        assert shop.stats.count("GET", "/sms") >= 1  # the shop's services were discovered
        assert agency.stats.count("GET", "/sms") == 0  # the agency's are configured

        # A second cycle finds nothing new in either account.
        again = run_cli("archive", env=env)
        assert again.code == 0, again.stderr[-3000:]
        assert sum(event["rows_written"] for event in again.events("cursor_advanced")) == 0

        status = run_cli("status", "--json", env=env)
        assert status.code == 0, status.stderr[-3000:]
        accounts = {entry["service"]: entry["account"] for entry in json.loads(status.stdout)["services"]}
        assert accounts == {SHOP[0]: "shop", AGENCY[0]: "agency", AGENCY[1]: "agency"}
        months = run_cli("months", "--json", env=env)
        assert months.code == 0, months.stderr[-3000:]
        shown = {(item["service"], item["account"]) for item in json.loads(months.stdout)}
        assert shown == {(SHOP[0], "shop"), (AGENCY[0], "agency"), (AGENCY[1], "agency")}
        text = run_cli("status", env=env)
        assert text.code == 0, text.stderr[-3000:]
        # A first column names each service's account.
        rows = [re.split(r"\s*[│┃|]\s*", line.strip(" │┃|")) for line in text.stdout.splitlines()]
        assert [row[:2] for row in rows if row[0] in ("account", "shop", "agency")] == [
            ["account", "service"],
            ["agency", AGENCY[0]],
            ["agency", AGENCY[0]],
            ["agency", AGENCY[1]],
            ["agency", AGENCY[1]],
            ["shop", SHOP[0]],
            ["shop", SHOP[0]],
        ]
        check = run_cli("check-config", env=env)
        assert check.code == 0, check.stdout + check.stderr[-3000:]
        assert "account shop: OVH credentials" in check.stdout
        assert "account agency: OVH service sms-agency2222-2" in check.stdout
        verify = run_cli("verify", env=env)
        assert verify.code == 0, verify.stdout
        assert_no_secret(*(item.stdout + item.stderr for item in (result, again, status, months, text, check, verify)))
        assert_no_secret(*(key + data.decode("utf-8", "replace") for key, data in iter_all_objects(store)))


def test_a_service_seen_by_two_accounts_is_archived_under_the_first_only(tmp_path: Path) -> None:
    """An API key that also sees another account's service: discovered twice, archived once, warned."""
    shared = "sms-shared333-1"
    with (
        account_emulator((*SHOP, shared), SHOP_KEYS, seed=5) as shop,
        account_emulator((shared,), AGENCY_KEYS, seed=6) as agency,
    ):
        storage = {"SMS_ARCHIVER_STORAGE__URL": (tmp_path / "archive").as_uri()}
        env = two_accounts_env(tmp_path, shop, agency, storage, agency_services="")
        result = run_cli("archive", env=env)
        assert result.code == 0, result.stderr[-3000:]
        warned = result.events("service_in_two_accounts")
        assert [(event["service"], event["account"], event["worked_on_by"]) for event in warned] == [
            (shared, "shop", "agency")
        ]
        store = store_from_env(storage)
        # "agency" comes first in name order: the shared service is the agency emulator's copy only.
        assert archive_contents(store, shared) == api_truth(agency, shared)
        assert archive_contents(store, SHOP[0]) == api_truth(shop, SHOP[0])
        assert api_truth(shop, shared) != api_truth(agency, shared)  # the two copies tell which account was used


def test_one_account_failing_does_not_keep_the_other_from_archiving(tmp_path: Path) -> None:
    with (
        account_emulator(SHOP, SHOP_KEYS, seed=7) as shop,
        account_emulator(AGENCY, AGENCY_KEYS, seed=8) as agency,
    ):
        storage = {"SMS_ARCHIVER_STORAGE__URL": (tmp_path / "archive").as_uri()}
        env = two_accounts_env(tmp_path, shop, agency, storage, agency_services=",".join(AGENCY))
        env["SMS_ARCHIVER_ACCOUNTS__AGENCY__APPLICATION_KEY"] = "a-key-the-agency-emulator-refuses"
        result = run_cli("archive", env=env)
        assert result.code != 0
        assert [event["account"] for event in result.events("account_failed")] == ["agency"]
        store = store_from_env(storage)
        assert archive_contents(store, SHOP[0]) == api_truth(shop, SHOP[0])
        assert archive_contents(store, AGENCY[0]) == {"outgoing": {}, "incoming": {}}
        assert_no_secret(result.stdout, result.stderr)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {
                "SMS_ARCHIVER_ACCOUNTS__AGENCY__SERVICES": "sms-shop11111-1",
                "SMS_ARCHIVER_ACCOUNTS__SHOP__SERVICES": "sms-shop11111-1",
            },
            "service sms-shop11111-1 is configured under two accounts, agency and shop",
        ),
        ({"SMS_ARCHIVER_ACCOUNTS__AGENCY__SERVCES": "x"}, "SMS_ARCHIVER_ACCOUNTS__AGENCY__SERVCES: unknown setting"),
        ({"SMS_ARCHIVER_OVH__ENDPOINT": "ovh-ca"}, "move SMS_ARCHIVER_OVH__ENDPOINT into each account"),
        (
            {"SMS_ARCHIVER_ACCOUNTS__AGENCY__MAX_REQUESTS_PER_SECOND": "0"},
            "SMS_ARCHIVER_ACCOUNTS__AGENCY__MAX_REQUESTS_PER_SECOND",
        ),
    ],
    ids=["service-in-two-accounts", "typo", "ovh-and-accounts", "bad-rate"],
)
def test_a_wrong_account_setting_is_named_and_exits_2(tmp_path: Path, extra: dict[str, str], expected: str) -> None:
    with (
        account_emulator(SHOP, SHOP_KEYS, seed=9) as shop,
        account_emulator(AGENCY, AGENCY_KEYS, seed=10) as agency,
    ):
        storage = {"SMS_ARCHIVER_STORAGE__URL": (tmp_path / "archive").as_uri()}
        env = two_accounts_env(tmp_path, shop, agency, storage, agency_services=",".join(AGENCY)) | extra
        result = run_cli("archive", env=env)
        assert result.code == 2, result.stderr[-3000:]
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
        assert shop.stats.total == agency.stats.total == 0  # nothing was asked of OVH
        assert_no_secret(result.stdout, result.stderr)


def test_the_daemon_archives_every_account_and_shows_each_service_account(s3_bucket: S3Target, tmp_path: Path) -> None:
    with (
        account_emulator(SHOP, SHOP_KEYS, seed=11) as shop,
        account_emulator(AGENCY, AGENCY_KEYS, seed=12) as agency,
    ):
        port = free_port()
        env = two_accounts_env(tmp_path, shop, agency, s3_bucket.env, agency_services=",".join(AGENCY)) | {
            "SMS_ARCHIVER_METRICS__LISTEN": f"127.0.0.1:{port}",
        }
        with DaemonProcess(env) as daemon:
            ready = daemon.wait_for("daemon_ready", timeout=30)
            assert sorted(ready["services"]) == sorted((*SHOP, *AGENCY))
            daemon.wait_for("job_finished", job="archive", timeout=60)
            samples = scrape(port)
            daemon.signal(signal.SIGTERM)
            assert daemon.wait_exit() == 0
        info = {
            dict(labels)["service"]: dict(labels)["account"]
            for (name, labels), value in samples.items()
            if name == "sms_archiver_service_account_info" and value == 1
        }
        assert info == {SHOP[0]: "shop", AGENCY[0]: "agency", AGENCY[1]: "agency"}
        store = store_from_env(s3_bucket.env)
        for emulator, services in ((shop, SHOP), (agency, AGENCY)):
            for service in services:
                assert archive_contents(store, service) == api_truth(emulator, service), service
        assert_no_secret(daemon.output())


def test_retention_deletes_at_each_account_what_that_account_archived(tmp_path: Path) -> None:
    with (
        account_emulator(SHOP, SHOP_KEYS, seed=13) as shop,
        account_emulator(AGENCY, AGENCY_KEYS, seed=14) as agency,
    ):
        storage = {"SMS_ARCHIVER_STORAGE__URL": (tmp_path / "archive").as_uri()}
        env = two_accounts_env(tmp_path, shop, agency, storage, agency_services=",".join(AGENCY)) | {
            "SMS_ARCHIVER_RETENTION__ENABLED": "true",
            "SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS": "10",
        }
        assert run_cli("archive", env=env).code == 0
        store = store_from_env(storage)
        archived = {service: archive_contents(store, service) for service in (*SHOP, *AGENCY)}
        truth = {service: api_truth(shop if service in SHOP else agency, service) for service in (*SHOP, *AGENCY)}
        applied = run_cli("retention", "--apply", "--json", env=env)
        assert applied.code == 0, applied.stderr[-3000:]
        report = json.loads(applied.stdout)
        assert report["deleted"] == len(shop.deleted) + len(agency.deleted)
        # Each account deleted only its own services' SMS, through its own endpoint and keys.
        assert shop.deleted and {service for service, _direction, _id in shop.deleted} == set(SHOP)
        assert agency.deleted and {service for service, _direction, _id in agency.deleted} <= set(AGENCY)
        for service, direction, sms_id in [*shop.deleted, *agency.deleted]:
            assert archived[service][direction][sms_id] == truth[service][direction][sms_id]
        # --service picks the account that has it.
        one = run_cli("retention", "--service", AGENCY[1], "--json", env=env)
        assert one.code == 0, one.stderr[-3000:]
        assert {decision["service"] for decision in json.loads(one.stdout)["decisions"]} <= {AGENCY[1]}
        unknown = run_cli("retention", "--service", "sms-nobody999-1", "--json", env=env)
        assert unknown.code == 2 and "no configured OVH account has this service" in unknown.stderr
        assert_no_secret(applied.stdout, applied.stderr, one.stdout, one.stderr)


def test_the_history_page_deletes_each_service_through_its_own_account(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from archiver.config import ArchiveSettings, OvhSettings, Settings, StorageSettings, WebSettings
    from archiver.records import NON_FINAL_PTT
    from archiver.web.serve import WebServer, build_context
    from tests.web.conftest import get
    from tests.web.test_delete import _basic, _htpasswd, post, token_of

    with (
        account_emulator(SHOP, SHOP_KEYS, seed=15) as shop,
        account_emulator(AGENCY, AGENCY_KEYS, seed=16) as agency,
    ):
        storage = {"SMS_ARCHIVER_STORAGE__URL": (tmp_path / "archive").as_uri()}
        env = two_accounts_env(tmp_path, shop, agency, storage, agency_services=",".join(AGENCY))
        assert run_cli("archive", env=env).code == 0

        def account(emulator: EmulatorServer, keys: dict[str, str], services: tuple[str, ...]) -> OvhSettings:
            secrets = {name: SecretStr(value) for name, value in keys.items()}
            return OvhSettings(endpoint=emulator.url, max_requests_per_second=500, services=list(services), **secrets)

        settings = Settings(
            storage=StorageSettings(url=storage["SMS_ARCHIVER_STORAGE__URL"]),
            archive=ArchiveSettings(timezone="Europe/Paris"),
            accounts={"shop": account(shop, SHOP_KEYS, SHOP), "agency": account(agency, AGENCY_KEYS, AGENCY)},
            web=WebSettings(
                cache_dir=str(tmp_path / "cache"), allow_delete=True, htpasswd_file=str(_htpasswd(tmp_path / "users"))
            ),
        )

        def final_outgoing(emulator: EmulatorServer, service: str) -> int:
            return min(
                sms_id
                for sms_id, raw in emulator.outgoing(service).items()
                if raw.get("ptt") not in NON_FINAL_PTT or raw.get("deliveredAt")
            )

        chosen = {SHOP[0]: final_outgoing(shop, SHOP[0]), AGENCY[1]: final_outgoing(agency, AGENCY[1])}
        server = WebServer(build_context(settings, min_refresh_seconds=0), "127.0.0.1", 0).start()
        try:
            url, alice = server.url.rstrip("/"), _basic("alice")
            fields = [("sms", f"{service}/outgoing/{sms_id}") for service, sms_id in chosen.items()]
            review = post(f"{url}/delete/review", [("csrf", token_of(get(f"{url}/", alice).text)), *fields], alice)
            assert review.status == 200, review.text
            result = post(f"{url}/delete/confirm", [("csrf", token_of(review.text)), *fields], alice)
            assert result.status == 200, result.text
        finally:
            server.stop()
        assert shop.deleted == [(SHOP[0], "outgoing", chosen[SHOP[0]])]
        assert agency.deleted == [(AGENCY[1], "outgoing", chosen[AGENCY[1]])]


def test_backfill_goes_through_every_account(tmp_path: Path) -> None:
    with (
        account_emulator(SHOP, SHOP_KEYS, seed=17) as shop,
        account_emulator(AGENCY, AGENCY_KEYS, seed=18) as agency,
    ):
        storage = {"SMS_ARCHIVER_STORAGE__URL": (tmp_path / "archive").as_uri()}
        env = two_accounts_env(tmp_path, shop, agency, storage, agency_services=",".join(AGENCY))
        today = dt.date.today()
        result = run_cli(
            "backfill", "--from", str(today - dt.timedelta(days=30)), "--to", str(today + dt.timedelta(days=1)), env=env
        )
        assert result.code == 0, result.stderr[-3000:]
        done = {(event["account"], event["service"], event["direction"]) for event in result.events("backfill_done")}
        assert done == {
            (account, service, direction)
            for account, services in (("shop", SHOP), ("agency", AGENCY))
            for service in services
            for direction in ("outgoing", "incoming")
        }
        store = store_from_env(storage)
        for emulator, services in ((shop, SHOP), (agency, AGENCY)):
            for service in services:
                assert archive_contents(store, service) == api_truth(emulator, service), service
        assert_no_secret(result.stdout, result.stderr)
