"""Legal holds and the audit trail, end to end: the CLI over the OVH emulator and a real S3 server.

A hold keeps what it covers at OVH (retention) and in the archive (the ``archive_keep_months`` purge)
while the rest goes; once lifted, the next run deletes it too; the audit trail names each event's actor.
Then the adversary: a hold placed between retention's decision and its deletions, a hold that cannot
be read, a hold whose dates end in the middle of a purged month.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from archiver.actions.retention import HELD_REASON, run_retention
from archiver.config import load_settings
from archiver.holds import HoldScope, place_hold
from archiver.naming import DIRECTIONS, Direction
from archiver.reader import archived_months, iter_records
from archiver.records import Record, parse_api_record
from archiver.source import OvhSource
from archiver.store import Store
from archiver.store.layout import hold_key
from tests.conftest import S3Target
from tests.integration.helpers import PARIS, SERVICE, cli_env, local_storage_env, make_emulator, run_cli, store_from_env

POLICY_DAYS = 30
ACTOR = "dpo@example.test"


def compliance_env(emulator: Any, storage: dict[str, str], **extra: str) -> dict[str, str]:
    return cli_env(
        emulator,
        storage,
        SMS_ARCHIVER_RETENTION__ENABLED="true",
        SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS=str(POLICY_DAYS),
        SMS_ARCHIVER_RETENTION__ARCHIVE_KEEP_MONTHS="1",
        SMS_ARCHIVER_ACTOR=ACTOR,
        **extra,
    )


@pytest.fixture
def emulator() -> Iterator[Any]:
    with make_emulator(outgoing=160, incoming=30, days=90) as server:
        yield server


def archived(store: Store) -> dict[Direction, dict[int, Record]]:
    """Every archived record as readers see it (one per id, newest version)."""
    found: dict[Direction, dict[int, Record]] = {}
    for direction in DIRECTIONS:
        found[direction] = {
            record.id: record
            for year, month in archived_months(store, SERVICE, direction)
            for record in iter_records(store, SERVICE, direction, year, month)
        }
    return found


UTC = zoneinfo.ZoneInfo("UTC")  # the archive's zone unless set


def month_of(record: Record, zone: zoneinfo.ZoneInfo = UTC) -> str:
    return f"{record.created.astimezone(zone):%Y-%m}"


def old_outgoing(emulator: Any, days: float) -> dict[int, Record]:
    """The API's outgoing SMS older than ``days``."""
    now = dt.datetime.now(dt.UTC)
    records = {
        sms_id: parse_api_record("outgoing", raw, api_zone=PARIS) for sms_id, raw in emulator.outgoing(SERVICE).items()
    }
    return {sms_id: record for sms_id, record in records.items() if now - record.created > dt.timedelta(days=days)}


def busiest_old_receiver(emulator: Any) -> str:
    """The receiver of the most outgoing SMS older than the policy (with a margin): the hold's subject."""
    counts = Counter(record.get("receiver") for record in old_outgoing(emulator, POLICY_DAYS + 2).values())
    receiver, count = counts.most_common(1)[0]
    assert count >= 2, "no receiver with several old SMS: the test would prove little"
    return receiver


def spaced(number: str) -> str:
    """``+33612345678`` as people write it, ``+33 6 12 34 56 78``: the hold must find it all the same."""
    return f"{number[:3]} {number[3]} " + " ".join(number[i : i + 2] for i in range(4, len(number), 2))


def audit_events(env: dict[str, str]) -> list[dict[str, Any]]:
    result = run_cli("audit", "--json", env=env)
    assert result.code == 0, result.stderr
    events: list[dict[str, Any]] = json.loads(result.stdout)
    return events


