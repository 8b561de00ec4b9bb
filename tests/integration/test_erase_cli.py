"""Erasure requests (``erase --number``): the number leaves every part, version and service; nothing else does.

An adversary's view: the number is written in several forms, in both directions, in two services,
in several months, and in older versions of the same SMS (in another part of the same day and in a
later month); a neighbouring number must stay; the bucket is read raw, object by object (gzip or
not); held SMS stay; the audit trail names the number only by its digest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.audit import number_digest, read_events
from archiver.config import ArchiveSettings
from archiver.emulator import EmulatorServer, generate_sample_data
from archiver.holds import HoldScope, place_hold
from archiver.manifest import record_parts
from archiver.naming import DIRECTIONS, Direction
from archiver.records import format_instant, parse_api_record
from archiver.store import Store
from archiver.writer import write_parts
from tests.conftest import S3Target
from tests.integration.helpers import (
    CREDENTIALS,
    PARIS,
    SERVICE,
    api_truth,
    archive_contents,
    cli_env,
    local_storage_env,
    run_cli,
    store_from_env,
)

OTHER = "sms-test12345-2"
NUMBER = "+33612345678"
# The same number as OVH or a user may write it: every form must go.
FORMS = ("+33612345678", "0033612345678", "+33 6 12 34 56 78")
NEIGHBOUR = "+33612345679"  # one digit off: must stay
KEY = "erasure-key-for-tests-0123456789"
# What the raw bytes of any object must not contain once the number is erased. (The sample data has
# "06 12 34 56 78" in the text of some messages from other numbers: erasure looks at senders and
# receivers, not into texts, and says so in the README.)
TRACES = (b"33612345678", b"+33 6 12 34 56 78")


@dataclasses.dataclass
class Archive:
    emulator: EmulatorServer
    storage: dict[str, str]
    env: dict[str, str]
    store: Store
    # (service, direction) -> ids whose SMS were sent to or received from NUMBER
    matching: dict[tuple[str, Direction], set[int]]


def _outgoing(emulator: EmulatorServer, service: str, sms_id: int, days_ago: float, receiver: str) -> int:
    template = dict(next(iter(emulator.outgoing(service).values())))
    created = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    template.update(
        id=sms_id,
        creationDatetime=created.astimezone(PARIS).isoformat(timespec="seconds"),
        sentAt=None,
        deliveredAt=None,
        ptt=5,  # final: failed
        receiver=receiver,
        message=f"message to a customer #{sms_id}",
    )
    emulator.add_outgoing(service, template)
    return sms_id


def _incoming(emulator: EmulatorServer, service: str, sms_id: int, days_ago: float, sender: str) -> int:
    created = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    emulator.add_incoming(
        service,
        {
            "id": sms_id,
            "creationDatetime": created.astimezone(PARIS).isoformat(timespec="seconds"),
            "credits": 1.0,
            "message": f"reply #{sms_id}",
            "sender": sender,
            "tag": "",
        },
    )
    return sms_id


def _older_versions(emulator: EmulatorServer, service: str, ids: list[int], *, days_later: int) -> list[Any]:
    """An older version of each SMS (another message), ``days_later`` days after its creation (0: same day)."""
    records = []
    for sms_id in ids:
        record = parse_api_record("outgoing", emulator.outgoing(service)[sms_id], api_zone=PARIS)
        created = record.created + dt.timedelta(days=days_later)
        fields = list(record.fields)
        fields[1] = format_instant(created)
        fields[8] = "an older version of this SMS"
        records.append(dataclasses.replace(record, created=created, fields=tuple(fields)))
    return records


def build_archive(storage: dict[str, str], **extra: str) -> Iterator[Archive]:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    data = generate_sample_data(services=(SERVICE, OTHER), outgoing=120, incoming=30, days=80, now=now)
    with EmulatorServer(**CREDENTIALS, services=data) as emulator:
        matching: dict[tuple[str, Direction], set[int]] = {
            (service, direction): set() for service in (SERVICE, OTHER) for direction in DIRECTIONS
        }
        for index, (days_ago, form) in enumerate(zip((3, 33, 63, 20), (*FORMS, NUMBER), strict=True)):
            matching[(SERVICE, "outgoing")].add(_outgoing(emulator, SERVICE, 20_000_000_000 + index, days_ago, form))
        matching[(OTHER, "outgoing")].add(_outgoing(emulator, OTHER, 20_000_000_100, 40, NUMBER))
        matching[(SERVICE, "incoming")] |= {
            _incoming(emulator, SERVICE, 400_000_000, 10, NUMBER),
            _incoming(emulator, SERVICE, 400_000_001, 50, "0033612345678"),
        }
        matching[(OTHER, "incoming")].add(_incoming(emulator, OTHER, 400_000_100, 25, NUMBER))
        _outgoing(emulator, SERVICE, 20_000_000_200, 3, NEIGHBOUR)
        _incoming(emulator, OTHER, 400_000_200, 25, NEIGHBOUR)

        store = store_from_env(storage)
        archive = ArchiveSettings(gzip=extra.get("SMS_ARCHIVER_ARCHIVE__GZIP") == "true")
        # Older versions, written before the archive writes the API's (hence newest) ones: of the number's
        # SMS in the same day (another part) and a month later, and of some other SMS a month later.
        others = sorted(set(emulator.outgoing(SERVICE)) - matching[(SERVICE, "outgoing")])[::15]
        older = (
            _older_versions(emulator, SERVICE, sorted(matching[(SERVICE, "outgoing")]), days_later=0)
            + _older_versions(emulator, SERVICE, sorted(matching[(SERVICE, "outgoing")])[:2], days_later=31)
            + _older_versions(emulator, SERVICE, others, days_later=31)
        )
        for record in older:  # one part each: versions in parts of their own
            record_parts(store, SERVICE, "outgoing", write_parts(store, archive, SERVICE, "outgoing", [record]))
        env = cli_env(emulator, storage, SMS_ARCHIVER_OVH__SERVICES=f"{SERVICE},{OTHER}", **extra)
        result = run_cli("archive", env=env)
        assert result.code == 0, result.stderr
        yield Archive(emulator, storage, env, store, matching)


@pytest.fixture
def local_archive(tmp_path: Path) -> Iterator[Archive]:
    yield from build_archive(local_storage_env(tmp_path / "archive"))


@pytest.fixture
def s3_archive(s3_bucket: S3Target) -> Iterator[Archive]:
    yield from build_archive(dict(s3_bucket.env), SMS_ARCHIVER_ARCHIVE__GZIP="true")


def raw_objects(store: Store) -> dict[str, bytes]:
    """Every object of the archive, as stored (gzip undone, so that the rows can be searched)."""
    objects = {}
    for info in store.list(""):
        data = store.get(info.key)
        objects[info.key] = gzip.decompress(data) if info.key.endswith(".gz") else data
    return objects


def traces(objects: dict[str, bytes]) -> list[str]:
    return [key for key, data in objects.items() if any(trace in data for trace in TRACES)]


def contents(archive: Archive) -> dict[tuple[str, Direction], dict[int, tuple[str, ...]]]:
    return {
        (service, direction): rows
        for service in (SERVICE, OTHER)
        for direction, rows in archive_contents(archive.store, service).items()
    }


def without(
    rows: dict[tuple[str, Direction], dict[int, tuple[str, ...]]], gone: dict[tuple[str, Direction], set[int]]
) -> dict[tuple[str, Direction], dict[int, tuple[str, ...]]]:
    return {where: {i: f for i, f in found.items() if i not in gone[where]} for where, found in rows.items()}


def rows_listed(months: Any) -> int:
    return sum(month["rows"] for month in json.loads(months.stdout))


def erase(archive: Archive, *args: str, **env: str) -> Any:
    result = run_cli("erase", "--number", "+33 6 12 34 56 78", "--json", *args, env=dict(archive.env, **env))
    return result


def test_erase_removes_every_version_everywhere_and_nothing_else(s3_archive: Archive) -> None:
    archive = s3_archive
    before = contents(archive)
    truth = {
        (service, direction): rows
        for service in (SERVICE, OTHER)
        for direction, rows in api_truth(archive.emulator, service).items()
    }
    assert before == truth
    objects = raw_objects(archive.store)
    assert traces(objects), "the test archive must hold the number before the erasure"
    assert any(key.endswith(".csv.gz") for key in objects)

    months_before = run_cli("months", "--json", env=archive.env)

    # The dry run: counts per month, writes nothing, needs no key, never prints the number.
    dry = erase(archive)
    assert dry.code == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["applied"] is False and planned["found"] == sum(len(ids) for ids in archive.matching.values())
    assert {(m["service"], m["direction"]) for m in planned["months"]} == set(archive.matching)
    assert raw_objects(archive.store) == objects
    assert NUMBER not in dry.stdout + dry.stderr

    # --yes without the key: a clear error naming the setting, nothing done.
    refused = erase(archive, "--yes")
    assert refused.code == 2 and "SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY" in refused.stderr
    assert raw_objects(archive.store) == objects

    done = erase(archive, "--yes", SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY=KEY, SMS_ARCHIVER_ACTOR="dpo@example")
    assert done.code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["complete"] and report["erased"] == planned["found"] and report["held"] == 0

    after = raw_objects(archive.store)
    assert traces(after) == []
    assert any(NEIGHBOUR.encode() in data for data in after.values())
    assert contents(archive) == without(truth, archive.matching)
    for output in (dry, done):
        assert not any(form in output.stdout + output.stderr for form in FORMS)

    # The journal: one erasure event, the number only as its digest.
    events = [event for event in read_events(archive.store) if event.kind == "erasure"]
    assert len(events) == 1 and events[0].actor == "dpo@example" and events[0].why == "erasure request"
    assert events[0].what["number"] == number_digest(KEY, NUMBER)
    assert events[0].counts["rows_erased"] == planned["found"]

    # Every reader agrees: verify passes, retrieve has every other SMS and not the number, months too.
    verify = run_cli("verify", env=archive.env)
    assert verify.code == 0, verify.stdout + verify.stderr
    for service in (SERVICE, OTHER):
        for direction in DIRECTIONS:
            months = {m["month"] for m in planned["months"] if (m["service"], m["direction"]) == (service, direction)}
            for month in months:
                got = run_cli(
                    "retrieve", "--service", service, "--direction", direction, "--month", month, env=archive.env
                )
                assert got.code == 0, got.stderr
                assert not any(trace.decode() in got.stdout for trace in TRACES)
    # ``months`` counts stored rows (older versions included): the number's rows, at least, are gone.
    listed = run_cli("months", "--json", env=archive.env)
    assert listed.code == 0, listed.stderr
    assert rows_listed(listed) <= rows_listed(months_before) - planned["found"]

    # A second run finds nothing, says so, and that this number was erased before.
    again = run_cli(
        "erase",
        "--number",
        "0033612345678",
        "--yes",
        env=dict(archive.env, SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY=KEY, SMS_ARCHIVER_ACTOR="dpo@example"),
    )
    assert again.code == 0, again.stderr
    assert "nothing to erase" in again.stdout and "erased before on" in again.stdout and "dpo@example" in again.stdout
    assert raw_objects(archive.store).keys() - after.keys() <= {
        key for key in raw_objects(archive.store) if key.startswith("_journal/audit/")
    }


def test_held_sms_are_kept_and_reported_and_at_ovh_deletes_the_rest(local_archive: Archive) -> None:
    archive = local_archive
    before = contents(archive)
    held_scope = HoldScope(service=OTHER, receiver=NUMBER)
    hold = place_hold(archive.store, held_scope, reason="dispute 42", actor="legal@example")
    held = {(OTHER, "outgoing"): archive.matching[(OTHER, "outgoing")]}

    done = erase(archive, "--yes", "--at-ovh", SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY=KEY)
    assert done.code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["held"] == 1 and report["hold_ids"] == [hold.id]
    erased = {where: ids - held.get(where, set()) for where, ids in archive.matching.items()}
    assert report["erased"] == sum(len(ids) for ids in erased.values())
    assert contents(archive) == without(before, erased)  # the held SMS is still there, as it was

    # At OVH: the erased SMS are gone, the held one and every other SMS still there.
    assert report["deleted_at_ovh"] == report["erased"]
    deleted = {(service, direction, sms_id) for service, direction, sms_id in archive.emulator.deleted}
    assert deleted == {(s, d, i) for (s, d), ids in erased.items() for i in ids}
    assert held[(OTHER, "outgoing")] <= set(archive.emulator.outgoing(OTHER))
    kinds = [event.kind for event in read_events(archive.store)]
    assert kinds.index("erasure_ovh_intent") < kinds.index("erasure")

    # Without the hold's scope, the text interface names the hold.
    table = run_cli("erase", "--number", NUMBER, env=archive.env)
    assert table.code == 0 and hold.id in table.stdout
    assert run_cli("verify", env=archive.env).code == 0


def test_a_sender_id_or_garbage_is_refused(local_archive: Archive) -> None:
    for number in ("MyShop", "not a number!"):
        result = run_cli("erase", "--number", number, "--yes", env=local_archive.env)
        assert result.code == 2 and "--number" in result.stderr


@pytest.fixture
def lockable_archive(s3_bucket: S3Target) -> Iterator[Archive]:
    """The archive in a bucket with Object Lock enabled (its parts written unlocked, as before the setting)."""
    bucket = s3_bucket.bucket + "-lock"
    s3_bucket.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    yield from build_archive(dict(s3_bucket.env, SMS_ARCHIVER_STORAGE__URL=f"s3://{bucket}/archive"))


def test_object_locked_parts_are_reported_with_their_date_and_finished_later(lockable_archive: Archive) -> None:
    archive = lockable_archive
    lock = {"SMS_ARCHIVER_STORAGE__OBJECT_LOCK_MODE": "GOVERNANCE", "SMS_ARCHIVER_STORAGE__OBJECT_LOCK_DAYS": "3"}
    locked_store = store_from_env({**archive.storage, **lock})
    # One day of the number gets a part written under Object Lock (a copy of its newest version).
    sms_id = min(archive.matching[(SERVICE, "outgoing")])
    record = parse_api_record("outgoing", archive.emulator.outgoing(SERVICE)[sms_id], api_zone=PARIS)
    entries = write_parts(locked_store, ArchiveSettings(), SERVICE, "outgoing", [record])
    record_parts(locked_store, SERVICE, "outgoing", entries)
    locked_key = entries[0].key
    info = locked_store.head(locked_key)
    assert info is not None and info.locked_until is not None
    assert info.locked_until > dt.datetime.now(dt.UTC) + dt.timedelta(days=2)

    env = dict(archive.env, **lock, SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY=KEY)
    done = run_cli("erase", "--number", NUMBER, "--yes", "--json", env=env)
    assert done.code == 3, done.stderr  # incomplete: not 0, and not an error either
    report = json.loads(done.stdout)
    assert report["complete"] is False
    assert [part["key"] for part in report["locked_parts"]] == [locked_key]
    until = dt.datetime.fromisoformat(report["locked_parts"][0]["locked_until"])
    assert abs(until - info.locked_until) < dt.timedelta(seconds=1)
    assert "INCOMPLETE" in done.stderr
    # The locked day is left as it was, every other day is erased.
    day_prefix = locked_key.rsplit("/", 1)[0] + "/"
    assert {key.rsplit("/", 1)[0] + "/" for key in traces(raw_objects(archive.store))} == {day_prefix}
    events = [event for event in read_events(archive.store) if event.kind == "erasure"]
    assert events[-1].what["complete"] is False and events[-1].counts["locked_parts"] == 1
    # Under Object Lock the audit trail is locked like the data: no one rewrites who erased what.
    audit_keys = [info.key for info in archive.store.list("_journal/audit/")]
    assert audit_keys
    for key in audit_keys:
        audit_info = archive.store.head(key)
        assert audit_info is not None and audit_info.locked_until is not None, key

    # The text form says so, with the date.
    table = run_cli("erase", "--number", NUMBER, env=env)
    assert table.code == 0 and locked_key in table.stdout and f"{info.locked_until:%Y-%m-%d}" in table.stdout

    # The older versions the bucket kept of the parts the rewrites deleted are gone too: what still
    # holds the number is the locked day's current parts, nothing else.
    assert {key for key, _version in versions_with_traces(archive)} == set(traces(raw_objects(archive.store)))

    # Once the lock has ended (here: its governance retention removed, as an administrator may), the
    # same command finishes the erasure, older versions included.
    bucket = archive.storage["SMS_ARCHIVER_STORAGE__URL"].removeprefix("s3://").split("/")[0]
    client = s3_client(archive)
    client.put_object_retention(
        Bucket=bucket, Key=f"archive/{locked_key}", Retention={}, BypassGovernanceRetention=True
    )
    later = run_cli("erase", "--number", NUMBER, "--yes", "--json", env=env)
    assert later.code == 0, later.stderr
    report = json.loads(later.stdout)
    assert report["complete"] and report["erased"] == 1 and report["days_rewritten"] == 1
    assert report["old_versions_deleted"] >= 1  # the locked day's parts, which the rewrite deleted
    assert traces(raw_objects(archive.store)) == []
    assert versions_with_traces(archive) == []
    assert run_cli("verify", env=env).code == 0


def s3_client(archive: Archive) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=archive.storage["SMS_ARCHIVER_STORAGE__ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )


def versions_with_traces(archive: Archive) -> list[tuple[str, str]]:
    """Every version of every object the bucket keeps, read raw: those that hold the number."""
    bucket = archive.storage["SMS_ARCHIVER_STORAGE__URL"].removeprefix("s3://").split("/")[0]
    client = s3_client(archive)
    found = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            data = client.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
            if version["Key"].endswith(".gz"):
                data = gzip.decompress(data)
            if any(trace in data for trace in TRACES):
                found.append((version["Key"].removeprefix("archive/"), version["VersionId"]))
    return found
