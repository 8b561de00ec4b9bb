"""One row per id, everywhere: whatever the export's ``date`` means, every reader gives each SMS once.

The export's ``date`` has no zone and its meaning is UNKNOWN (see the OVH API notes, "CSV history
export"): the emulator can write it in another zone, or write the send time. Each answer is
proven here: the archive still ends up equal to the API, each id once, through retrieve, verify,
compact and retention. A duplicate whose date moved is also built directly in the archive, to test
the readers apart from the export path.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ovh
import pytest
import requests

from archiver.config import ArchiveSettings, Settings
from archiver.emulator import EmulatorServer, Faults
from archiver.emulator.data import format_api_datetime
from archiver.manifest import record_parts
from archiver.records import OUTGOING_COLUMNS, parse_api_record, parse_instant
from archiver.writer import write_parts
from tests.integration.helpers import (
    CREDENTIALS,
    PARIS,
    SERVICE,
    api_truth,
    cli_env,
    local_storage_env,
    make_emulator,
    older_versions_dated_a_month_later,
    run_cli,
    store_from_env,
)

UTC_ARCHIVE = Settings.model_construct(archive=ArchiveSettings(timezone="UTC"))


def export_dates(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> dict[int, str]:
    """The export's ``date`` column, by id, fetched the way OVH's Control Panel does."""
    monkeypatch.setitem(ovh.client.ENDPOINTS, "rowid-emulator", emulator.url)
    client = ovh.Client(endpoint="rowid-emulator", **CREDENTIALS)
    document_id = client.get(f"/sms/{SERVICE}/document", wayType="outgoing")
    for _ in range(5):  # the first poll sees the document still empty
        document = client.get(f"/me/document/{document_id}")
        if document["size"]:
            break
    answer = requests.get(document["getUrl"], timeout=10)
    rows = csv.DictReader(io.StringIO(answer.content.decode("utf-8"), newline=""), delimiter=";")
    return {int(row["id"]): row["date"] for row in rows}


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({}, lambda raw: parse_instant(raw["creationDatetime"], PARIS).astimezone(PARIS)),
        ({"export_date_zone": "UTC"}, lambda raw: parse_instant(raw["creationDatetime"], PARIS).astimezone(dt.UTC)),
        (
            {"export_date_field": "sentAt"},
            lambda raw: parse_instant(raw["sentAt"] or raw["creationDatetime"], PARIS).astimezone(PARIS),
        ),
    ],
    ids=["paris-creation", "utc-creation", "paris-sent"],
)
def test_emulator_export_gives_each_answer_for_date(faults: dict[str, Any], expected: Any, monkeypatch) -> None:
    with make_emulator(outgoing=40, incoming=0, days=20, faults=Faults(**faults)) as emulator:
        dates = export_dates(emulator, monkeypatch)
        records = emulator.outgoing(SERVICE)
        assert dates.keys() == records.keys()
        for sms_id, raw in records.items():
            assert dates[sms_id] == expected(raw).strftime("%Y-%m-%d %H:%M:%S")
        if faults.get("export_date_field") == "sentAt":
            assert any(raw["sentAt"] != raw["creationDatetime"] for raw in records.values())


def test_emulator_command_takes_the_export_date_options() -> None:
    from archiver.emulator.cli import build_parser

    options = build_parser().parse_args(["--export-date-zone", "UTC", "--export-date-field", "sentAt"])
    assert (options.export_date_zone, options.export_date_field) == ("UTC", "sentAt")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--export-date-field", "deliveredAt"])


def retrieve_everything(
    env: dict[str, str], months: list[str], tmp_path: Path, name: str
) -> dict[int, tuple[str, ...]]:
    """Retrieve every month through the CLI; assert each id comes out once, in its own month."""
    rows: dict[int, tuple[str, ...]] = {}
    for month in months:
        output = tmp_path / f"{name}-{month}.csv"
        result = run_cli("retrieve", "--month", month, "--output", str(output), env=env)
        assert result.code == 0, result.stderr
        body = list(csv.reader(io.StringIO(output.read_text(encoding="utf-8"), newline=""), delimiter=";"))
        assert body[0] == list(OUTGOING_COLUMNS)
        for row in body[1:]:
            sms_id = int(row[0])
            assert sms_id not in rows, f"id {sms_id} comes out twice (again in {month})"
            assert dt.datetime.fromisoformat(row[1]).astimezone(dt.UTC).strftime("%Y-%m") == month
            rows[sms_id] = tuple(row)
    return rows


def archive_months(truth: dict[int, tuple[str, ...]], extra: int = 1) -> list[str]:
    """The months of the truth (UTC archive), plus the next ones, where a moved date may have gone."""
    months = sorted({dt.datetime.fromisoformat(row[1]).astimezone(dt.UTC).strftime("%Y-%m") for row in truth.values()})
    last = dt.date.fromisoformat(months[-1] + "-01")
    for _ in range(extra):
        last = (last + dt.timedelta(days=32)).replace(day=1)
        months.append(last.strftime("%Y-%m"))
    return months


def check_every_reader(emulator: EmulatorServer, env: dict[str, str], tmp_path: Path) -> None:
    truth = api_truth(emulator)["outgoing"]
    months = archive_months(truth)
    assert retrieve_everything(env, months, tmp_path, "before") == truth
    verified = run_cli("verify", "--json", env=env)
    assert verified.code == 0, verified.stdout + verified.stderr
    outgoing_sms = sum(month["rows"] for month in json.loads(verified.stdout) if month["direction"] == "outgoing")
    assert outgoing_sms == len(truth)
    compacted = run_cli("compact", env=env)
    assert compacted.code == 0, compacted.stderr
    assert retrieve_everything(env, months, tmp_path, "after") == truth
    assert run_cli("verify", env=env).code == 0


@pytest.mark.parametrize(
    "faults",
    [Faults(export_date_zone="UTC"), Faults(export_date_field="sentAt")],
    ids=["export-date-in-utc", "export-date-is-send-time"],
)
def test_export_whose_date_is_not_the_api_creation_time(faults: Faults, tmp_path: Path) -> None:
    with make_emulator(outgoing=500, incoming=10, days=50, faults=faults) as emulator:
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(emulator, storage, SMS_ARCHIVER_OVH__FETCH="export", SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="200")
        result = run_cli("archive", env=env)
        assert result.code == 0, result.stderr
        assert len(result.events("export_dates_untrusted")) == 1
        # Pending SMS settle at OVH; a backfill through the API brings their newer versions.
        changed = [sms_id for sms_id, raw in emulator.outgoing(SERVICE).items() if raw["ptt"] in (1, 2, 3)]
        assert changed, "no pending SMS: the test proves less"
        for sms_id in changed:
            emulator.update_outgoing(SERVICE, sms_id, ptt=5, deliveredAt=None)
        today = dt.date.today()
        backfill = run_cli(
            "backfill",
            "--from",
            str(today - dt.timedelta(days=60)),
            "--to",
            str(today + dt.timedelta(days=1)),
            env=dict(env, SMS_ARCHIVER_OVH__FETCH="batch"),
        )
        assert backfill.code == 0, backfill.stderr
        check_every_reader(emulator, env, tmp_path)


def test_export_time_in_the_autumn_fold_comes_from_the_api(tmp_path: Path) -> None:
    """02:30 happens twice in Paris on the last Sunday of October: the export cannot say which."""
    now = dt.datetime.now(dt.UTC)
    fold = dt.datetime(now.year if now.month > 10 else now.year - 1, 10, 31)
    fold -= dt.timedelta(days=(fold.weekday() + 1) % 7)  # the last Sunday of October
    first = dt.datetime(fold.year, 10, fold.day, 2, 30, tzinfo=PARIS)  # +02:00
    second = first.replace(fold=1)  # +01:00, an hour later
    assert first.utcoffset() != second.utcoffset()
    days = (now - first).days + 5
    with make_emulator(outgoing=400, incoming=5, days=days) as emulator:
        template = dict(next(iter(emulator.outgoing(SERVICE).values())))
        for sms_id, created in ((10, first), (11, second)):
            record = dict(template, id=sms_id, creationDatetime=format_api_datetime(created))
            record.update(sentAt=None, deliveredAt=None, ptt=5, messageID=None)
            emulator.add_outgoing(SERVICE, record)
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(emulator, storage, SMS_ARCHIVER_OVH__FETCH="export", SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="200")
        result = run_cli("archive", env=env)
        assert result.code == 0, result.stderr
        # The export was trusted (its dates agree with the API's); only the two fold rows came from the API.
        assert not result.events("export_dates_untrusted")
        [outgoing] = [event for event in result.events("cursor_advanced") if event["direction"] == "outgoing"]
        assert outgoing["rows_written"] == len(emulator.outgoing(SERVICE))
        truth = api_truth(emulator)["outgoing"]
        rows = retrieve_everything(env, archive_months(truth), tmp_path, "fold")
        assert rows[11][1] == truth[11][1] == second.isoformat()
        assert rows[11] == truth[11]
        assert rows[10] == truth[10]
        assert rows.keys() == truth.keys()
        assert sum(1 for row in rows.values() if row[5]) == len(rows) - 2  # operatorCode: from the export


@pytest.fixture
def archived(tmp_path: Path) -> Iterator[tuple[EmulatorServer, dict[str, str]]]:
    with make_emulator(outgoing=120, incoming=10, days=70) as emulator:
        yield emulator, local_storage_env(tmp_path / "archive")


def test_duplicate_moved_to_another_month_is_read_once_by_every_command(archived, tmp_path: Path) -> None:
    """An older version of some ids, dated a month later (as a bad export would), then the API's."""
    emulator, storage = archived
    store = store_from_env(storage)
    raws, moved = older_versions_dated_a_month_later(emulator)
    record_parts(store, SERVICE, "outgoing", write_parts(store, UTC_ARCHIVE.archive, SERVICE, "outgoing", moved))
    env = cli_env(emulator, storage, SMS_ARCHIVER_OVH__FETCH="batch")
    assert run_cli("archive", env=env).code == 0  # the API's versions, written last: the newest
    check_every_reader(emulator, env, tmp_path)

    # Retention finds the newest copy and finds it equal to the live record: nothing kept "forever".
    retention = run_cli(
        "retention",
        "--json",
        env=dict(env, SMS_ARCHIVER_RETENTION__ENABLED="true", SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS="1"),
    )
    assert retention.code == 0, retention.stderr
    decisions = {d["id"]: d for d in json.loads(retention.stdout)["decisions"] if d["direction"] == "outgoing"}
    for sms_id, raw in raws:
        if sms_id in decisions and parse_api_record("outgoing", raw, api_zone=PARIS).final:
            assert decisions[sms_id]["reason"] != "archived copy differs from the API", decisions[sms_id]
            assert decisions[sms_id]["action"] == "delete", decisions[sms_id]


@pytest.mark.parametrize(
    ("local", "unsure"),
    [
        ("2026-10-25 02:30:00", True),  # the autumn fold: two instants
        ("2026-03-29 02:30:00", True),  # the spring gap: no instant
        ("2026-10-25 03:30:00", False),
        ("2026-07-01 12:00:00", False),
    ],
)
def test_zone_less_export_times_that_paris_cannot_place(local: str, unsure: bool) -> None:
    from archiver.actions.archive.direction import _local_time_unsure

    assert _local_time_unsure({"date": local}, PARIS) is unsure
    assert _local_time_unsure({"date": "2026-07-01 12:00:00", "deliveredAt": local}, PARIS) is unsure
    assert _local_time_unsure({"date": local}, dt.UTC) is False
