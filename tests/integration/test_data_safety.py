"""Data safety under the other answers to OVH's unknowns: capped listings, null batch values, OVH's clock.

Each test gives the answer our emulator did not give before (docs/ovh-api.md lists the unknowns) and
checks the promise: the archive equals the API field for field, and retention deletes nothing
younger than the policy on OVH's clock.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from structlog.testing import capture_logs

from archiver.actions.archive import archive_direction, run_archive
from archiver.actions.retention import run_retention
from archiver.config import Settings, load_settings
from archiver.emulator import EmulatorServer, Faults, generate_sample_data
from archiver.errors import CycleInterrupted, LeaseHeldError
from archiver.records import parse_instant
from archiver.source import OvhSource
from archiver.store import ObjectInfo, Store
from archiver.store.layout import lease_key, parse_part_key
from archiver.store.lease import Lease, LeaseInfo
from archiver.store.state import load_state
from tests.integration.helpers import (
    CREDENTIALS,
    PARIS,
    SERVICE,
    StoreWrapper,
    api_truth,
    archive_contents,
    cli_env,
    local_storage_env,
    make_emulator,
    run_cli,
    store_from_env,
)


def emulator_on_its_clock(
    offset: dt.timedelta, *, outgoing: int = 120, incoming: int = 30, days: int = 40, **faults: Any
) -> EmulatorServer:
    """An emulator whose clock is ``offset`` away from ours, with data ending an hour ago on ITS clock."""
    server_now = dt.datetime.now(dt.UTC) + offset
    data = generate_sample_data(
        services=(SERVICE,), outgoing=outgoing, incoming=incoming, days=days, now=server_now - dt.timedelta(hours=1)
    )
    clock = int(offset.total_seconds())
    return EmulatorServer(**CREDENTIALS, services=data, faults=Faults(clock_skew_seconds=clock, **faults))


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings an in-process run gets from this environment (as the CLI would)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def archived_with_retention(emulator: EmulatorServer, storage: dict[str, str], *, policy_days: int) -> dict[str, str]:
    """Archive the outgoing SMS once; return the environment of a retention policy on them."""
    env = cli_env(
        emulator,
        storage,
        SMS_ARCHIVER_ARCHIVE__DIRECTIONS="outgoing",
        SMS_ARCHIVER_RETENTION__DIRECTIONS="outgoing",
        SMS_ARCHIVER_RETENTION__ENABLED="true",
        SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS=str(policy_days),
    )
    assert run_cli("archive", env=env).code == 0
    return env


def largest_one_second_burst(emulator: EmulatorServer) -> int:
    seconds: dict[tuple[str, int], int] = {}
    for direction, records in (("outgoing", emulator.outgoing(SERVICE)), ("incoming", emulator.incoming(SERVICE))):
        for raw in records.values():
            second = int(parse_instant(raw["creationDatetime"], PARIS).timestamp())
            seconds[(direction, second)] = seconds.get((direction, second), 0) + 1
    return max(seconds.values())


@pytest.mark.parametrize("keep", ["newest", "oldest"])
@pytest.mark.parametrize("cap", [7, 45])
def test_capped_listings_lose_nothing_in_one_run(keep: str, cap: int, tmp_path: Path) -> None:
    with make_emulator(faults=Faults(listing_cap=cap, listing_cap_keep=keep)) as emulator:
        assert cap > largest_one_second_burst(emulator)
        assert len(emulator.outgoing(SERVICE)) > 2 * cap, "the cap would cut nothing"
        storage = local_storage_env(tmp_path / "archive")
        result = run_cli("archive", env=cli_env(emulator, storage))
        assert result.code == 0, result.stderr[-3000:]
        assert archive_contents(store_from_env(storage)) == api_truth(emulator)


@pytest.mark.parametrize("keep", ["newest", "oldest"])
def test_capped_listings_with_our_clock_hours_ahead_of_ovh(keep: str, storage_env: dict[str, str]) -> None:
    with emulator_on_its_clock(-dt.timedelta(hours=5), listing_cap=9, listing_cap_keep=keep) as emulator:
        result = run_cli("archive", env=cli_env(emulator, storage_env))
        assert result.code == 0, result.stderr[-3000:]
        assert archive_contents(store_from_env(storage_env)) == api_truth(emulator)


def test_a_burst_in_one_second_larger_than_the_cap_is_an_error_naming_the_window(tmp_path: Path) -> None:
    with make_emulator(outgoing=30, incoming=0, faults=Faults(listing_cap=4, listing_cap_keep="newest")) as emulator:
        template = next(iter(emulator.outgoing(SERVICE).values()))
        second = (emulator.now() - dt.timedelta(hours=2)).replace(microsecond=0)
        for offset in range(6):
            emulator.add_outgoing(
                SERVICE, {**template, "id": 90_000_000 + offset, "creationDatetime": second.isoformat()}
            )
        storage = local_storage_env(tmp_path / "archive")
        result = run_cli("archive", env=cli_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__DIRECTIONS="outgoing"))
        assert result.code == 1
        assert "listing" in result.stderr and second.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") in result.stderr
        # Nothing moved the cursor past the window it could not prove complete.
        assert load_state(store_from_env(storage), SERVICE, "outgoing").cursor is None


@pytest.mark.parametrize("strategy", ["batch", "auto"])
def test_batch_elements_with_null_value_and_no_error_are_fetched_again(strategy: str, tmp_path: Path) -> None:
    with make_emulator(faults=Faults(batch_null_rate=0.3, seed=7)) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        result = run_cli("archive", env=cli_env(emulator, storage, SMS_ARCHIVER_OVH__FETCH=strategy))
        assert result.code == 0, result.stderr[-3000:]
        assert emulator.stats.count("GET", "/sms/{sn}/outgoing/{id}") > 0, "no element came back null"
        assert archive_contents(store_from_env(storage)) == api_truth(emulator)


def test_records_created_after_a_cycle_are_archived_when_our_clock_is_ahead(storage_env: dict[str, str]) -> None:
    """A cursor on our clock (hours ahead) would start the next window after these records: lost."""
    with emulator_on_its_clock(-dt.timedelta(hours=3), outgoing=20, incoming=5, days=2) as emulator:
        env = cli_env(
            emulator,
            storage_env,
            SMS_ARCHIVER_ARCHIVE__SETTLE_SECONDS="0",
            SMS_ARCHIVER_ARCHIVE__LOOKBACK_HOURS="1",
        )
        assert run_cli("archive", env=env).code == 0
        template = next(iter(emulator.outgoing(SERVICE).values()))
        created = emulator.now().replace(microsecond=0) + dt.timedelta(seconds=1)
        emulator.add_outgoing(SERVICE, {**template, "id": 91_000_000, "creationDatetime": created.isoformat()})
        wait_until(lambda: emulator.now() > created + dt.timedelta(seconds=1))
        second = run_cli("archive", env=env)
        assert second.code == 0, second.stderr[-3000:]
        assert archive_contents(store_from_env(storage_env)) == api_truth(emulator)


def test_a_large_clock_offset_is_reported_once(tmp_path: Path) -> None:
    with emulator_on_its_clock(-dt.timedelta(hours=2), outgoing=10, incoming=2, days=2) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(emulator, storage)
        result = run_cli("archive", env=env)
        assert result.code == 0, result.stderr[-3000:]
        warnings = result.events("clock_offset")
        assert len(warnings) == 1
        assert abs(warnings[0]["offset_seconds"] + 7200) <= 5
        check = run_cli("check-config", env=env)
        assert "clock" in check.stdout.lower() and "7200" in check.stdout.replace(",", ""), check.stdout
        status = run_cli("status", "--json", env=env)
        assert '"clock_offset_seconds"' in status.stdout, status.stdout


def wait_until(condition: Any, *, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


POLICY_DAYS = 180


def test_retention_keeps_what_is_younger_than_the_policy_on_ovh_clock(tmp_path: Path) -> None:
    """Our clock three days ahead: a cutoff on our clock would delete SMS 177 days old."""
    offset = -dt.timedelta(days=3)
    with emulator_on_its_clock(offset, outgoing=200, incoming=20, days=200) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(
            emulator,
            storage,
            SMS_ARCHIVER_RETENTION__ENABLED="true",
            SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS=str(POLICY_DAYS),
        )
        assert run_cli("archive", env=env).code == 0
        server_now = emulator.now()
        ages = {
            sms_id: (server_now - parse_instant(raw["creationDatetime"], PARIS)).total_seconds() / 86400
            for sms_id, raw in emulator.outgoing(SERVICE).items()
        }
        assert any(POLICY_DAYS - 3 < age < POLICY_DAYS for age in ages.values()), "no record in the danger zone"
        applied = run_cli("retention", "--apply", env=env)
        assert applied.code == 0, applied.stderr[-3000:]
        deleted = {sms_id for _service, direction, sms_id in emulator.deleted if direction == "outgoing"}
        assert deleted, "retention deleted nothing: the test proves nothing"
        assert all(ages[sms_id] >= POLICY_DAYS for sms_id in deleted), sorted(
            round(ages[sms_id], 2) for sms_id in deleted
        )[:5]


def recent_record(emulator: EmulatorServer, sms_id: int, age: dt.timedelta, **fields: Any) -> dict[str, Any]:
    template = dict(next(iter(emulator.outgoing(SERVICE).values())))
    created = (emulator.now() - age).replace(microsecond=0)
    template.update(id=sms_id, creationDatetime=created.isoformat(), **fields)
    return template


@pytest.mark.parametrize("ptt", [24, 25, 26])
def test_temporary_failures_are_checked_again_within_the_lookback(ptt: int, tmp_path: Path) -> None:
    with make_emulator(outgoing=20, incoming=0) as emulator:
        emulator.add_outgoing(
            SERVICE, recent_record(emulator, 92_000_000, dt.timedelta(hours=3), ptt=ptt, deliveredAt=None)
        )
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__DIRECTIONS="outgoing")
        assert run_cli("archive", env=env).code == 0
        delivered = (emulator.now() - dt.timedelta(hours=2)).replace(microsecond=0).isoformat()
        emulator.update_outgoing(SERVICE, 92_000_000, ptt=4, deliveredAt=delivered)
        assert run_cli("archive", env=env).code == 0
        archived = archive_contents(store_from_env(storage))["outgoing"][92_000_000]
        assert archived == api_truth(emulator)["outgoing"][92_000_000]


def test_a_status_that_never_settles_is_archived_and_reported(tmp_path: Path) -> None:
    with make_emulator(outgoing=10, incoming=0) as emulator:
        emulator.add_outgoing(
            SERVICE, recent_record(emulator, 93_000_000, dt.timedelta(hours=30), ptt=1, deliveredAt=None)
        )
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(
            emulator,
            storage,
            SMS_ARCHIVER_ARCHIVE__DIRECTIONS="outgoing",
            SMS_ARCHIVER_ARCHIVE__LOOKBACK_HOURS="0.5",
            SMS_ARCHIVER_ARCHIVE__START=(emulator.now() - dt.timedelta(hours=32)).date().isoformat(),
        )
        first = run_cli("archive", env=env)
        assert first.code == 0, first.stderr[-3000:]
        # Past the lookback (and the day the cursor remembers after it) when first seen: archived with
        # its last status, and said so once.
        assert archive_contents(store_from_env(storage))["outgoing"][93_000_000][4] == "1"
        assert first.events("status_unsettled") and first.events("status_unsettled")[0]["count"] >= 1
        status = run_cli("status", "--json", env=env)
        assert '"unsettled": ' in status.stdout and '"unsettled": 0' not in status.stdout, status.stdout


def test_retention_keeps_a_status_that_may_still_change(tmp_path: Path) -> None:
    """Older than a 1-day policy but inside the 72 h lookback, a pending SMS may still be delivered."""
    with make_emulator(outgoing=10, incoming=0, days=3) as emulator:
        emulator.add_outgoing(
            SERVICE, recent_record(emulator, 94_000_000, dt.timedelta(hours=40), ptt=2, deliveredAt=None)
        )
        storage = local_storage_env(tmp_path / "archive")
        env = archived_with_retention(emulator, storage, policy_days=1)
        dry = run_cli("retention", "--json", env=env)
        assert dry.code == 0, dry.stderr[-3000:]
        decisions = {d["id"]: d for d in json.loads(dry.stdout)["decisions"]}
        assert decisions[94_000_000]["action"] == "keep"
        assert decisions[94_000_000]["reason"] == "status not final"


class TakeOverOnRead(StoreWrapper):
    """A store through which, during retention's reading, another instance takes the lease over."""

    def __init__(self, inner: Store, service: str) -> None:
        super().__init__(inner)
        self.lease = lease_key(service)
        self.taken = False

    def _take_over_on_a_part(self, key: str) -> None:
        if not self.taken and parse_part_key(key) is not None:
            self.taken = True
            now = dt.datetime.now(dt.UTC)
            other = LeaseInfo("someone-else", "other-host", 4242, "", now, now + dt.timedelta(hours=1))
            self.inner.put(self.lease, other.to_json())

    def get(self, key: str) -> bytes:
        self._take_over_on_a_part(key)
        return self.inner.get(key)

    def open(self, key: str) -> BinaryIO:
        self._take_over_on_a_part(key)
        return self.inner.open(key)


