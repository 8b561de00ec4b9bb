"""What a newcomer trips over (issue 14), through the real CLI: invisible backfills, pipes, errors, wrong targets."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from archiver.reader import archived_services
from archiver.store import LocalStore
from tests.integration.helpers import (
    SERVICE,
    api_truth,
    cli_env,
    local_storage_env,
    make_emulator,
    run_cli,
)


@pytest.fixture
def emulator() -> Iterator:
    with make_emulator(outgoing=150, incoming=30, days=40) as server:
        yield server


def backfill_everything(env: Mapping[str, str]) -> None:
    today = dt.date.today()
    result = run_cli("backfill", "--from", str(today - dt.timedelta(days=45)), "--to", str(today), env=env)
    assert result.code == 0, result.stderr


# -- services come from the archive's folders -----------------------------------------------------


def test_an_archive_filled_by_backfill_alone_is_seen_by_every_reader(emulator, storage_env: dict[str, str]) -> None:
    env = cli_env(emulator, storage_env)
    backfill_everything(env)
    truth = api_truth(emulator)["outgoing"]

    months = run_cli("months", "--json", env=env)
    assert months.code == 0, months.stderr
    listed = json.loads(months.stdout)
    assert {item["service"] for item in listed} == {SERVICE}
    assert sum(item["rows"] for item in listed if item["direction"] == "outgoing") == len(truth)

    status = run_cli("status", "--json", env=env)
    assert status.code == 0, status.stderr
    assert {entry["service"] for entry in json.loads(status.stdout)["services"]} == {SERVICE}

    verify = run_cli("verify", "--json", env=env)
    assert verify.code == 0, verify.stderr
    assert "nothing archived" not in verify.stderr
    checks = json.loads(verify.stdout)
    assert checks and sum(check["rows"] for check in checks if check["direction"] == "outgoing") == len(truth)

    month = listed[0]["month"]
    retrieved = run_cli("retrieve", "--month", month, env=env)
    assert retrieved.code == 0, retrieved.stderr
    rows = list(csv.reader(io.StringIO(retrieved.stdout, newline=""), delimiter=";"))[1:]
    expected = next(item["rows"] for item in listed if item["month"] == month and item["direction"] == "outgoing")
    assert len(rows) == expected > 0


def test_underscore_folders_are_not_services(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive")
    store.put("_state/_daemons/host.json", b"{}")
    store.put("_state/from-state/outgoing.json", b"{}")
    store.put("_journal/deletions/year=2026/month=01/run-1-done.csv", b"x")
    store.put("_other/outgoing/year=2026/month=01/day=01/1-2-0123456789abcdef.csv", b"x")
    store.put("from-parts/incoming/year=2026/month=01/day=01/1-2-0123456789abcdef.csv", b"x")
    store.put("from-manifest/outgoing/year=2026/month=02/_manifest.json", b"{}")
    store.put("not-a-service/readme.txt", b"x")
    store.put("README.txt", b"x")
    assert archived_services(store) == ["from-manifest", "from-parts", "from-state"]


# -- pipes ----------------------------------------------------------------------------------------


def run_into_closed_pipe(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI with its standard output a pipe whose reader is already gone (like `| head -0`)."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [sys.executable, "-m", "archiver", *args],
            env=dict(env),
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writer)


@pytest.mark.parametrize(
    "command",
    [("retrieve", "--month", "MONTH"), ("months", "--json"), ("months",), ("verify",), ("status",)],
)
def test_a_closed_pipe_ends_quietly(emulator, tmp_path: Path, command: tuple[str, ...]) -> None:
    env = cli_env(emulator, local_storage_env(tmp_path / "archive"))
    assert run_cli("archive", env=env).code == 0
    month = json.loads(run_cli("months", "--json", env=env).stdout)[-1]["month"]
    result = run_into_closed_pipe(*(month if part == "MONTH" else part for part in command), env=env)
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr
    assert result.returncode == 141, result.stderr  # 128 + SIGPIPE, as the shell reports for `yes | head -1`


def test_head_gets_the_first_lines_of_a_retrieved_month(tmp_path: Path) -> None:
    with make_emulator(outgoing=1500, incoming=5, days=20) as emulator:
        env = cli_env(emulator, local_storage_env(tmp_path / "archive"))
        assert run_cli("archive", env=env).code == 0
        month = json.loads(run_cli("months", "--json", env=env).stdout)[-1]["month"]
        shell = subprocess.run(
            [
                "bash",
                "-c",
                f'set -o pipefail; "{sys.executable}" -m archiver retrieve --month {month} | head -2; '
                'echo "status=${PIPESTATUS[0]}" >&2',
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert len(shell.stdout.splitlines()) == 2
    assert shell.stdout.startswith("id;")
    assert "Traceback" not in shell.stderr
    assert "status=141" in shell.stderr or "status=0" in shell.stderr, shell.stderr


# -- errors are printed once ----------------------------------------------------------------------


def test_an_error_is_printed_once(emulator, tmp_path: Path) -> None:
    env = cli_env(emulator, local_storage_env(tmp_path / "archive"))
    assert run_cli("archive", env=env).code == 0
    result = run_cli("retrieve", "--month", "2020-13", env=env)
    assert result.code == 2
    assert result.stderr.count("2020-13") == 1, result.stderr
    assert not result.events("command_failed")


# -- wrong targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("months",), ("status",), ("verify",), ("retrieve", "--month", "2026-01")])
def test_a_missing_local_archive_directory_is_named(emulator, tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    env = cli_env(emulator, local_storage_env(missing))
    result = run_cli(*command, env=env)
    assert result.code == 2, result.stderr
    assert "SMS_ARCHIVER_STORAGE__URL" in result.stderr
    assert str(missing) in result.stderr
    assert not missing.exists()  # reading never creates it


@pytest.mark.parametrize("command", [("months",), ("verify",), ("retrieve", "--month", "2026-01")], ids=str)
def test_an_unknown_service_is_named_with_the_known_ones(
    emulator, storage_env: dict[str, str], command: tuple[str, ...]
) -> None:
    env = cli_env(emulator, storage_env)
    assert run_cli("archive", env=env).code == 0
    result = run_cli(*command, "--service", "nosuch", env=env)
    assert result.code == 2, result.stderr
    assert "nosuch" in result.stderr and SERVICE in result.stderr


def test_an_empty_archive_says_so(emulator, tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    directory.mkdir()
    env = cli_env(emulator, local_storage_env(directory))
    result = run_cli("months", env=env)
    assert result.code == 0
    assert "nothing archived" in result.stderr


# -- smaller things --------------------------------------------------------------------------------


def test_version_comes_from_the_package_metadata(emulator, tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run_cli("--version", env=cli_env(emulator, local_storage_env(tmp_path)))
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == f"sms-archiver {version('sms-archiver')}"


def test_emulator_help_lists_the_emulators_options(emulator, tmp_path: Path) -> None:
    result = run_cli("emulator", "--help", env=cli_env(emulator, local_storage_env(tmp_path)))
    assert result.code == 0, result.stderr
    for option in ("--port", "--outgoing", "--latency-ms"):
        assert option in result.stdout


def test_a_typo_in_the_toml_file_is_named_by_file_and_key(emulator, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[storage]\nurll = "file:///tmp/x"\n[archive]\ngzip = "maybe"\n', encoding="utf-8")
    result = run_cli("--config", str(config), "months", env=cli_env(emulator, local_storage_env(tmp_path)))
    assert result.code == 2
    assert f"{config}: [storage] urll: unknown setting" in result.stderr
    assert f"{config}: [archive] gzip:" in result.stderr
    assert "SMS_ARCHIVER_STORAGE__URLL" not in result.stderr
    assert "SMS_ARCHIVER_ARCHIVE__GZIP" not in result.stderr


def test_a_setting_from_the_environment_is_still_named_by_its_variable(emulator, tmp_path: Path) -> None:
    env = cli_env(emulator, local_storage_env(tmp_path), SMS_ARCHIVER_ARCHIVE__GZIP="maybe")
    result = run_cli("months", env=env)
    assert result.code == 2
    assert "SMS_ARCHIVER_ARCHIVE__GZIP" in result.stderr


def test_demo_names_its_storage_url_flag(emulator, tmp_path: Path) -> None:
    result = run_cli("demo", "--storage-url", "ftp://x", env=cli_env(emulator, local_storage_env(tmp_path)))
    assert result.code == 2
    assert "--storage-url" in result.stderr
    assert "SMS_ARCHIVER_STORAGE__URL" not in result.stderr


def test_demo_twice_and_its_closing_hints_work_when_pasted(emulator, tmp_path: Path) -> None:
    env = cli_env(emulator, {})
    env.pop("SMS_ARCHIVER_STORAGE__URL", None)
    env["PATH"] = "/usr/bin:/bin"  # no virtual environment on the PATH, as in a fresh shell
    storage = (tmp_path / "demo").as_uri()
    first = run_cli("demo", "--storage-url", storage, "--outgoing", "40", "--incoming", "5", env=env)
    assert first.code == 0, first.stderr
    assert "first cycle" in first.stdout
    second = run_cli("demo", "--storage-url", storage, "--outgoing", "40", "--incoming", "5", env=env)
    assert second.code == 0, second.stderr
    assert "first cycle" not in second.stdout
    hints = [line.strip() for line in second.stdout.splitlines() if " retrieve " in line]
    assert len(hints) == 2 and "--format xlsx" in hints[1]
    work = tmp_path / "paste"
    work.mkdir()
    for hint in hints:
        pasted = subprocess.run(
            ["bash", "-c", hint], cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert pasted.returncode == 0, f"{hint}\n{pasted.stderr}"
    assert sorted(path.suffix for path in work.iterdir()) == [".csv", ".xlsx"]


@pytest.mark.parametrize("command", [("months",), ("status",), ("verify",), ("state", "show")])
def test_piped_tables_follow_json_alone_and_are_not_cut(emulator, tmp_path: Path, command: tuple[str, ...]) -> None:
    env = cli_env(emulator, local_storage_env(tmp_path / "archive"))
    assert run_cli("archive", env=env).code == 0
    table = run_cli(*command, env=env)
    assert table.code == 0, table.stderr
    with pytest.raises(ValueError):
        json.loads(table.stdout)
    lines = [line for line in table.stdout.splitlines() if SERVICE in line]
    assert lines, table.stdout  # the service's whole name, not "sms-t…"
    assert any("outgoing" in line for line in lines) and any("incoming" in line for line in lines)
    assert "…" not in table.stdout
    as_json = run_cli(*command, "--json", env=env)
    assert as_json.code == 0
    assert json.loads(as_json.stdout)


def test_compact_logs_no_line_per_day(tmp_path: Path) -> None:
    with make_emulator(outgoing=200, incoming=20, days=30) as emulator:
        env = cli_env(emulator, local_storage_env(tmp_path / "archive"))
        assert run_cli("archive", env=env).code == 0
        # Statuses changed after archiving: a backfill writes the newer versions as second parts of old days.
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=6)
        for sms_id, raw in sorted(emulator.outgoing(SERVICE).items())[::5]:
            if dt.datetime.fromisoformat(raw["creationDatetime"]).astimezone(dt.UTC) < old:
                emulator.update_outgoing(SERVICE, sms_id, ptt=26, deliveredAt=None)
        today = dt.date.today()
        backfill = run_cli("backfill", "--from", str(today - dt.timedelta(days=31)), "--to", str(today), env=env)
        assert backfill.code == 0
    result = run_cli("compact", env=env)
    assert result.code == 0, result.stderr
    done = result.events("compaction_done")
    assert done and done[0]["days_compacted"] > 0, result.stderr
    assert not result.events("day_compacted")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_endpoint_says_connection_refused_and_the_host(tmp_path: Path) -> None:
    port = closed_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMS_ARCHIVER_")}
    env |= {
        "SMS_ARCHIVER_OVH__ENDPOINT": f"http://127.0.0.1:{port}/1.0",
        "SMS_ARCHIVER_OVH__APPLICATION_KEY": "k",
        "SMS_ARCHIVER_OVH__APPLICATION_SECRET": "s",
        "SMS_ARCHIVER_OVH__CONSUMER_KEY": "c",
        "SMS_ARCHIVER_SECRETS_DIR": "/nonexistent-sms-archiver-secrets",
        "SMS_ARCHIVER_LOG__FORMAT": "json",
        **local_storage_env(tmp_path / "archive"),
    }
    result = run_cli("archive", env=env)
    assert result.code == 1
    final = result.stderr.strip().splitlines()[-1]
    assert "connection refused" in final and f"127.0.0.1:{port}" in final, final
    assert len(result.events("api_retry")) <= 2  # a refused connection is retried a little, not 6 times


def test_a_service_name_that_is_no_name_is_an_error_not_a_traceback(emulator, tmp_path: Path) -> None:
    env = cli_env(emulator, local_storage_env(tmp_path / "archive"))
    assert run_cli("archive", env=env).code == 0
    for name in ("../x", ".hidden", "_state"):
        result = run_cli("months", "--service", name, env=env)
        assert result.code == 2, result.stderr
        assert "Traceback" not in result.stderr and SERVICE in result.stderr
