"""The history browser after an erasure: its index rebuilds the rewritten months, and keeps no trace of the number.

The index is a local SQLite cache of the reader's rows; a deleted row must not linger in the file's
free pages or its write-ahead log either, or the number would outlive its erasure on the web host.
"""

from __future__ import annotations

import sqlite3
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.web.index import HistoryIndex
from tests.integration.helpers import local_storage_env, run_cli
from tests.integration.test_erase_cli import KEY, NUMBER, TRACES, Archive, build_archive, contents


@pytest.fixture
def built(tmp_path: Path) -> Iterator[Archive]:
    yield from build_archive(local_storage_env(tmp_path / "archive"))


def indexed(index: HistoryIndex) -> dict[tuple[str, str], set[int]]:
    found: dict[tuple[str, str], set[int]] = {}
    with sqlite3.connect(index.path) as db:
        for service, direction, sms_id in db.execute("SELECT service, direction, id FROM sms"):
            found.setdefault((service, direction), set()).add(sms_id)
    return found


def cache_bytes(index: HistoryIndex) -> bytes:
    files = [index.path, *(Path(f"{index.path}{suffix}") for suffix in ("-wal", "-shm", "-journal"))]
    return b"".join(path.read_bytes() for path in files if path.exists())


def test_the_index_forgets_the_number_with_the_archive(built: Archive, tmp_path: Path) -> None:
    archive = built
    index = HistoryIndex(archive.store, zoneinfo.ZoneInfo("UTC"), tmp_path / "cache", min_refresh_seconds=0)
    assert index.refresh().rebuilt > 0
    assert any(trace in cache_bytes(index) for trace in TRACES), "the number must be indexed before"

    env = dict(archive.env, SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY=KEY)
    assert run_cli("erase", "--number", NUMBER, "--yes", env=env).code == 0

    refreshed = index.refresh()
    assert refreshed.rebuilt > 0  # the rewritten months were noticed
    expected = {where: set(rows) for where, rows in contents(archive).items() if rows}
    assert indexed(index) == expected
    # Not in the rows, not in freed pages, not in the write-ahead log.
    assert not any(trace in cache_bytes(index) for trace in TRACES)