def test_a_hold_on_a_receiver_keeps_its_sms_at_ovh_and_in_the_archive_until_lifted(
    emulator: Any, s3_bucket: S3Target
) -> None:
    env = compliance_env(emulator, s3_bucket.env)
    assert run_cli("archive", env=env).code == 0
    store = store_from_env(s3_bucket.env)
    before = archived(store)
    receiver = busiest_old_receiver(emulator)
    to_receiver = {sms_id for sms_id, r in before["outgoing"].items() if r.get("receiver") == receiver}

    placed = run_cli("hold", "add", "--receiver", spaced(receiver), "--reason", "case 42: dispute", env=env)
    assert placed.code == 0, placed.stderr
    hold_id = placed.stdout.strip()
    assert hold_id.startswith("hold-")
    listed = json.loads(run_cli("hold", "list", "--json", env=env).stdout)
    assert [(h["id"], h["scope"], h["placed_by"]) for h in listed] == [(hold_id, {"receiver": receiver}, ACTOR)]

    dry = run_cli("retention", "--json", env=env)
    assert dry.code == 0, dry.stderr
    assert emulator.deleted == []
    planned = json.loads(dry.stdout)
    assert planned["held"] > 0 and planned["archive_held"] > 0 and planned["holds_active"] == 1

    applied = run_cli("retention", "--apply", "--json", env=env)
    assert applied.code == 0, applied.stderr
    report = json.loads(applied.stdout)
    deleted_in_first_run = len(emulator.deleted)
    deleted = {sms_id for _service, direction, sms_id in emulator.deleted if direction == "outgoing"}
    assert deleted, "nothing deleted: the test proves nothing about the rest going"
    assert not deleted & to_receiver
    held = {d["id"] for d in report["decisions"] if d["reason"] == f"{HELD_REASON} {hold_id}"}
    old_to_receiver = {i for i, r in old_outgoing(emulator, POLICY_DAYS + 1).items() if r.get("receiver") == receiver}
    assert old_to_receiver and old_to_receiver <= held <= to_receiver
    assert report["held"] == len(held)

    # The purge: months older than the kept one lost everything but the held SMS.
    purged = {purge["month"] for purge in report["archive_purges"] if purge["direction"] == "outgoing"}
    assert purged and all(purge["action"] == "purged" for purge in report["archive_purges"])
    after = archived(store)
    in_purged = {i: r for i, r in before["outgoing"].items() if month_of(r) in purged}
    assert any(r.get("receiver") != receiver for r in in_purged.values()), "the purge removed nothing but held SMS"
    for sms_id, record in in_purged.items():
        if record.get("receiver") == receiver:
            assert after["outgoing"][sms_id] == record  # kept, unchanged
        else:
            assert sms_id not in after["outgoing"]
    held_in_archive = sum(1 for r in in_purged.values() if r.get("receiver") == receiver)
    assert held_in_archive > 0
    assert report["archive_held"] == held_in_archive
    assert not any(month_of(r) in purged for r in after["incoming"].values())  # no hold there: gone whole
    assert run_cli("verify", env=env).code == 0

    status = json.loads(run_cli("status", "--json", env=env).stdout)
    assert status["legal_holds"]["count"] == 1 and status["legal_holds"]["list"][0]["id"] == hold_id

    lifted = run_cli("hold", "remove", hold_id, "--reason", "case 42 closed", env=env)
    assert lifted.code == 0, lifted.stderr
    again = run_cli("retention", "--apply", "--json", env=env)
    assert again.code == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["held"] == 0 and second["archive_held"] == 0
    deleted_now = {sms_id for _service, direction, sms_id in emulator.deleted if direction == "outgoing"}
    assert old_to_receiver <= deleted_now
    final = archived(store)
    assert not any(month_of(r) in purged and r.get("receiver") == receiver for r in final["outgoing"].values())
    assert run_cli("verify", env=env).code == 0

    events = audit_events(env)
    assert {event["actor"] for event in events} == {ACTOR}
    # One event per hold placed or lifted, per run that deleted at OVH, per archive month purged.
    by_run = [(event["kind"], event["what"].get("run") or event["what"].get("hold")) for event in events]
    purges = [(p["direction"], p["month"]) for p in report["archive_purges"]]
    purges_again = [(p["direction"], p["month"]) for p in second["archive_purges"] if p["action"] == "purged"]
    assert by_run == [
        ("hold_placed", hold_id),
        *[("archive_purge", report["run_id"])] * len(purges),
        ("retention_deletion", report["run_id"]),
        ("hold_lifted", hold_id),
        *[("archive_purge", second["run_id"])] * len(purges_again),
        ("retention_deletion", second["run_id"]),
    ]
    placed_event, lifted_event = events[0], events[len(purges) + 2]
    assert placed_event["why"] == "case 42: dispute" and lifted_event["why"] == "case 42 closed"
    deletion = events[len(purges) + 1]
    assert deletion["counts"]["deleted"] == deleted_in_first_run and deletion["counts"]["held"] == len(held)
    assert deletion["what"]["services"] == [SERVICE]
    purge_events = events[1 : len(purges) + 1]
    assert [(e["what"]["direction"], e["what"]["month"]) for e in purge_events] == purges
    assert sum(e["counts"]["held"] for e in purge_events) == held_in_archive
    # The audit trail is never rewritten, and it names no phone number in clear.
    assert receiver not in json.dumps(events)
    table = run_cli("audit", env=env)
    assert table.code == 0 and "hold_placed" in table.stdout and ACTOR in table.stdout


