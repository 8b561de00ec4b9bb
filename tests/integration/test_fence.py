"""Two writers at once on a store that accepts conditional headers and ignores them.

The store is moto's S3 server behind a loopback proxy that drops ``If-None-Match``/``If-Match``
(tests/s3proxy.py): every write "wins" there, so the lease must be emulated, and said so.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from archiver.store.lease import read_lease
from archiver.store.state import load_state
from tests.integration.helpers import (
    SERVICE,
    Result,
    api_truth,
    archive_contents,
    cli_env,
    make_emulator,
    run_cli,
    store_from_env,
)

if TYPE_CHECKING:
    from tests.conftest import S3Target
    from tests.s3proxy import IgnoringConditionsProxy

LEASE_HELD = 75


@pytest.fixture
def emulator() -> Iterator[Any]:
    with make_emulator(outgoing=400, incoming=60, days=40) as server:
        yield server


def run_two_at_once(*args: str, env: dict[str, str]) -> list[Result]:
    """Start two CLI processes together; wait for both (bounded)."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "archiver", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        results.append(Result(process.returncode, stdout, stderr))
    return results


def test_two_archives_at_once_on_a_store_ignoring_conditions(
    emulator: Any, s3_ignoring_conditions: S3Target, ignoring_proxy: IgnoringConditionsProxy
) -> None:
    # Small chunks: many checkpoints (state writes under the lease) while the other process runs.
    env = cli_env(emulator, s3_ignoring_conditions.env, SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="40")
    results = run_two_at_once("archive", env=env)

    for result in results:
        assert "Traceback" not in result.stderr, result.stderr
        assert result.code in (0, LEASE_HELD), result.stderr
        warnings = result.events("conditional_writes_emulated")
        # Said once by every process that wrote; one refused at its first look at a live lease
        # wrote nothing, so it may have had nothing to find out.
        assert len(warnings) == 1 if result.code == 0 else len(warnings) <= 1, result.stderr
        assert all("ignores" in warning["reason"] for warning in warnings)
    assert 0 in [result.code for result in results]
    assert ignoring_proxy.stripped > 0  # the archiver did send the headers: the store dropped them

    store = store_from_env(s3_ignoring_conditions.env)
    assert archive_contents(store) == api_truth(emulator)
    assert read_lease(store, SERVICE) is None  # released
    assert load_state(store, SERVICE, "outgoing").fence > 0  # written under the lease's fencing token
    verified = run_cli("verify", env=env)
    assert verified.code == 0, verified.stdout + verified.stderr


def test_conditional_writes_on_refuses_a_store_ignoring_them(emulator: Any, s3_ignoring_conditions: S3Target) -> None:
    env = cli_env(emulator, s3_ignoring_conditions.env, SMS_ARCHIVER_STORAGE__CONDITIONAL_WRITES="on")
    result = run_cli("archive", env=env)
    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "SMS_ARCHIVER_STORAGE__CONDITIONAL_WRITES" in result.stderr
    store = store_from_env(s3_ignoring_conditions.env)
    assert list(store.list("")) == []  # refused before writing anything


def test_check_config_says_whether_the_store_enforces_conditional_writes(
    emulator: Any, s3_ignoring_conditions: S3Target, s3_bucket: S3Target
) -> None:
    ignoring = run_cli("check-config", env=cli_env(emulator, s3_ignoring_conditions.env))
    assert "conditional writes: emulated" in ignoring.stdout, ignoring.stdout
    enforcing = run_cli("check-config", env=cli_env(emulator, s3_bucket.env))
    assert enforcing.code == 0, enforcing.stdout + enforcing.stderr
    assert "conditional writes: enforced" in enforcing.stdout, enforcing.stdout