def test_retention_sends_no_delete_once_its_lease_is_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_emulator(outgoing=60, incoming=0, days=90) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        env = archived_with_retention(emulator, storage, policy_days=30)
        settings = settings_from(env, monkeypatch)
        store = TakeOverOnRead(store_from_env(storage), SERVICE)
        with OvhSource(settings.ovh) as source, pytest.raises(LeaseHeldError):
            run_retention(settings, source, cast(Store, store), apply=True)
        assert store.taken, "the takeover never happened: the test proves nothing"
        assert emulator.deleted == []


class DropsParts(StoreWrapper):
    """A store that acknowledges data parts without keeping them (a broken or lagging store)."""

    def put(self, key: str, data: bytes, **options: Any) -> Any:
        if parse_part_key(key) is not None:
            return self.inner.head(key) or ObjectInfo(key, len(data), dt.datetime.now(dt.UTC), "", {})
        return self.inner.put(key, data, **options)


def test_a_copy_that_can_never_match_is_reported_not_kept_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_emulator(outgoing=60, incoming=0, days=90) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        env = archived_with_retention(emulator, storage, policy_days=30)
        now = emulator.now()
        changed = next(
            sms_id
            for sms_id, raw in emulator.outgoing(SERVICE).items()
            if raw["ptt"] == 4 and (now - parse_instant(raw["creationDatetime"], PARIS)).days > 40
        )
        emulator.update_outgoing(SERVICE, changed, ptt=5)
        settings = settings_from(env, monkeypatch)
        store = DropsParts(store_from_env(storage))
        with OvhSource(settings.ovh) as source, capture_logs() as logs:
            report = run_retention(settings, source, cast(Store, store), apply=True)
        assert [decision.id for decision in report.unmatchable] == [changed]
        assert report.unmatchable[0].reason.startswith("cannot match") and "ptt" in report.unmatchable[0].reason
        assert [event["count"] for event in logs if event["event"] == "retention_unmatchable"] == [1]
        assert ("outgoing", changed) not in {(d, i) for _s, d, i in emulator.deleted}


