"""Attack the whole system at once: kill -9, API storms, storage outages, two writers.

Every test ends the same way: after the faults, normal runs finish the work, and then the archive
(as every reader sees it: one row per id, newest version) must equal what the API holds (or held,
for records retention deleted). The tally counts what was lost, doubled or wrongly deleted: 0.
"""

from __future__ import annotations

import contextlib
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.actions.archive import run_archive
from archiver.config import load_settings
from archiver.naming import DIRECTIONS
from archiver.reader import archived_months, iter_records
from archiver.records import parse_instant
from archiver.source import OvhSource
from archiver.store import Store
from archiver.store.state import load_state
from tests.chaos.conftest import TRIALS
from tests.conftest import S3Target
from tests.integration.helpers import (
    PARIS,
    SERVICE,
    Result,
    api_truth,
    cli_env,
    local_storage_env,
    make_emulator,
    run_cli,
    store_from_env,
)

Rows = dict[str, dict[int, tuple[str, ...]]]


def read_archive(store: Store) -> tuple[Rows, int]:
    """What readers see, and how many ids a reader got twice (must be 0)."""
    contents: Rows = {}
    duplicates = 0
    for direction in DIRECTIONS:
        rows: dict[int, tuple[str, ...]] = {}
        for year, month in archived_months(store, SERVICE, direction):
            for record in iter_records(store, SERVICE, direction, year, month):
                duplicates += record.id in rows
                rows[record.id] = record.fields
        contents[direction] = rows
    return contents, duplicates


def settle_and_compare(store: Store, truth: Rows, tally: Counter[str]) -> None:
    contents, duplicates = read_archive(store)
    lost = sum(len(truth[d].keys() - contents[d].keys()) for d in DIRECTIONS)
    wrong = sum(1 for d in DIRECTIONS for i in truth[d].keys() & contents[d].keys() if truth[d][i] != contents[d][i])
    tally["records lost"] += lost
    tally["duplicates"] += duplicates
    assert (lost, duplicates, wrong) == (0, 0, 0)
    assert contents == truth


def run_until_done(*args: str, env: dict[str, str], attempts: int = 5) -> Result:
    """Run a command until it succeeds (a stale lease of a killed run may need one more go)."""
    for _ in range(attempts):
        result = run_cli(*args, env=env)
        if result.code == 0:
            return result
    raise AssertionError(f"{args} kept failing: {result.stderr[-2000:]}")


def kill_at_random(
    args: list[str], env: dict[str, str], rng: random.Random, tally: Counter[str], max_delay: float
) -> None:
    """Start the CLI and SIGKILL it at a random moment (unless it finished first)."""
    process = subprocess.Popen(  # the timing of the kill is the fault; the wait is bounded
        [sys.executable, "-m", "archiver", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    tally["trials"] += 1
    try:
        process.wait(timeout=rng.uniform(0.3, max_delay))
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        tally["faults injected"] += 1
        tally["fault:kill -9"] += 1


@pytest.fixture
def emulator() -> Iterator:
    with make_emulator(outgoing=240, incoming=40, days=60) as server:
        server.faults.latency_seconds = 0.005  # widen the windows a kill can land in
        yield server


def test_kill_archive_at_random_moments(emulator, tmp_path: Path, tally: Counter[str]) -> None:
    rng = random.Random(20261125)
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="25", SMS_ARCHIVER_OVH__FETCH="per-id")
    template = dict(next(iter(emulator.outgoing(SERVICE).values())))
    for trial in range(TRIALS * 2):
        kill_at_random(["archive"], env, rng, tally, max_delay=3.0)
        # The world moves on between runs: new SMS, late delivery reports.
        created = time.time() - rng.uniform(1800, 7200)
        emulator.add_outgoing(
            SERVICE,
            dict(
                template,
                id=50_000_000_000 + trial,
                creationDatetime=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(created)),
            ),
        )
        # (statuses are re-checked for the lookback window, 72 h: late reports inside it)
        recent = time.time() - 60 * 3600
        for sms_id, raw in emulator.outgoing(SERVICE).items():
            if raw["ptt"] in (1, 2, 3) and parse_instant(raw["creationDatetime"], PARIS).timestamp() > recent:
                emulator.update_outgoing(SERVICE, sms_id, ptt=4, deliveredAt=raw["creationDatetime"])
    run_until_done("archive", env=env)
    settle_and_compare(store_from_env(storage), api_truth(emulator), tally)


