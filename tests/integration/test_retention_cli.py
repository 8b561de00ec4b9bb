"""Retention: nothing is deleted at OVH that is not verifiably archived, from every angle of issue 4."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.actions.retention import run_retention
from archiver.config import load_settings
from archiver.errors import SourceError, StorageError
from archiver.reader import list_parts
from archiver.records import parse_instant
from archiver.source import OvhSource
from archiver.store import Store
from tests.conftest import S3Target
from tests.integration.helpers import (
    PARIS,
    SERVICE,
    FailingStore,
    api_truth,
    archive_contents,
    cli_env,
    local_storage_env,
    make_emulator,
    run_cli,
    store_from_env,
)

POLICY_DAYS = 30


def retention_env(emulator, storage: dict[str, str], **extra: str) -> dict[str, str]:
    return cli_env(
        emulator,
        storage,
        SMS_ARCHIVER_RETENTION__ENABLED="true",
        SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS=str(POLICY_DAYS),
        **extra,
    )


def age_days(raw: dict) -> float:
    created = parse_instant(raw["creationDatetime"], PARIS)
    return (dt.datetime.now(dt.UTC) - created).total_seconds() / 86400


def old_record(emulator, sms_id: int, days: int, **fields) -> dict:
    template = dict(next(iter(emulator.outgoing(SERVICE).values())))
    created = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    template.update(id=sms_id, creationDatetime=created.isoformat(timespec="seconds"), **fields)
    return template


@pytest.fixture
def emulator() -> Iterator:
    with make_emulator(outgoing=160, incoming=30, days=90) as server:
        yield server


def journal_rows(store: Store) -> list[dict[str, str]]:
    rows = []
    for info in store.list("_journal/deletions/"):
        rows += list(csv.DictReader(io.StringIO(store.get(info.key).decode(), newline=""), delimiter=";"))
    return rows


def flip_a_byte(store: Store, key: str) -> None:
    data = bytearray(store.get(key))
    data[len(data) // 2] ^= 0x20
    store.put(key, bytes(data))


def test_dry_run_then_apply_deletes_only_what_is_verifiably_archived(emulator, storage_env: dict[str, str]) -> None:
    env = retention_env(emulator, storage_env)
    assert run_cli("archive", env=env).code == 0
    store = store_from_env(storage_env)
    archived_before = archive_contents(store)

    # Records that must survive, each for another reason:
    emulator.add_outgoing(SERVICE, old_record(emulator, 40_000_000_001, 45))  # old, never archived
    damaged_part = next(
        stored.info.key
        for stored in list_parts(store, SERVICE, "outgoing")
        if (dt.date.today() - stored.part.day).days > 50
    )
    damaged_ids = {
        int(line.split(";")[0]) for line in store.get(damaged_part).decode().split("\r\n")[1:] if line[:1].isdigit()
    }
    flip_a_byte(store, damaged_part)  # its records' archived copy no longer verifies
    changed = next(
        i for i, r in emulator.outgoing(SERVICE).items() if age_days(r) > 40 and r["ptt"] == 4 and i not in damaged_ids
    )
    emulator.update_outgoing(SERVICE, changed, ptt=6)  # status changed since it was archived
    pending = [i for i, r in emulator.outgoing(SERVICE).items() if age_days(r) > 31 and r["ptt"] in (1, 2, 3)]
    truth_before = api_truth(emulator)

    dry = run_cli("retention", "--json", env=env)
    assert dry.code == 0, dry.stderr
    assert emulator.deleted == []
    decisions = {(d["direction"], d["id"]): d for d in json.loads(dry.stdout)["decisions"]}
    assert decisions[("outgoing", 40_000_000_001)]["reason"].startswith("not yet archived")
    assert decisions[("outgoing", changed)]["reason"].startswith("archived copy differs")
    # Long past the lookback, a status that never settled is what the archive keeps: deletable once equal.
    unsettled = [i for i in pending if i not in damaged_ids]
    assert unsettled, "no unsettled record: the test proves nothing about them"
    assert all(decisions[("outgoing", i)]["action"] == "delete" for i in unsettled)
    assert all(decisions[("outgoing", i)]["reason"].endswith("its status never settled") for i in unsettled)
    assert any(decisions[("outgoing", i)]["reason"].startswith("archived part fails verification") for i in damaged_ids)
    assert {d["action"] for d in decisions.values()} <= {"keep", "delete", "gone"}
    eligible = {key for key, d in decisions.items() if d["action"] == "delete"}
    assert eligible, "nothing eligible: the test proves nothing"
    assert all(age_days(d) > POLICY_DAYS for d in [truth_row_raw(emulator, key) for key in eligible])

    applied = run_cli("retention", "--apply", "--json", env=env)
    assert applied.code == 0, applied.stderr
    deleted = {(direction, sms_id) for _service, direction, sms_id in emulator.deleted}
    assert deleted == eligible
    # Every record gone from OVH is in the archive, intact and equal to what the API held.
    archive = archive_contents(store)
    for direction, sms_id in deleted:
        assert archive[direction][sms_id] == truth_before[direction][sms_id]
        assert archived_before[direction][sms_id] == truth_before[direction][sms_id]
    # Nothing that failed a condition is gone.
    for kept in (40_000_000_001, changed, *damaged_ids):
        assert ("outgoing", kept) not in deleted
    # The journal agrees with what OVH lost: an intent and a done row for each.
    rows = journal_rows(store)
    intents = {(r["direction"], int(r["id"])) for r in rows if r["action"] == "intent"}
    done = {(r["direction"], int(r["id"])) for r in rows if r["action"] in ("deleted", "gone")}
    assert intents == done == deleted
    assert {r["user"] for r in rows} == {"retention"}  # the scheduled policy, not a person, deleted these
    # The applied run archived the unarchived and changed records: a later run may delete them.
    assert archive["outgoing"][40_000_000_001] == api_truth(emulator)["outgoing"][40_000_000_001]


def truth_row_raw(emulator, key: tuple[str, int]) -> dict:
    direction, sms_id = key
    records = emulator.outgoing(SERVICE) if direction == "outgoing" else emulator.incoming(SERVICE)
    return records[sms_id]


def test_policy_and_enablement_are_required(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    no_policy = run_cli("retention", env=cli_env(emulator, storage))
    assert no_policy.code == 2
    assert "SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS" in no_policy.stderr
    enabled_without_policy = run_cli(
        "retention", env=cli_env(emulator, storage, SMS_ARCHIVER_RETENTION__ENABLED="true")
    )
    assert enabled_without_policy.code == 2
    assert "without a policy" in enabled_without_policy.stderr
    disabled = run_cli(
        "retention", "--apply", env=cli_env(emulator, storage, SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS="30")
    )
    assert disabled.code == 2
    assert "SMS_ARCHIVER_RETENTION__ENABLED" in disabled.stderr
    assert emulator.deleted == []


def test_cap_stops_the_run(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = retention_env(emulator, storage, SMS_ARCHIVER_RETENTION__MAX_DELETIONS_PER_RUN="3")
    assert run_cli("archive", env=env).code == 0
    result = run_cli("retention", "--apply", "--json", env=env)
    assert result.code == 1
    assert "cap" in result.stderr
    assert len(emulator.deleted) == 3
    assert json.loads(result.stdout)["capped"] > 0


def in_process(emulator, storage: dict[str, str], monkeypatch: pytest.MonkeyPatch, **extra: str):
    for key, value in retention_env(emulator, storage, **extra).items():
        monkeypatch.setenv(key, value)
    return load_settings()


def test_api_error_mid_run_deletes_nothing_after_it(emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = local_storage_env(tmp_path / "archive")
    assert run_cli("archive", env=retention_env(emulator, storage)).code == 0
    settings = in_process(emulator, storage, monkeypatch, SMS_ARCHIVER_OVH__MAX_RETRIES="0")
    emulator.faults.error_rate_500 = 1.0
    with OvhSource(settings.ovh) as source, pytest.raises(SourceError):
        run_retention(settings, source, store_from_env(storage), apply=True)
    assert emulator.deleted == []


@pytest.mark.parametrize("after", [0, 1])
def test_storage_error_mid_run_stops_deletions(
    emulator, s3_bucket: S3Target, monkeypatch: pytest.MonkeyPatch, after: int
) -> None:
    assert run_cli("archive", env=retention_env(emulator, s3_bucket.env)).code == 0
    settings = in_process(emulator, s3_bucket.env, monkeypatch)
    store = store_from_env(s3_bucket.env)
    failing = FailingStore(store, method="put", match="-intent.csv", after=after)
    with OvhSource(settings.ovh) as source, pytest.raises(StorageError):
        run_retention(settings, source, failing, apply=True)  # type: ignore[arg-type]
    # Before the failing journal write: only whole, journaled batches were deleted.
    intents = {int(r["id"]) for r in journal_rows(store) if r["action"] == "intent"}
    assert {sms_id for _s, _d, sms_id in emulator.deleted} == intents
    assert len(intents) == 100 * after


def test_kill_during_apply_then_rerun(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = retention_env(emulator, storage)
    assert run_cli("archive", env=env).code == 0
    truth_before = api_truth(emulator)
    emulator.faults.latency_seconds = 0.02  # slow deletions down, so the kill lands mid-apply
    process = subprocess.Popen(
        [sys.executable, "-m", "archiver", "retention", "--apply", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not emulator.deleted and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    killed_after = len(emulator.deleted)
    assert killed_after > 0, "the kill landed before any deletion: the test proves nothing"

    emulator.faults.latency_seconds = 0
    rerun = run_cli("retention", "--apply", "--json", env=env)
    assert rerun.code == 0, rerun.stderr
    store = store_from_env(storage)
    deleted = {(direction, sms_id) for _s, direction, sms_id in emulator.deleted}
    assert len(deleted) > killed_after
    archive = archive_contents(store)
    for direction, sms_id in deleted:
        assert archive[direction][sms_id] == truth_before[direction][sms_id]
    # Every deletion was announced in the journal before it happened.
    intents = {(r["direction"], int(r["id"])) for r in journal_rows(store) if r["action"] == "intent"}
    assert deleted <= intents


def test_archive_purge_dry_run_then_apply(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = retention_env(emulator, storage, SMS_ARCHIVER_RETENTION__ARCHIVE_KEEP_MONTHS="1")
    assert run_cli("archive", env=env).code == 0
    store = store_from_env(storage)
    now = dt.datetime.now(dt.UTC)
    index = now.year * 12 + now.month - 2
    oldest_kept = f"{index // 12:04d}-{index % 12 + 1:02d}"

    dry = run_cli("retention", "--json", env=env)
    assert dry.code == 0, dry.stderr
    planned = json.loads(dry.stdout)["archive_purges"]
    assert planned and all(p["month"] < oldest_kept and p["action"] == "purge" for p in planned)
    assert any(info.key.split("/")[2] == "year=" + planned[0]["month"][:4] for info in store.list(SERVICE + "/"))

    applied = run_cli("retention", "--apply", "--json", env=env)
    assert applied.code == 0, applied.stderr
    remaining = {
        "-".join(k.split("/")[2:4]).replace("year=", "").replace("month=", "")
        for k in (i.key for i in store.list(SERVICE + "/"))
    }
    assert all(month >= oldest_kept for month in remaining)
    assert list(store.list("_journal/purges/"))
    assert run_cli("verify", env=env).code == 0


def test_object_lock_on_data_parts(emulator, s3_bucket: S3Target) -> None:
    client = s3_bucket.client()
    locked_bucket = s3_bucket.bucket + "-lock"
    client.create_bucket(Bucket=locked_bucket, ObjectLockEnabledForBucket=True)
    storage = dict(
        s3_bucket.env,
        SMS_ARCHIVER_STORAGE__URL=f"s3://{locked_bucket}/archive",
        SMS_ARCHIVER_STORAGE__OBJECT_LOCK_MODE="GOVERNANCE",
        SMS_ARCHIVER_STORAGE__OBJECT_LOCK_DAYS="3",
    )
    result = run_cli("archive", env=cli_env(emulator, storage))
    assert result.code == 0, result.stderr
    objects = client.list_objects_v2(Bucket=locked_bucket)["Contents"]
    parts = [o["Key"] for o in objects if o["Key"].endswith(".csv")]
    state = [o["Key"] for o in objects if "/_state/" in "/" + o["Key"]]
    assert parts and state
    # (HeadObject reports the lock; moto's GetObjectRetention is less complete.)
    head = client.head_object(Bucket=locked_bucket, Key=parts[0])
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    assert "ObjectLockMode" not in client.head_object(Bucket=locked_bucket, Key=state[0])  # cursors stay rewritable
    bad = run_cli("archive", env=cli_env(emulator, dict(storage, SMS_ARCHIVER_STORAGE__OBJECT_LOCK_DAYS="0")))
    assert bad.code == 2 and "OBJECT_LOCK" in bad.stderr