class StopOnFirstRecord:
    """A progress listener that asks the cycle to stop (as SIGTERM does) once a record is fetched."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, count: int) -> None:
        if count:
            self.stop.set()

    def finish(self) -> None:
        pass


@pytest.mark.parametrize("keep", ["newest", "oldest"])
def test_an_interrupted_cycle_under_a_cap_resumes_without_refetching_and_loses_nothing(
    keep: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_emulator(outgoing=60, incoming=0, faults=Faults(listing_cap=25, listing_cap_keep=keep)) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(
            emulator,
            storage,
            SMS_ARCHIVER_ARCHIVE__DIRECTIONS="outgoing",
            SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="10",
            SMS_ARCHIVER_OVH__FETCH="per-id",  # one GET per record: the count says what was fetched
        )
        settings = settings_from(env, monkeypatch)
        store = store_from_env(storage)
        stop = threading.Event()
        with OvhSource(settings.ovh) as source:
            with pytest.raises(CycleInterrupted):
                # Asked to stop as soon as a record is fetched: the cycle stops after its first chunk.
                run_archive(settings, source, store, stop=stop, progress=StopOnFirstRecord(stop))
            state = load_state(store, SERVICE, "outgoing")
            assert state.partial_done, "the cycle was not interrupted mid-way"
            emulator.stats.reset()
            run_archive(settings, source, store)
        assert emulator.stats.count("GET", "/sms/{sn}/outgoing/{id}") == 60 - 10, "the resumed cycle fetched again"
        assert archive_contents(store)["outgoing"] == api_truth(emulator)["outgoing"]


class CountsLeaseWrites(StoreWrapper):
    """A store that counts the writes of one lease object (acquisition, renewals, release)."""

    def __init__(self, inner: Store, service: str) -> None:
        super().__init__(inner)
        self.key = lease_key(service)
        self.writes = 0

    def _count(self, key: str) -> None:
        self.writes += key == self.key

    def put_if_match(self, key: str, data: bytes, etag: str, **options: Any) -> Any:
        self._count(key)
        return self.inner.put_if_match(key, data, etag, **options)

    def put_if_absent(self, key: str, data: bytes, **options: Any) -> Any:
        self._count(key)
        return self.inner.put_if_absent(key, data, **options)


def test_the_lease_is_renewed_inside_a_long_fetch_not_only_between_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One chunk of 60 records, each taking 10 s on the lease's clock: a 30 s lease must be renewed as it goes."""
    with make_emulator(outgoing=60, incoming=0) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__DIRECTIONS="outgoing", SMS_ARCHIVER_OVH__FETCH="per-id")
        settings = settings_from(env, monkeypatch)
        store = CountsLeaseWrites(store_from_env(storage), SERVICE)
        moments = iter(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10 * step) for step in range(100_000))
        lease = Lease(cast(Store, store), SERVICE, ttl_seconds=30, clock=lambda: next(moments))
        with OvhSource(settings.ovh) as source, lease:
            archive_direction(
                settings,
                source,
                cast(Store, store),
                SERVICE,
                "outgoing",
                lease=lease,
                now=source.now(),
                progress=StopOnFirstRecord(threading.Event()),
            )
        assert archive_contents(store_from_env(storage))["outgoing"] == api_truth(emulator)["outgoing"]
    # Taken once and released once; renewed every couple of records in between (10 s each, 30 s lease).
    assert store.writes - 2 >= 20, store.writes