def test_kill_compaction_at_random_moments(emulator, s3_bucket: S3Target, tally: Counter[str]) -> None:
    rng = random.Random(7)
    env = cli_env(emulator, s3_bucket.env, SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="10")
    run_until_done("archive", env=env)
    run_until_done("backfill", "--from", "2000-01-01", "--to", time.strftime("%Y-%m-%d"), env=env)  # every day twice
    for _ in range(TRIALS):
        kill_at_random(["compact"], env, rng, tally, max_delay=2.5)
    run_until_done("compact", env=env)
    settle_and_compare(store_from_env(s3_bucket.env), api_truth(emulator), tally)
    assert run_cli("verify", env=env).code == 0


def test_kill_retention_apply_at_random_moments(emulator, tmp_path: Path, tally: Counter[str]) -> None:
    rng = random.Random(11)
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(
        emulator,
        storage,
        SMS_ARCHIVER_RETENTION__ENABLED="true",
        SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS="20",
    )
    run_until_done("archive", env=env)
    truth_before = api_truth(emulator)
    emulator.faults.latency_seconds = 0.01
    for _ in range(TRIALS):
        kill_at_random(["retention", "--apply"], env, rng, tally, max_delay=3.0)
    emulator.faults.latency_seconds = 0
    run_until_done("retention", "--apply", env=env)
    deleted = [(direction, sms_id) for _service, direction, sms_id in emulator.deleted]
    assert deleted, "retention deleted nothing: the test proves nothing"
    contents, _ = read_archive(store_from_env(storage))
    wrong = sum(1 for d, i in deleted if contents[d].get(i) != truth_before[d][i])
    tally["wrong deletions"] += wrong
    assert wrong == 0
    settle_and_compare(store_from_env(storage), truth_before, tally)


def test_api_storm(tmp_path: Path, tally: Counter[str]) -> None:
    with make_emulator(outgoing=150, incoming=20) as emulator:
        faults = emulator.faults
        faults.seed = 3
        faults.rate_limit_per_second = 40  # bursts above it get 429 + Retry-After
        faults.retry_after_seconds = 1
        faults.error_rate_500 = 0.1
        faults.drop_rate = 0.05
        faults.malformed_json_rate = 0.05
        faults.latency_seconds = 0.01
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(emulator, storage, SMS_ARCHIVER_OVH__MAX_RETRIES="15", SMS_ARCHIVER_OVH__FETCH="per-id")
        result = run_cli("archive", env=env, timeout=300)
        assert result.code == 0, result.stderr[-3000:]
        injected = sum(emulator.stats.status_count(status) for status in (0, 429, 500))
        assert emulator.stats.status_count(429) and emulator.stats.status_count(500), "the storm was too calm"
        tally["trials"] += 1
        tally["faults injected"] += injected
        tally["fault:api errors"] += injected
        settle_and_compare(store_from_env(storage), api_truth(emulator), tally)


def test_clock_skew_appearing_mid_run(
    emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tally: Counter[str]
) -> None:
    storage = local_storage_env(tmp_path / "archive")
    for key, value in cli_env(emulator, storage).items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    store = store_from_env(storage)
    with OvhSource(settings.ovh) as source:
        source.list_services()  # python-ovh measures the clock difference now, once
        emulator.faults.clock_skew_seconds = 900  # then OVH's clock (or ours) jumps by 15 minutes
        run_archive(settings, source, store)
    assert emulator.stats.status_count(400) >= 1, "no timestamp was refused: the skew was not exercised"
    tally["trials"] += 1
    tally["faults injected"] += 1
    tally["fault:clock skew"] += 1
    settle_and_compare(store, api_truth(emulator), tally)


