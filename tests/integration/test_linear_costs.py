"""Costs that grow with the work, not faster: the checkpoints of a long first cycle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from archiver.actions.archive import run_archive
from archiver.config import load_settings
from archiver.source import OvhSource
from archiver.store import Store
from tests.integration.helpers import (
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


def test_checkpoints_write_bytes_in_proportion_to_a_chunk_not_to_the_ids_so_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = 3000
    # Two years of history: only a handful of records fall in the lookback the cursor remembers.
    with make_emulator(outgoing=records, incoming=0, days=730) as emulator:
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
    checkpoints = store.checkpoints
    assert len(checkpoints) >= records // 10 - 1, "fewer checkpoints than chunks: the test proves nothing"
    # The progress of the cycle, in each checkpoint: with every durable id listed, the last ones would
    # hold 3,000 ids (~30 kB), and the run would write ~5 MB of them. Ranges stay a few bytes.
    progress = [len(json.dumps(json.loads(data)["partial"])) for data in checkpoints[:-1]]
    assert max(progress) < 200, max(progress)
