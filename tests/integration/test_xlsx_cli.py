"""``retrieve --format xlsx`` through the CLI: the same records as the CSV, and what LibreOffice shows of them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
import subprocess
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest

from archiver.records import OUTGOING_COLUMNS
from tests.integration.helpers import cli_env, local_storage_env, make_emulator, run_cli


@pytest.fixture
def archived(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """An archive of the emulator's sample data (nasty messages included), and its fullest month."""
    with make_emulator(outgoing=100, incoming=10, days=20) as emulator:
        env = cli_env(emulator, local_storage_env(tmp_path / "archive"), SMS_ARCHIVER_ARCHIVE__TIMEZONE="Europe/Paris")
        assert run_cli("archive", env=env).code == 0
    months = run_cli("months", "--json", "--direction", "outgoing", env=env)
    yield env, max(json.loads(months.stdout), key=lambda item: item["rows"])["month"]


def retrieve_both(env: dict[str, str], month: str, tmp_path: Path) -> tuple[list[list[str]], Path]:
    csv_result = run_cli("retrieve", "--month", month, env=env)
    assert csv_result.code == 0, csv_result.stderr
    rows = list(csv.reader(io.StringIO(csv_result.stdout, newline=""), delimiter=";"))
    workbook = tmp_path / f"{month}.xlsx"
    result = run_cli("retrieve", "--month", month, "--format", "xlsx", "-o", str(workbook), env=env)
    assert result.code == 0, result.stderr
    return rows, workbook


def test_the_workbook_holds_the_csv_rows_typed(archived, tmp_path: Path) -> None:
    env, month = archived
    rows, path = retrieve_both(env, month, tmp_path)
    sheet = openpyxl.load_workbook(path).active
    cells = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert cells[0][1] == "date (Europe/Paris)"
    assert len(cells) == len(rows) > 1
    column = {name: index for index, name in enumerate(OUTGOING_COLUMNS)}
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    for expected, got in zip(rows[1:], cells[1:], strict=True):
        for name in ("id", "sender", "receiver", "message", "tag", "batchID", "messageID"):
            assert (got[column[name]] or "") == expected[column[name]], name
        instant = dt.datetime.fromisoformat(expected[column["date"]]).astimezone(paris).replace(tzinfo=None)
        assert got[column["date"]] == instant
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_csv_only_options_are_refused_with_xlsx(archived) -> None:
    env, month = archived
    result = run_cli("retrieve", "--month", month, "--format", "xlsx", "--gzip", "-o", "/dev/null", env=env)
    assert result.code == 2
    assert "--gzip" in result.stderr


@pytest.mark.skipif(shutil.which("soffice") is None or shutil.which("pdftotext") is None, reason="no LibreOffice")
def test_libreoffice_shows_numbers_with_plus_no_formula_errors_and_dates(archived, tmp_path: Path) -> None:
    env, month = archived
    rows, path = retrieve_both(env, month, tmp_path)
    profile = tmp_path / "lo-profile"
    converted = subprocess.run(
        [
            "soffice",
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    pdf = path.with_suffix(".pdf")
    assert converted.returncode == 0 and pdf.exists(), converted.stderr
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    receivers = {row[OUTGOING_COLUMNS.index("receiver")] for row in rows[1:]}
    assert receivers and all(number.startswith("+") for number in receivers)
    missing = [number for number in receivers if number not in text]
    assert not missing, f"shown without their '+': {missing[:5]}"
    for error in ("Err:5", "#NAME?", "#VALUE!", "#REF!", "###"):
        assert error not in text, error
    messages = [row[OUTGOING_COLUMNS.index("message")] for row in rows[1:]]
    formula_like = [message for message in messages if message.startswith(("=", "+", "-", "@"))]
    assert {message[0] for message in formula_like} >= {"=", "-"}, "the sample lacks formula-like messages"
    for message in formula_like:
        assert message.split()[0] in text, message  # shown as typed, not computed
    assert re.search(r"\b20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\b", text), "no date shown as a date-time"
    assert not re.search(r"\d\d:\d\d:\d\d[+-]\d\d:\d\d", text), "a date shown as its ISO text"
