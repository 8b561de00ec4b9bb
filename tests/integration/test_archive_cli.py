"""The archive pipeline end to end: the real CLI, the emulator over HTTP, a real S3 server or a directory."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.config import load_settings
from archiver.errors import StorageError
from archiver.store.layout import lease_key
from archiver.store.lease import LeaseInfo, current_pid_namespace, read_lease
from archiver.store.state import load_state
from tests.conftest import S3Target
from tests.integration.helpers import (
    CREDENTIALS,
    SERVICE,
    FailingStore,
    api_truth,
    archive_contents,
    cli_env,
    iter_all_objects,
    local_storage_env,
    make_emulator,
    part_keys,
    raw_row_count,
    run_cli,
    store_from_env,
)


@pytest.fixture
def emulator() -> Iterator:
    with make_emulator() as server:
        yield server


def test_archive_equals_api_and_second_cycle_is_cheap(emulator, storage_env: dict[str, str]) -> None:
    env = cli_env(emulator, storage_env)
    first = run_cli("archive", env=env)
    assert first.code == 0, first.stderr
    store = store_from_env(storage_env)
    assert archive_contents(store) == api_truth(emulator)
    # Each id written exactly once: no duplicate rows to dedupe after a clean cycle.
    truth = api_truth(emulator)
    assert raw_row_count(store) == sum(len(rows) for rows in truth.values())

    keys_before = part_keys(store)
    emulator.stats.reset()
    second = run_cli("archive", env=env)
    assert second.code == 0, second.stderr
    assert part_keys(store) == keys_before, "a cycle with nothing new wrote parts"
    # One listing per service and direction (no re-check: the sample's pending SMS are older than 72 h),
    # plus the account's service list and python-ovh's unsigned clock sync, once per process.
    routes = emulator.stats.snapshot()["by_route"]
    assert routes.pop("GET /sms/{sn}/outgoing") == 1
    assert routes.pop("GET /sms/{sn}/incoming") == 1
    assert routes == {"GET /sms": 1, "GET /auth/time": 1}


def test_incremental_cycles_pick_up_new_records_and_late_statuses(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage)
    assert run_cli("archive", env=env).code == 0
    store = store_from_env(storage)

    now = dt.datetime.now(dt.UTC)
    pending = {
        "id": 20_000_000_001,
        "creationDatetime": (now - dt.timedelta(hours=2)).isoformat(timespec="seconds"),
        "sentAt": None,
        "deliveredAt": None,
        "sender": "MaBoutique",
        "receiver": "+33699999999",
        "message": "Votre code : 123456",
        "messageLength": 19,
        "numberOfSms": 1,
        "credits": 1.0,
        "ptt": 1,
        "deliveryReceipt": 0,
        "differedDelivery": 0,
        "tag": "otp",
        "tariffCode": "FR",
        "batchID": None,
        "messageID": None,
    }
    emulator.add_outgoing(SERVICE, pending)
    assert run_cli("archive", env=env).code == 0
    assert archive_contents(store)["outgoing"][20_000_000_001][4] == "1"

    # The operator reports delivery later: the next cycle re-checks and archives the newer version.
    delivered_at = (now - dt.timedelta(hours=1)).isoformat(timespec="seconds")
    emulator.update_outgoing(SERVICE, 20_000_000_001, ptt=4, deliveredAt=delivered_at, sentAt=delivered_at)
    emulator.stats.reset()
    assert run_cli("archive", env=env).code == 0
    assert archive_contents(store) == api_truth(emulator)
    routes = emulator.stats.snapshot()["by_route"]
    assert routes["GET /sms/{sn}/outgoing/{id}"] == 1  # the one re-check
    assert sum(routes.values()) == 5  # + two listings, the service list, the clock sync


@pytest.mark.parametrize(
    ("fail_on", "after"),
    [
        ("_state/", 0),  # crash between the data and the cursor
        ("/day=", 3),  # storage outage after a few parts
        ("_manifest.json", 1),  # outage between parts and manifests
    ],
)
def test_failed_cycle_then_retry_neither_loses_nor_doubles(
    emulator, s3_bucket: S3Target, monkeypatch: pytest.MonkeyPatch, fail_on: str, after: int
) -> None:
    from archiver.actions.archive import run_archive
    from archiver.source import OvhSource

    for key, value in cli_env(emulator, s3_bucket.env, SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="40").items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    store = store_from_env(s3_bucket.env)
    with OvhSource(settings.ovh) as source:
        with pytest.raises(StorageError):
            run_archive(settings, source, FailingStore(store, method="put", match=fail_on, after=after))  # type: ignore[arg-type]
        # the cursor did not move past data that was not durable
        assert load_state(store, SERVICE, "outgoing").cursor is None
        run_archive(settings, source, store)
    assert archive_contents(store) == api_truth(emulator)
    # Content-named parts: the retry rewrote the same keys, so no row is stored twice.
    assert raw_row_count(store) == sum(len(rows) for rows in api_truth(emulator).values())


def test_interrupted_cycle_resumes_without_refetching(
    emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver.actions.archive import run_archive
    from archiver.source import OvhSource

    storage = local_storage_env(tmp_path / "archive")
    for key, value in cli_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="20").items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    store = store_from_env(storage)
    with OvhSource(settings.ovh) as source:
        # the third checkpoint fails: two chunks of outgoing are durable and recorded
        with pytest.raises(StorageError):
            run_archive(settings, source, FailingStore(store, method="put", match="_state/", after=2))  # type: ignore[arg-type]
        state = load_state(store, SERVICE, "outgoing")
        assert state.cursor is None and state.partial_until is not None
        done = len(state.partial_done)
        assert done == 40
        reports = run_archive(settings, source, store)
    assert archive_contents(store) == api_truth(emulator)
    # what was durable before the interruption is not fetched again
    outgoing_report = next(report for report in reports if report.direction == "outgoing")
    assert outgoing_report.fetched == len(emulator.outgoing(SERVICE)) - done
    assert load_state(store, SERVICE, "outgoing").partial_until is None


def test_second_instance_is_refused_and_dead_holder_is_taken_over(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage, SMS_ARCHIVER_OVH__SERVICES=SERVICE)
    store = store_from_env(storage)
    now = dt.datetime.now(dt.UTC)

    def hold(pid: int) -> None:
        # A holder in this PID namespace: only there does a pid tell whether the holder still runs.
        info = LeaseInfo(
            "someone",
            socket.gethostname(),
            pid,
            "",
            now,
            now + dt.timedelta(minutes=10),
            pid_namespace=current_pid_namespace(),
        )
        store.put(lease_key(SERVICE), info.to_json())

    hold(os.getpid())  # a live process of this host: this test itself
    refused = run_cli("archive", env=env)
    assert refused.code == 75, refused.stderr
    assert "being archived by another instance" in refused.stderr
    assert "Traceback" not in refused.stderr

    hold(2**22 + 12345)  # beyond pid_max on most systems: a process that cannot be running
    taken = run_cli("archive", env=env)
    assert taken.code == 0, taken.stderr
    assert taken.events("lease_taken_over")
    assert read_lease(store, SERVICE) is None  # released at the end


def test_api_storms_are_retried(tmp_path: Path) -> None:
    with make_emulator(outgoing=60, incoming=10) as emulator:
        emulator.faults.error_rate_429 = 0.25
        emulator.faults.error_rate_500 = 0.15
        emulator.faults.drop_rate = 0.05
        emulator.faults.retry_after_seconds = 0
        emulator.faults.seed = 7
        storage = local_storage_env(tmp_path / "archive")
        result = run_cli("archive", env=cli_env(emulator, storage, SMS_ARCHIVER_OVH__MAX_RETRIES="12"), timeout=180)
        assert result.code == 0, result.stderr[-3000:]
        assert result.events("api_retry"), "the storm caused no retry: the test proves nothing"
        assert archive_contents(store_from_env(storage)) == api_truth(emulator)


def test_malformed_record_is_reported_skipped_and_retried(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage)
    victim = sorted(emulator.outgoing(SERVICE))[5]
    emulator.corrupt_record(SERVICE, "outgoing", victim, {"id": victim, "ptt": "four", "message": None})
    result = run_cli("archive", env=env)
    assert result.code == 0, result.stderr
    [event] = [e for e in result.events("record_malformed") if e["sms_id"] == victim]
    assert "field" in event["reason"]
    store = store_from_env(storage)
    archived = archive_contents(store)["outgoing"]
    assert victim not in archived
    assert len(archived) == len(emulator.outgoing(SERVICE)) - 1
    assert victim in load_state(store, SERVICE, "outgoing").retry

    # Once the API answers properly, the next cycle archives it: nothing is lost.
    emulator.corrupt_record(SERVICE, "outgoing", victim, emulator.outgoing(SERVICE)[victim])
    assert run_cli("archive", env=env).code == 0
    assert archive_contents(store) == api_truth(emulator)


def test_bad_settings_exit_2_with_the_setting_named(emulator, tmp_path: Path) -> None:
    env = cli_env(emulator, local_storage_env(tmp_path), SMS_ARCHIVER_OVH__CONCURRENCY="lots")
    result = run_cli("archive", env=env)
    assert result.code == 2
    assert "SMS_ARCHIVER_OVH__CONCURRENCY" in result.stderr
    assert "Traceback" not in result.stderr

    env = cli_env(emulator, {})
    result = run_cli("archive", env=env)
    assert result.code == 2
    assert "SMS_ARCHIVER_STORAGE__URL: required" in result.stderr


def test_bad_credentials_are_explained(emulator, tmp_path: Path) -> None:
    env = cli_env(emulator, local_storage_env(tmp_path), SMS_ARCHIVER_OVH__APPLICATION_SECRET="wrong-secret-xyz")
    result = run_cli("archive", env=env)
    assert result.code == 1
    assert "OVH rejected the credentials" in result.stderr
    assert "wrong-secret-xyz" not in result.stderr
    assert "Traceback" not in result.stderr


def test_secrets_never_appear_in_output_or_archive(emulator, s3_bucket: S3Target) -> None:
    env = cli_env(emulator, s3_bucket.env, SMS_ARCHIVER_LOG__LEVEL="debug")
    outputs = [run_cli(*command, env=env) for command in (["archive"], ["check-config"], ["state", "show", "--json"])]
    assert all(result.code == 0 for result in outputs), [r.stderr[-500:] for r in outputs]
    secrets = [CREDENTIALS["application_secret"], CREDENTIALS["consumer_key"]]
    for result in outputs:
        for secret in secrets:
            assert secret not in result.stdout and secret not in result.stderr
    for key, data in iter_all_objects(store_from_env(s3_bucket.env)):
        for secret in secrets:
            assert secret.encode() not in data, key


def test_check_config_reports_each_side(emulator, s3_bucket: S3Target) -> None:
    ok = run_cli("check-config", env=cli_env(emulator, s3_bucket.env))
    assert ok.code == 0, ok.stdout + ok.stderr
    assert "ok    OVH credentials: 1 SMS service(s): " + SERVICE in ok.stdout
    broken = dict(
        s3_bucket.env,
        SMS_ARCHIVER_STORAGE__URL="s3://no-such-bucket-here/x",
        SMS_ARCHIVER_STORAGE__MAX_ATTEMPTS="1",
    )
    bad = run_cli("check-config", env=cli_env(emulator, broken, SMS_ARCHIVER_OVH__SERVICES="sms-nope-1"))
    assert bad.code == 1
    assert "FAIL  OVH service sms-nope-1" in bad.stdout
    assert "FAIL  storage" in bad.stdout


def test_backfill_does_not_move_the_cursor(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage)
    today = dt.date.today()
    result = run_cli("backfill", "--from", str(today - dt.timedelta(days=20)), "--to", str(today), env=env)
    assert result.code == 0, result.stderr
    store = store_from_env(storage)
    assert load_state(store, SERVICE, "outgoing").cursor is None
    contents = archive_contents(store)["outgoing"]
    assert contents and len(contents) < len(emulator.outgoing(SERVICE))
    assert run_cli("archive", env=env).code == 0
    assert archive_contents(store) == api_truth(emulator)


def test_state_show_and_reset(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage)
    assert run_cli("archive", env=env).code == 0
    shown = run_cli("state", "show", "--json", env=env)
    document = json.loads(shown.stdout)
    assert {(item["service"], item["direction"]) for item in document} == {
        (SERVICE, "outgoing"),
        (SERVICE, "incoming"),
    }
    assert all(item["cursor"] for item in document)
    refused = run_cli("state", "reset", "--service", SERVICE, env=env)
    assert refused.code == 2
    reset = run_cli("state", "reset", "--service", SERVICE, "--yes", env=env)
    assert reset.code == 0
    # After a reset, the next cycle lists everything again; rows are not doubled for readers.
    assert run_cli("archive", env=env).code == 0
    assert archive_contents(store_from_env(storage)) == api_truth(emulator)


def test_demo_command(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMS_ARCHIVER_")}
    result = run_cli("demo", "--storage-url", (tmp_path / "demo").as_uri(), "--outgoing", "80", env=env)
    assert result.code == 0, result.stderr
    assert "second cycle:     0 rows written" in result.stdout
    assert list((tmp_path / "demo").rglob("*.csv"))


@pytest.mark.parametrize("delimiter", ["tab", ","])
def test_other_delimiters_and_gzip_round_trip(emulator, s3_bucket: S3Target, delimiter: str) -> None:
    env = cli_env(emulator, s3_bucket.env, SMS_ARCHIVER_ARCHIVE__DELIMITER=delimiter, SMS_ARCHIVER_ARCHIVE__GZIP="true")
    result = run_cli("archive", env=env)
    assert result.code == 0, result.stderr
    store = store_from_env(s3_bucket.env)
    assert all(key.endswith(".csv.gz") for key in part_keys(store))
    assert archive_contents(store) == api_truth(emulator)
    assert run_cli("verify", env=env).code == 0


def test_export_strategy_few_calls_and_fallback(tmp_path: Path) -> None:
    with make_emulator(outgoing=600, incoming=20, days=200) as emulator:
        storage = local_storage_env(tmp_path / "export")
        env = cli_env(emulator, storage, SMS_ARCHIVER_OVH__FETCH="export", SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="200")
        emulator.stats.reset()
        result = run_cli("archive", env=env)
        assert result.code == 0, result.stderr
        [outgoing] = [event for event in result.events("cursor_advanced") if event["direction"] == "outgoing"]
        assert outgoing["rows_written"] == 600
        routes = emulator.stats.snapshot()["by_route"]
        # Every outgoing record came from the export; one batch call checked a sample of its dates with the API.
        assert routes.get("GET /sms/{sn}/outgoing/{ids}", 0) == 1
        assert routes["GET /sms/{sn}/document"] == 1  # 200 days: one 12-month document
        # + 2 listings per direction that prove a first listing whole (docs/ovh-api.md, "Listings").
        assert emulator.stats.total <= 12 + 2 * 2
        archived = archive_contents(store_from_env(storage))["outgoing"]
        truth = api_truth(emulator)["outgoing"]
        assert archived.keys() == truth.keys()
        control_panel = [
            0,
            1,
            2,
            3,
            4,
            7,
            8,
            9,
            10,
        ]  # id, date, sender, receiver, ptt, tag, message, sentAt, deliveredAt
        for sms_id, row in archived.items():
            assert [row[i] for i in control_panel] == [truth[sms_id][i] for i in control_panel]
            assert row[5]  # operatorCode: only the export has it

    with make_emulator(outgoing=400, incoming=20) as emulator:
        emulator.faults.export_supported = False
        storage = local_storage_env(tmp_path / "fallback")
        env = cli_env(emulator, storage, SMS_ARCHIVER_OVH__FETCH="export")
        result = run_cli("archive", env=env)
        assert result.code == 0, result.stderr
        assert result.events("export_unavailable")
        assert archive_contents(store_from_env(storage)) == api_truth(emulator)
