"""Start-up: a command imports what it needs, not what every other command needs (issue 12, ``retrieve``).

Each case runs the command line in a fresh interpreter and looks at ``sys.modules`` once it is done:
which modules were imported, never how long that took (timings are for bench/). Reading a ``file://``
archive must not import the S3 client, the OVH client, the web server or the scheduler; parsing the
command line, or showing a command's help, must not import any command at all.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from archiver.config import ArchiveSettings
from archiver.csvfile import encode_rows
from archiver.manifest import record_parts
from archiver.records import COLUMNS, Record, format_instant
from archiver.store import LocalStore
from archiver.writer import put_part
from tests.conftest import S3Target

SERVICE = "sms-startup-1"
DAY = dt.date(2025, 3, 14)

# What only some commands need: the S3 client (s3:// stores), the OVH client (archive, retention, erase at
# OVH, check-config), the history browser's server (web), the daemon's scheduler and metrics (run).
FOR_OTHER_COMMANDS = (
    "boto3",
    "botocore",
    "s3transfer",
    "ovh",
    "requests",
    "starlette",
    "uvicorn",
    "jinja2",
    "bcrypt",
    "apscheduler",
    "prometheus_client",
    "xlsxwriter",
)
# What no command runs before its options are parsed: the handlers and what they import.
FOR_RUNNING_A_COMMAND = (
    "archiver.cli.commands",
    "archiver.actions",
    "archiver.config",
    "pydantic",
    "structlog",
    "rich",
)

# Runs ``main`` with the arguments after the output path; writes the exit status and the modules imported there.
PROBE = """
import json, sys
from archiver.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as leaving:
    code = leaving.code
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def run_probe(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``sms-archiver argv`` in a new interpreter; return its exit status and imported modules."""
    report = tmp_path / "probe.json"
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *argv],
        env=env if env is not None else _environment(tmp_path / "nowhere"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.exists(), completed.stderr
    result: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    result["stderr"] = completed.stderr
    return result


def imported(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    """The modules of ``packages`` (each a package or a module) found among ``modules``."""
    return [name for name in modules if any(name == package or name.startswith(f"{package}.") for package in packages)]


def _environment(archive: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMS_ARCHIVER_")}
    env.update(
        {
            "SMS_ARCHIVER_STORAGE__URL": archive.as_uri(),
            "SMS_ARCHIVER_ARCHIVE__TIMEZONE": "UTC",
            "SMS_ARCHIVER_SECRETS_DIR": "/nonexistent-sms-archiver-secrets",
            "SMS_ARCHIVER_LOG__FORMAT": "json",
        }
    )
    return env


def _archive(directory: Path) -> Path:
    """A tiny local archive: one part of three incoming SMS, recorded in its month's manifest."""
    store = LocalStore(directory)
    instants = [dt.datetime.combine(DAY, dt.time(hour), tzinfo=dt.UTC) for hour in (9, 10, 11)]
    records = [
        Record(
            "incoming",
            1000 + index,
            instant,
            (str(1000 + index), format_instant(instant), "+33600000001", "", "hi", "1.0"),
            True,
        )
        for index, instant in enumerate(instants)
    ]
    encoded = encode_rows(COLUMNS["incoming"], (record.fields for record in records))
    settings = ArchiveSettings(timezone="UTC", settle_seconds=0, lookback_hours=0)
    entry = put_part(
        store, settings, SERVICE, "incoming", DAY, encoded, [r.id for r in records], (records[0], records[-1])
    )
    record_parts(store, SERVICE, "incoming", [entry])
    return directory


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["retrieve", "--help"], ["months", "--help"], ["hold", "add", "--help"], ["retrieve"], ["nosuch"]],
    ids=" ".join,
)
def test_help_and_usage_errors_import_no_command(tmp_path: Path, argv: list[str]) -> None:
    probe = run_probe(tmp_path, *argv)
    assert probe["code"] in (0, 2), probe["stderr"]
    assert imported(probe["modules"], FOR_RUNNING_A_COMMAND + FOR_OTHER_COMMANDS) == []


def test_building_and_parsing_the_command_line_imports_no_command() -> None:
    code = (
        "import sys\n"
        "from archiver.cli.parser import build_parser\n"
        "args = build_parser().parse_args(['retrieve', '--month', '2025-03', '--delimiter', 'tab'])\n"
        "assert args.delimiter == '\\t'\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert imported(completed.stdout.split(), FOR_RUNNING_A_COMMAND + FOR_OTHER_COMMANDS) == []


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["retrieve", "--month", "2025-03", "--direction", "incoming", "-o", "{out}"], id="retrieve"),
        pytest.param(["months"], id="months"),
        pytest.param(["verify", "--month", "2025-03"], id="verify"),
        pytest.param(["status"], id="status"),
        pytest.param(["state", "show"], id="state show"),
        pytest.param(["hold", "list"], id="hold list"),
        pytest.param(["erase", "--number", "+33612345678"], id="erase, a dry run"),
    ],
)
def test_reading_a_local_archive_imports_neither_s3_nor_ovh_nor_the_web(tmp_path: Path, argv: list[str]) -> None:
    archive = _archive(tmp_path / "archive")
    out = tmp_path / "month.csv"
    probe = run_probe(tmp_path, *(item.format(out=out) for item in argv), env=_environment(archive))
    assert probe["code"] == 0, probe["stderr"]
    assert imported(probe["modules"], FOR_OTHER_COMMANDS) == []
    if argv[0] == "retrieve":  # the command did run: what it wrote is there
        assert out.read_text(encoding="utf-8").count("\n") == 4


def test_the_probe_sees_what_a_command_imports(tmp_path: Path, s3_bucket: S3Target) -> None:
    """The checks above can fail: the same command on an s3:// archive does bring boto3 in."""
    probe = run_probe(tmp_path, "months", env={**_environment(tmp_path), **s3_bucket.env})
    assert probe["code"] in (0, 1), probe["stderr"]
    assert "boto3" in probe["modules"]