class FlakyProxy:
    """A TCP proxy on loopback in front of the S3 server, that can go down and come back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()

    def down(self) -> None:
        self.up = False
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def close(self) -> None:
        self.closed = True
        self.down()
        self.listener.close()
        self.thread.join(timeout=5)


def test_storage_outage_mid_cycle(emulator, s3_bucket: S3Target, tally: Counter[str]) -> None:
    proxy = FlakyProxy(int(s3_bucket.endpoint_url.rsplit(":", 1)[1]))
    try:
        storage = dict(
            s3_bucket.env,
            SMS_ARCHIVER_STORAGE__ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}",
            SMS_ARCHIVER_STORAGE__MAX_ATTEMPTS="2",
            SMS_ARCHIVER_STORAGE__TIMEOUT_SECONDS="3",
        )
        env = cli_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="20", SMS_ARCHIVER_OVH__FETCH="per-id")
        rng = random.Random(5)
        for _ in range(TRIALS):
            timer = threading.Timer(rng.uniform(0.6, 2.0), proxy.down)
            timer.start()
            result = run_cli("archive", env=env)
            timer.cancel()
            tally["trials"] += 1
            if not proxy.up:
                tally["faults injected"] += 1
                tally["fault:storage outage"] += 1
                assert result.code in (0, 1), result.stderr[-2000:]
                assert "Traceback" not in result.stderr
            proxy.up = True  # the storage comes back
        run_until_done("archive", env=env)
    finally:
        proxy.close()
    settle_and_compare(store_from_env(s3_bucket.env), api_truth(emulator), tally)


def _disk_full() -> None:
    # A file may not grow past 1 kB: larger writes fail with EFBIG, as on a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


def test_full_local_directory(emulator, tmp_path: Path, tally: Counter[str]) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage, SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="2000")
    full = subprocess.run(  # the limit must apply to the child only
        [sys.executable, "-m", "archiver", "archive"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_disk_full,
        check=False,
    )
    tally["trials"] += 1
    tally["faults injected"] += 1
    tally["fault:disk full"] += 1
    assert full.returncode == 1, full.stderr[-2000:]
    assert "Traceback" not in full.stderr and "File too large" in full.stderr
    store = store_from_env(storage)
    assert load_state(store, SERVICE, "outgoing").cursor is None  # the state stayed where it was
    run_until_done("archive", env=env)
    settle_and_compare(store, api_truth(emulator), tally)


def test_unwritable_local_directory(emulator, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    env = cli_env(emulator, local_storage_env(tmp_path / "file" / "archive"))
    result = run_cli("archive", env=env)
    assert result.code == 1
    assert "Traceback" not in result.stderr and "archive" in result.stderr


@pytest.mark.parametrize("conditional_writes", ["auto", "off"])
def test_two_writers_at_once(emulator, s3_bucket: S3Target, tally: Counter[str], conditional_writes: str) -> None:
    env = cli_env(
        emulator,
        s3_bucket.env,
        SMS_ARCHIVER_STORAGE__CONDITIONAL_WRITES=conditional_writes,
        SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="30",
    )
    template = dict(next(iter(emulator.outgoing(SERVICE).values())))
    for trial in range(TRIALS):
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "archiver", "archive"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        codes = [process.wait(timeout=120) for process in processes]
        for process in processes:
            assert process.stderr is not None
            assert "Traceback" not in process.stderr.read()
            process.stderr.close()
        assert set(codes) <= {0, 75}, codes  # 75: the other one held the lease
        tally["trials"] += 1
        tally["faults injected"] += 1
        tally["fault:two writers"] += 1
        created = time.gmtime(time.time() - 3600)
        emulator.add_outgoing(
            SERVICE,
            dict(
                template, id=60_000_000_000 + trial, creationDatetime=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", created)
            ),
        )
    run_until_done("archive", env=env)
    settle_and_compare(store_from_env(s3_bucket.env), api_truth(emulator), tally)


def test_two_daemons_on_one_archive(emulator, tmp_path: Path, tally: Counter[str]) -> None:
    storage = local_storage_env(tmp_path / "archive")
    env = cli_env(emulator, storage, SMS_ARCHIVER_SCHEDULE__ARCHIVE="10s", SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="30")
    daemons = [
        subprocess.Popen(
            [sys.executable, "-m", "archiver", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        # Both start with an archive run at once; wait (bounded) until each has finished one job.
        deadline = time.monotonic() + 60
        finished = [0, 0]
        lines: list[list[str]] = [[], []]
        readers = []
        for index, daemon in enumerate(daemons):

            def read(index: int = index, daemon: subprocess.Popen[str] = daemon) -> None:
                assert daemon.stderr is not None
                for line in daemon.stderr:
                    lines[index].append(line)
                    if '"job_finished"' in line or '"job_failed"' in line:
                        finished[index] += 1

            thread = threading.Thread(target=read, daemon=True)
            thread.start()
            readers.append(thread)
        while min(finished) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert min(finished) >= 1, "".join(lines[0][-5:] + lines[1][-5:])
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        codes = [daemon.wait(timeout=90) for daemon in daemons]
        for thread in readers:
            thread.join(timeout=5)
    assert codes == [0, 0], "".join(lines[0][-10:] + lines[1][-10:])
    assert not any("Traceback" in line for daemon_lines in lines for line in daemon_lines)
    tally["trials"] += 1
    tally["faults injected"] += 1
    tally["fault:two daemons"] += 1
    run_until_done("archive", env=env)
    settle_and_compare(store_from_env(storage), api_truth(emulator), tally)
