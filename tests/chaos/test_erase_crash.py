"""An erasure cut short (kill -9, or a storage failure at any step) is finished by the next ``erase --yes``.

After the second run: no row with the number in any object, every other SMS exactly as before (each
id once), ``verify`` passes. The kill lands after a chosen number of rewritten parts has appeared
(a condition waited on, not a sleep), so it falls in the middle of the run, not before or after it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.actions.erase import run_erase
from archiver.config import load_settings
from archiver.errors import StorageError
from tests.integration.helpers import FailingStore, local_storage_env, run_cli, store_from_env
from tests.integration.test_erase_cli import (
    KEY,
    NUMBER,
    Archive,
    build_archive,
    contents,
    raw_objects,
    traces,
    without,
)


@pytest.fixture
def built(tmp_path: Path) -> Iterator[Archive]:
    yield from build_archive(local_storage_env(tmp_path / "archive"))


def rewritten_parts(directory: Path) -> set[Path]:
    return set(directory.rglob("*-c.csv"))


def erase_env(archive: Archive, directory: Path) -> dict[str, str]:
    return dict(archive.env, SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY=KEY, **local_storage_env(directory))


def check_finished(archive: Archive, directory: Path, expected: object) -> None:
    store = store_from_env(local_storage_env(directory))
    assert traces(raw_objects(store)) == []
    assert contents(Archive(archive.emulator, {}, {}, store, archive.matching)) == expected
    verify = run_cli("verify", env=erase_env(archive, directory))
    assert verify.code == 0, verify.stdout + verify.stderr


def test_kill_erase_in_the_middle_then_erase_again(built: Archive, tmp_path: Path, tally: Counter[str]) -> None:
    archive = built
    expected = without(contents(archive), archive.matching)
    original = tmp_path / "archive"
    interrupted = 0
    for trial, kill_after in enumerate((1, 3, 6)):  # rewritten parts seen before the kill
        directory = tmp_path / f"trial-{trial}"
        shutil.copytree(original, directory)
        env = erase_env(archive, directory)
        process = subprocess.Popen(  # the kill is the fault; every wait below is bounded
            [sys.executable, "-m", "archiver", "erase", "--number", NUMBER, "--yes"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        tally["trials"] += 1
        deadline = time.monotonic() + 60
        while process.poll() is None and len(rewritten_parts(directory)) < kill_after:
            assert time.monotonic() < deadline, "the erasure neither rewrote a part nor ended"
            time.sleep(0.001)  # polling interval of the condition above, not a synchronisation
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            tally["faults injected"] += 1
            tally["fault:kill -9"] += 1
        process.wait(timeout=10)
        store = store_from_env(local_storage_env(directory))
        interrupted += bool(traces(raw_objects(store)))

        again = run_cli("erase", "--number", NUMBER, "--yes", "--json", env=env)
        assert again.code == 0, again.stderr
        check_finished(archive, directory, expected)
    assert interrupted, "no kill landed before the end of the erasure: the test proved nothing"


@pytest.mark.parametrize(
    ("method", "match", "after"),
    [
        ("put", "-c.csv", 0),  # the first rewritten part
        ("put", "-c.csv", 2),
        ("put", "_manifest.json", 1),  # between the new part's manifest entry and the old parts' deletion
        ("delete", "/day=", 0),  # the first old part deleted
        ("delete", "/day=", 3),
        ("put", "_journal/audit/", 0),  # the audit event, after every rewrite
    ],
)
def test_a_storage_failure_at_any_step_is_finished_by_the_next_run(
    built: Archive, tmp_path: Path, method: str, match: str, after: int
) -> None:
    archive = built
    expected = without(contents(archive), archive.matching)
    directory = tmp_path / "archive"
    env = erase_env(archive, directory)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            if name.startswith("SMS_ARCHIVER_"):
                patch.setenv(name, value)
        settings = load_settings(None)
        store = store_from_env(local_storage_env(directory))
        failing = FailingStore(store, method=method, match=match, after=after)
        with pytest.raises(StorageError, match="injected crash"):
            run_erase(settings, failing, NUMBER, apply=True)  # type: ignore[arg-type]
        report = run_erase(settings, store, NUMBER, apply=True)
    assert report.complete
    check_finished(archive, directory, expected)