class HoldPlacedAfterDeciding:
    """The OVH source, but once retention has fetched what it decides on, a hold is placed (by someone else)."""

    def __init__(self, inner: OvhSource, store: Store, scope: HoldScope) -> None:
        self.inner, self.store, self.scope = inner, store, scope
        self.placed: str | None = None

    def fetch(self, service: str, direction: Direction, ids: Any) -> Iterator[tuple[int, Any]]:
        yield from self.inner.fetch(service, direction, ids)
        if self.placed is None and direction == "outgoing":
            self.placed = place_hold(self.store, self.scope, reason="placed mid-run", actor="someone else").id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_hold_placed_between_the_decision_and_the_deletions_is_obeyed(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = compliance_env(emulator, storage, SMS_ARCHIVER_RETENTION__DIRECTIONS="outgoing")
    assert run_cli("archive", env=env).code == 0
    receiver = busiest_old_receiver(emulator)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    store = store_from_env(storage)
    with OvhSource(settings.ovh) as source:
        racing = HoldPlacedAfterDeciding(source, store, HoldScope(receiver=receiver))
        report = run_retention(settings, cast(OvhSource, racing), store, apply=True)
    assert racing.placed is not None
    deleted = {sms_id for _service, _direction, sms_id in emulator.deleted}
    assert deleted, "nothing deleted: the test proves nothing"
    old_to_receiver = {i for i, r in old_outgoing(emulator, POLICY_DAYS + 1).items() if r.get("receiver") == receiver}
    assert old_to_receiver and not old_to_receiver & deleted
    assert report.held >= len(old_to_receiver)
    kept = {d.id for d in report.decisions if d.reason == f"{HELD_REASON} {racing.placed}"}
    assert old_to_receiver <= kept


def test_an_unreadable_hold_stops_the_run_before_anything_is_deleted(emulator: Any, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = compliance_env(emulator, storage)
    assert run_cli("archive", env=env).code == 0
    store = store_from_env(storage)
    objects_before = sorted((info.key, info.size) for info in store.list("") if not info.key.startswith("_holds/"))
    store.put(hold_key("hold-20260101-abcdef"), b'{"id": "hold-20260101-abcdef", "scope": ')  # cut short

    result = run_cli("retention", "--apply", "--json", env=env)
    assert result.code == 1
    assert "hold-20260101-abcdef" in result.stderr and "unreadable" in result.stderr
    assert emulator.deleted == []
    objects_after = sorted((info.key, info.size) for info in store.list("") if not info.key.startswith("_holds/"))
    assert objects_after == objects_before  # nothing purged, archived, journaled or audited
    status = json.loads(run_cli("status", "--json", env=env).stdout)
    assert status["legal_holds"]["count"] is None and "unreadable" in status["legal_holds"]["error"]


def test_a_hold_whose_dates_end_mid_month_keeps_that_half_month_in_the_purge(emulator: Any, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    # Days in Paris: an SMS at 23:30 UTC on the 15th is held or not by the archive's zone, not by UTC.
    env = compliance_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__TIMEZONE="Europe/Paris")
    assert run_cli("archive", env=env).code == 0
    store = store_from_env(storage)
    before = archived(store)
    now = dt.datetime.now(PARIS)
    index = now.year * 12 + now.month - 1 - 2  # two months ago: purged, and whole in the sample data
    first = dt.date(index // 12, index % 12 + 1, 1)
    middle = first.replace(day=15)
    placed = run_cli(
        "hold", "add", "--from", first.isoformat(), "--to", middle.isoformat(), "--reason", "audit of H1", env=env
    )
    assert placed.code == 0, placed.stderr

    result = run_cli("retention", "--apply", "--json", env=env)
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    after = archived(store)
    month = f"{first:%Y-%m}"
    assert month in {purge["month"] for purge in report["archive_purges"]}
    for direction in DIRECTIONS:
        in_month = {i: r for i, r in before[direction].items() if month_of(r, PARIS) == month}
        early = {i for i, r in in_month.items() if r.created.astimezone(PARIS).date() <= middle}
        if direction == "outgoing":
            assert early and set(in_month) - early, "the month should have SMS on both sides of the 15th"
        for sms_id in in_month:
            assert (sms_id in after[direction]) == (sms_id in early)
        purge = next(p for p in report["archive_purges"] if p["direction"] == direction and p["month"] == month)
        assert purge["held"] == len(early)
        # Other purged months, which the hold's dates do not meet, went whole.
        assert not any(month_of(r, PARIS) < month for r in after[direction].values())
    # At OVH too: the held days stay, the rest of the old SMS goes.
    deleted = {(direction, sms_id) for _service, direction, sms_id in emulator.deleted}
    for direction in DIRECTIONS:
        for sms_id, record in before[direction].items():
            if month_of(record, PARIS) == month and record.created.astimezone(PARIS).date() <= middle:
                assert (direction, sms_id) not in deleted
    assert run_cli("verify", env=env).code == 0
