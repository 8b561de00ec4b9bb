"""The browser's index follows the archive: new cycles, versions that move month, compaction, purges.

The index is a cache of the reader's output; these tests change the archive under a running
browser and check, each time, that the API gives exactly what the reader gives (each id once).
"""

from __future__ import annotations

import datetime as dt
import shutil
import urllib.parse
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from archiver.config import ArchiveSettings, Settings
from archiver.manifest import record_parts
from archiver.records import COLUMNS, parse_api_record
from archiver.web.index import HistoryIndex
from archiver.writer import write_parts
from tests.integration.helpers import (
    PARIS,
    SERVICE,
    api_truth,
    archive_contents,
    cli_env,
    local_storage_env,
    make_emulator,
    older_versions_dated_a_month_later,
    run_cli,
    store_from_env,
)
from tests.web.conftest import get

UTC_ARCHIVE = Settings.model_construct(archive=ArchiveSettings(timezone="UTC"))


def _listed(web: str) -> dict[tuple[str, int], tuple[str, ...]]:
    rows: dict[tuple[str, int], tuple[str, ...]] = {}
    query: dict[str, str] = {"limit": "1000"}
    for _page in range(100):
        body = get(f"{web}/api/sms?{urllib.parse.urlencode(query)}").json()
        for item in body["items"]:
            key = (item["direction"], int(item["id"]))
            assert key not in rows, f"{key} listed twice"
            rows[key] = tuple(item[column] for column in COLUMNS[item["direction"]])
        if body["next"] is None:
            return rows
        query["after"] = body["next"]
    raise AssertionError("paging did not end")


def _flat(contents: dict[Any, dict[int, tuple[str, ...]]]) -> dict[tuple[str, int], tuple[str, ...]]:
    return {(direction, sms_id): fields for direction, rows in contents.items() for sms_id, fields in rows.items()}


@pytest.fixture
def archived(tmp_path: Path) -> Any:
    with make_emulator(outgoing=150, incoming=20, days=70) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__TIMEZONE="UTC")
        assert run_cli("archive", env=env).code == 0
        yield emulator, storage, env, tmp_path / "archive"


def test_the_index_follows_moved_versions_new_cycles_and_compaction(archived: Any, start_web: Any) -> None:
    emulator, storage, env, directory = archived
    store = store_from_env(storage)
    web = start_web(directory)
    truth = _flat(api_truth(emulator))
    assert _listed(web) == truth

    # Older versions of some ids, dated a month later, written last: for every reader they are now
    # the newest, in another month. The original months' parts did not change, yet their rows of
    # those ids must go.
    raws, moved = older_versions_dated_a_month_later(emulator)
    moved_parts = write_parts(store, UTC_ARCHIVE.archive, SERVICE, "outgoing", moved)
    record_parts(store, SERVICE, "outgoing", moved_parts)
    reader = _flat(archive_contents(store))
    assert reader != truth
    assert _listed(web) == reader

    # Those parts removed again (as a purge of their month would): the versions of the months that
    # did not change count again, and must come back.
    for entry in moved_parts:
        store.delete(entry.key)
    assert _flat(archive_contents(store)) == truth
    assert _listed(web) == truth

    record_parts(store, SERVICE, "outgoing", write_parts(store, UTC_ARCHIVE.archive, SERVICE, "outgoing", moved))
    assert _listed(web) == reader

    # The API's versions written again, last: they win back.
    originals = [parse_api_record("outgoing", raw, api_zone=PARIS) for _sms_id, raw in raws]
    record_parts(store, SERVICE, "outgoing", write_parts(store, UTC_ARCHIVE.archive, SERVICE, "outgoing", originals))
    reader = _flat(archive_contents(store))
    assert reader == truth
    assert _listed(web) == truth

    # Compaction replaces parts by merged ones.
    assert run_cli("compact", env=env).code == 0
    assert _listed(web) == truth


def test_a_month_gone_from_the_archive_leaves_the_index(archived: Any, start_web: Any) -> None:
    _emulator, storage, _env, directory = archived
    web = start_web(directory)
    before = _listed(web)
    first = min(dt.datetime.fromisoformat(fields[1]) for fields in before.values()).astimezone(dt.UTC)
    for direction in ("outgoing", "incoming"):
        shutil.rmtree(
            directory / SERVICE / direction / f"year={first.year:04d}" / f"month={first.month:02d}", ignore_errors=True
        )
    after = _listed(web)
    assert after == _flat(archive_contents(store_from_env(storage)))
    assert set(after) < set(before)
    assert all(
        dt.datetime.fromisoformat(fields[1]).astimezone(dt.UTC).strftime("%Y-%m") != first.strftime("%Y-%m")
        for fields in after.values()
    )


def test_a_deleted_index_is_rebuilt_and_a_second_refresh_reads_nothing(archived: Any, tmp_path: Path) -> None:
    _emulator, storage, _env, _directory = archived
    store = store_from_env(storage)
    index = HistoryIndex(store, zoneinfo.ZoneInfo("UTC"), tmp_path / "cache")
    first = index.refresh()
    assert first.rebuilt > 0 and first.rows == sum(len(rows) for rows in archive_contents(store).values())
    assert index.refresh().rebuilt == 0
    index.path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(index.path) + suffix).unlink(missing_ok=True)
    again = HistoryIndex(store, zoneinfo.ZoneInfo("UTC"), tmp_path / "cache")
    assert again.refresh().rows == first.rows
