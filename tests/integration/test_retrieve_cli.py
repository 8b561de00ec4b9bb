"""Retrieval, verification and compaction, through the real CLI against a real S3 server and a directory."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.actions.compact import run_compact
from archiver.config import load_settings
from archiver.errors import StorageError
from archiver.reader import list_parts
from archiver.records import OUTGOING_COLUMNS, parse_instant
from archiver.store import Store
from archiver.store.layout import parse_part_key
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
    part_keys,
    run_cli,
    store_from_env,
)


@pytest.fixture
def emulator() -> Iterator:
    with make_emulator(outgoing=200, incoming=30, days=70) as server:
        yield server


def months_of(rows: dict[int, tuple[str, ...]]) -> list[str]:
    return sorted({row[1][:7] for row in rows.values()})


def parse_csv(text: str, delimiter: str = ";") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def month_of(row: tuple[str, ...]) -> str:
    return parse_instant(row[1], PARIS).astimezone(dt.UTC).strftime("%Y-%m")


def test_retrieve_round_trip_each_id_once_sorted(emulator, storage_env: dict[str, str], tmp_path: Path) -> None:
    env = cli_env(emulator, storage_env)
    assert run_cli("archive", env=env).code == 0
    truth = api_truth(emulator)["outgoing"]
    for month in sorted({month_of(row) for row in truth.values()}):
        output = tmp_path / f"{month}.csv"
        result = run_cli("retrieve", "--month", month, "--output", str(output), env=env)
        assert result.code == 0, result.stderr
        rows = parse_csv(output.read_bytes().decode("utf-8"))
        assert rows[0] == list(OUTGOING_COLUMNS)
        body = [tuple(row) for row in rows[1:]]
        expected = [row for row in truth.values() if month_of(row) == month]
        assert sorted(body) == sorted(expected)  # equal field for field, nasty messages included
        ids = [int(row[0]) for row in body]
        assert len(ids) == len(set(ids))
        keys = [(parse_instant(row[1], PARIS), int(row[0])) for row in body]
        assert keys == sorted(keys)


def test_retrieve_range_filters_and_formats(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage)
    assert run_cli("archive", env=env).code == 0
    truth = api_truth(emulator)["outgoing"]
    months = sorted({month_of(row) for row in truth.values()})

    whole = run_cli("retrieve", "--month", months[0], "--until-month", months[-1], env=env)
    assert whole.code == 0
    assert len(parse_csv(whole.stdout)) - 1 == len(truth)

    sender = next(iter(truth.values()))[2]
    by_sender = run_cli("retrieve", "--month", months[0], "--until-month", months[-1], "--sender", sender, env=env)
    assert {row[2] for row in parse_csv(by_sender.stdout)[1:]} == {sender}
    assert len(parse_csv(by_sender.stdout)) - 1 == sum(1 for row in truth.values() if row[2] == sender)

    excel = tmp_path / "excel.csv.gz"
    result = run_cli(
        "retrieve", "--month", months[-1], "--excel", "--gzip", "--delimiter", ",", "-o", str(excel), env=env
    )
    assert result.code == 0, result.stderr
    data = gzip.decompress(excel.read_bytes())
    assert data.startswith(b"\xef\xbb\xbfid,date,sender")
    assert len(parse_csv(data.decode("utf-8-sig"), ",")) - 1 == sum(
        1 for r in truth.values() if month_of(r) == months[-1]
    )

    incoming = run_cli("retrieve", "--month", months[-1], "--direction", "incoming", "--receiver", "x", env=env)
    assert incoming.code == 2
    assert "no receiver column" in incoming.stderr


def test_formula_neutralisation_is_opt_in(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    record = dict(next(iter(emulator.outgoing(SERVICE).values())))
    record.update(id=30_000_000_001, creationDatetime=now.isoformat(timespec="seconds"), message="=HYPERLINK(1)")
    emulator.add_outgoing(SERVICE, record)
    assert run_cli("archive", env=env).code == 0
    month = now.strftime("%Y-%m")
    plain = parse_csv(run_cli("retrieve", "--month", month, env=env).stdout)
    safe = parse_csv(
        run_cli("retrieve", "--month", month, "--excel", "--neutralize-formulas", env=env).stdout.lstrip("\ufeff")
    )
    assert [row[8] for row in plain if row[0] == "30000000001"] == ["=HYPERLINK(1)"]
    assert [row[8] for row in safe if row[0] == "30000000001"] == ["'=HYPERLINK(1)"]


def test_empty_month_bad_month_and_service_choice(emulator, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage)
    assert run_cli("archive", env=env).code == 0

    empty = run_cli("retrieve", "--month", "1999-01", env=env)
    assert empty.code == 0
    assert parse_csv(empty.stdout) == [list(OUTGOING_COLUMNS)]
    assert "header only" in empty.stderr

    for bad in ("2024-13", "March", "2024-3"):
        result = run_cli("retrieve", "--month", bad, env=env)
        assert result.code == 2, bad
        assert "YYYY-MM" in result.stderr and "Traceback" not in result.stderr

    # A second service in the same archive: the user must choose.
    other = dict(next(iter(emulator.outgoing(SERVICE).values())))
    emulator.add_outgoing("sms-other-2", other)
    assert run_cli("archive", env=env).code == 0
    ambiguous = run_cli("retrieve", "--month", "2026-01", env=env)
    assert ambiguous.code == 2
    assert SERVICE in ambiguous.stderr and "sms-other-2" in ambiguous.stderr
    chosen = run_cli("retrieve", "--month", other["creationDatetime"][:7], "--service", "sms-other-2", env=env)
    assert [row[0] for row in parse_csv(chosen.stdout)[1:]] == [str(other["id"])]


def test_months_lists_rows_parts_and_sizes(emulator, tmp_path: Path) -> None:
    import json

    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage)
    assert run_cli("archive", env=env).code == 0
    result = run_cli("months", "--direction", "outgoing", "--json", env=env)
    assert result.code == 0
    document = json.loads(result.stdout)
    truth = api_truth(emulator)["outgoing"]
    assert sum(item["rows"] for item in document) == len(truth)
    assert all(item["parts"] >= 1 and item["bytes"] > 0 for item in document)


def corrupt(store: Store, key: str, change) -> None:
    store.put(key, change(store.get(key)))


def test_verify_catches_each_kind_of_damage(emulator, storage_env: dict[str, str]) -> None:
    env = cli_env(emulator, storage_env)
    assert run_cli("archive", env=env).code == 0
    clean = run_cli("verify", "--json", env=env)
    assert clean.code == 0, clean.stdout

    store = store_from_env(storage_env)
    keys = [key for key in part_keys(store) if "/outgoing/" in key]
    flipped, truncated, deleted = keys[0], keys[1], keys[2]
    corrupt(store, flipped, lambda data: data[:40] + bytes([data[40] ^ 0x01]) + data[41:])
    corrupt(store, truncated, lambda data: data[: len(data) // 2])
    store.delete(deleted)
    foreign = parse_part_key(keys[3])
    assert foreign is not None
    foreign_key = keys[3].rsplit("/", 1)[0] + "/notes.txt"
    store.put(foreign_key, b"not a part")

    import json

    result = run_cli("verify", "--json", env=env)
    assert result.code == 1
    problems = {(p["kind"], p["key"]) for month in json.loads(result.stdout) for p in month["problems"]}
    assert ("corrupt", flipped) in problems
    assert ("corrupt", truncated) in problems or ("unreadable", truncated) in problems
    assert ("missing", deleted) in problems
    assert ("extra", foreign_key) in problems


def multi_part_archive(emulator, storage: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[object, Store]:
    """Archive with tiny chunks, then a second pass with changed statuses: days with several parts."""
    for key, value in cli_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="10").items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    env = cli_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="10")
    assert run_cli("archive", env=env).code == 0
    # Statuses that changed after archiving: a backfill archives the newer versions as new parts.
    # (Only records older than the cursor's lookback: recent final ones are known and not re-fetched.)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=6)
    changed = [
        sms_id
        for sms_id, raw in sorted(emulator.outgoing(SERVICE).items())[::7]
        if parse_instant(raw["creationDatetime"], PARIS) < old
    ]
    for sms_id in changed:
        emulator.update_outgoing(SERVICE, sms_id, ptt=26, deliveredAt=None)
    today = dt.date.today()
    assert run_cli("backfill", "--from", str(today - dt.timedelta(days=80)), "--to", str(today), env=env).code == 0
    store = store_from_env(storage)
    return settings, store


@pytest.mark.parametrize(
    ("method", "match", "after"),
    [
        ("put", "-c.csv", 0),  # crash before the merged part is written
        ("put", "_manifest.json", 0),  # merged part written, manifest not updated
        ("delete", "/day=", 0),  # manifest updated, old parts not deleted yet
        ("delete", "/day=", 2),  # some old parts deleted
        ("put", "_manifest.json", 1),  # old parts deleted, manifest not cleaned
    ],
)
def test_compaction_interrupted_at_each_step_leaves_a_correct_archive(
    emulator, s3_bucket: S3Target, monkeypatch: pytest.MonkeyPatch, method: str, match: str, after: int
) -> None:
    settings, store = multi_part_archive(emulator, s3_bucket.env, monkeypatch)
    truth = api_truth(emulator)
    assert archive_contents(store) == truth
    days_with_many = {k.rsplit("/", 1)[0] for k in part_keys(store)}
    assert len(part_keys(store)) > len(days_with_many), "no day has several parts: the test proves nothing"

    with pytest.raises(StorageError):
        run_compact(settings, FailingStore(store, method=method, match=match, after=after))  # type: ignore[arg-type]
    # A reader at this moment sees every record once, in its newest version.
    assert archive_contents(store) == truth
    # The next run finishes the work; the archive verifies clean and each settled day has one part.
    run_compact(settings, store)
    assert archive_contents(store) == truth
    result = run_cli("verify", env=cli_env(emulator, s3_bucket.env))
    assert result.code == 0, result.stdout + result.stderr
    cutoff = dt.date.today() - dt.timedelta(days=5)
    for direction in ("outgoing", "incoming"):
        days: dict[dt.date, int] = {}
        for stored in list_parts(store, SERVICE, direction):
            days[stored.part.day] = days.get(stored.part.day, 0) + 1
        assert all(count == 1 for day, count in days.items() if day < cutoff)


def test_compact_command_keeps_retrieval_equal(emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = local_storage_env(tmp_path / "archive")
    _, store = multi_part_archive(emulator, storage, monkeypatch)
    before = len(part_keys(store))
    result = run_cli("compact", env=cli_env(emulator, storage))
    assert result.code == 0, result.stderr
    assert len(part_keys(store)) < before
    assert archive_contents(store) == api_truth(emulator)
    assert run_cli("verify", env=cli_env(emulator, storage)).code == 0


def test_duckdb_reads_a_month_straight_from_the_layout(emulator, tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    storage = local_storage_env(tmp_path / "archive")
    assert run_cli("archive", env=cli_env(emulator, storage)).code == 0
    truth = api_truth(emulator)["outgoing"]
    month = sorted({month_of(row) for row in truth.values()})[-1]
    year, number = month.split("-")
    # The README's query, on a local copy of the layout.
    query = (
        f"SELECT count(DISTINCT id) FROM read_csv('{tmp_path}/archive/*/outgoing/year={year}/month={number}/*/*.csv', "
        "hive_partitioning=true, delim=';', header=true, quote='\"', escape='\"', all_varchar=true)"
    )
    [(count,)] = duckdb.sql(query).fetchall()
    assert count == sum(1 for row in truth.values() if month_of(row) == month)
