"""Costs that grow with the work, not faster: the checkpoints of a long first cycle, retention's reads."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from archiver.actions.archive import run_archive
from archiver.actions.retention import run_retention
from archiver.config import load_settings
from archiver.records import parse_instant
from archiver.source import OvhSource
from archiver.store import Store
from archiver.store.layout import parse_part_key
from tests.integration.helpers import (
    PARIS,
    SERVICE,
    StoreWrapper,
    api_truth,
    archive_contents,
    cli_env,
    local_storage_env,
    make_emulator,
    store_from_env,
)


class CountsStateBytes(StoreWrapper):
    """A store that records the size of every cursor checkpoint (``_state/{service}/{direction}.json``)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.checkpoints: list[bytes] = []

    def put(self, key: str, data: bytes, **options: Any) -> Any:
        if key.startswith("_state/") and key.endswith("/outgoing.json"):
            self.checkpoints.append(data)
        return self.inner.put(key, data, **options)


def first_cycle_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, records: int, days: int) -> list[bytes]:
    """Archive ``records`` outgoing SMS spread over ``days`` in chunks of 10; return every state object written."""
    with make_emulator(outgoing=records, incoming=0, days=days) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(
            emulator, storage, SMS_ARCHIVER_ARCHIVE__DIRECTIONS="outgoing", SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="10"
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings()
        store = CountsStateBytes(store_from_env(storage))
        with OvhSource(settings.ovh) as source:
            run_archive(settings, source, store)  # type: ignore[arg-type]
        assert archive_contents(store_from_env(storage))["outgoing"] == api_truth(emulator)["outgoing"]
    assert len(store.checkpoints) >= records // 10, "fewer checkpoints than chunks: the test proves nothing"
    return store.checkpoints


def test_checkpoints_write_bytes_in_proportion_to_a_chunk_not_to_the_ids_so_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two years of history: only a handful of records fall in the lookback the cursor remembers.
    checkpoints = first_cycle_checkpoints(tmp_path, monkeypatch, records=3000, days=730)
    # The progress of the cycle, in each checkpoint: with every durable id listed, the last ones would
    # hold 3,000 ids (~30 kB), and the run would write ~5 MB of them. Ranges stay a few bytes.
    progress = [len(json.dumps(json.loads(data)["partial"])) for data in checkpoints[:-1]]
    assert max(progress) < 200, max(progress)


def test_a_busy_accounts_first_cycle_writes_checkpoints_the_size_of_a_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every record is inside the lookback, so the cursor remembers them all: at the end, not at each checkpoint."""
    records = 2000
    *checkpoints, final = first_cycle_checkpoints(tmp_path, monkeypatch, records=records, days=2)
    assert len(json.loads(final)["known"]) > records // 2  # the cycle's end remembers what the lookback holds
    # Remembering every record at every checkpoint would write ~2,000 x 200 entries (~20 MB): quadratic.
    assert max(len(data) for data in checkpoints) < 2_000, max(len(data) for data in checkpoints)


class CountsPartReads(StoreWrapper):
    """A store that counts the reads (``get`` or ``open``) of every data part."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.reads: Counter[str] = Counter()

    def get(self, key: str) -> bytes:
        if parse_part_key(key) is not None:
            self.reads[key] += 1
        return self.inner.get(key)

    def open(self, key: str) -> BinaryIO:
        if parse_part_key(key) is not None:
            self.reads[key] += 1
        return self.inner.open(key)


@pytest.mark.parametrize("apply", [False, True])
def test_retention_reads_each_part_once_and_lists_each_direction_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, apply: bool
) -> None:
    # A year of history; the policy keeps 200 days: the parts of the last ~6 months hold no old id.
    with make_emulator(outgoing=400, incoming=0, days=365) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(
            emulator,
            storage,
            SMS_ARCHIVER_ARCHIVE__DIRECTIONS="outgoing",
            SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="40",
            SMS_ARCHIVER_RETENTION__DIRECTIONS="outgoing",
            SMS_ARCHIVER_RETENTION__ENABLED="true",
            SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS="200",
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings()
        with OvhSource(settings.ovh) as source:
            run_archive(settings, source, store_from_env(storage))
        # A late status of an old SMS: retention archives its new version and reads it back.
        now = emulator.now()
        old = sorted(
            sms_id
            for sms_id, raw in emulator.outgoing(SERVICE).items()
            if (now - parse_instant(raw["creationDatetime"], PARIS)).days > 250
        )
        emulator.update_outgoing(SERVICE, old[0], ptt=5)
        store = CountsPartReads(store_from_env(storage))
        emulator.stats.reset()
        with OvhSource(settings.ovh) as source:
            report = run_retention(settings, source, store, apply=apply)  # type: ignore[arg-type]
        listings = emulator.stats.count("GET", "/sms/{sn}/outgoing")
        parts = {info.key for info in store.list(f"{SERVICE}/") if parse_part_key(info.key) is not None}
    assert report.count("delete") + report.count("deleted") > 0, "nothing was old enough: the test proves nothing"
    assert listings == 1  # the ids older than the policy; no second listing only to count the younger ones
    assert store.reads and max(store.reads.values()) == 1, store.reads.most_common(3)
    assert set(store.reads) < parts  # the recent months, which hold no old id, are not read at all
    if apply:  # the late status was archived, and its new part read back (once)
        assert any(decision.reason.startswith("archived copy differs") for decision in report.decisions)
