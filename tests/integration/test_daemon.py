"""The daemon as a real subprocess: sd_notify, metrics, pings, signals, failures, bad settings.

Every daemon started here is stopped by its test (``DaemonProcess`` kills what is still running);
every wait is on a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from archiver.cli.commands.status import show_status
from archiver.config import load_settings
from archiver.store.layout import daemon_status_key, lease_key
from archiver.store.lease import LeaseInfo, read_lease
from archiver.store.state import load_state
from tests.integration.helpers import (
    CREDENTIALS,
    SERVICE,
    api_truth,
    archive_contents,
    cli_env,
    local_storage_env,
    make_emulator,
    raw_row_count,
    run_cli,
    store_from_env,
)


def _cli_has_run() -> bool:
    from archiver.cli import build_parser

    commands = next(action for action in build_parser()._actions if action.dest == "command")
    return "run" in getattr(commands, "choices", {})


# Until the CLI has `run`, the same wiring by hand: settings, logging, exit codes as the CLI maps them.
_FALLBACK = """
import sys
from archiver.cli import exit_code
from archiver.config import load_settings
from archiver.daemon import run_daemon
from archiver.errors import ArchiverError
from archiver.logs import configure_logging, new_run_id
try:
    settings = load_settings()
    configure_logging(settings.log.level, settings.log.format)
    new_run_id()
    code = run_daemon(settings)
except ArchiverError as error:
    print(f"sms-archiver: {error}", file=sys.stderr)
    code = exit_code(error)
sys.exit(code)
"""


def daemon_command() -> list[str]:
    if _cli_has_run():
        return [sys.executable, "-m", "archiver", "run"]
    return [sys.executable, "-c", _FALLBACK]


class DaemonProcess:
    """``sms-archiver run`` in a subprocess, its JSON log events collected as they come."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            daemon_command(), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("{"):
                    with contextlib.suppress(json.JSONDecodeError):
                        self.events.append(json.loads(line))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def output(self) -> str:
        with self.changed:
            return "\n".join(self.lines)

    def wait_for(self, name: str, timeout: float = 20, **fields: Any) -> dict[str, Any]:
        """The first event ``name`` with these fields; fail if the daemon exits or time runs out first."""

        def found() -> dict[str, Any] | None:
            for event in self.events:
                if event.get("event") == name and all(event.get(key) == value for key, value in fields.items()):
                    return event
            return None

        deadline = time.monotonic() + timeout
        with self.changed:
            while (event := found()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not any(r.is_alive() for r in self.readers)):
                    raise AssertionError(f"no {name} {fields} event; daemon said:\n" + "\n".join(self.lines[-40:]))
                self.changed.wait(min(remaining, 0.5))
        return event

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=5)
        return code

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait_exit(timeout=10)


class NotifyListener:
    """The socket systemd would listen on for sd_notify: an abstract name, so no path length limit."""

    def __init__(self) -> None:
        self.name = f"@sms-archiver-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.messages: list[str] = []

    def expect(self, field: str, timeout: float = 20) -> str:
        """Read messages until one carries ``field`` (e.g. READY=1); fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {field} within {timeout} s; got {self.messages}")
            self.sock.settimeout(remaining)
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(message)
            if field in message.split("\n"):
                return message

    def drain(self) -> list[str]:
        """Every message received so far, once the sender is gone."""
        self.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        return self.messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


@pytest.fixture
def emulator() -> Iterator[Any]:
    with make_emulator() as server:
        yield server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def use_env(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    for key in [key for key in os.environ if key.startswith("SMS_ARCHIVER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("SMS_ARCHIVER_"):
            monkeypatch.setenv(key, value)


def test_ready_watchdog_metrics_status_then_clean_stop(
    emulator: Any, notify: NotifyListener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    storage = local_storage_env(tmp_path / "archive")
    port = free_port()
    env = cli_env(
        emulator,
        storage,
        NOTIFY_SOCKET=notify.name,
        WATCHDOG_USEC="400000",  # a heartbeat every 0.2 s
        SMS_ARCHIVER_METRICS__LISTEN=f"127.0.0.1:{port}",
        SMS_ARCHIVER_SCHEDULE__ARCHIVE="1h",
    )
    with DaemonProcess(env) as daemon:
        notify.expect("READY=1")
        notify.expect("WATCHDOG=1")  # after READY=1
        daemon.wait_for("job_finished", job="archive")
        truth = api_truth(emulator)

        samples = scrape(port)
        for direction in ("outgoing", "incoming"):
            labels = (("direction", direction), ("service", SERVICE))
            assert samples[("sms_archiver_records_archived_total", labels)] == len(truth[direction])
            assert samples[("sms_archiver_last_success_timestamp_seconds", labels)] > time.time() - 60
        assert samples[("sms_archiver_api_calls_total", (("outcome", "ok"),))] >= 3
        status, body = healthz(port)
        assert status == 200 and body["status"] == "ok"

        # `sms-archiver status` reads what the daemon published, from the archive itself.
        use_env(monkeypatch, env)
        store = store_from_env(storage)
        capsys.readouterr()
        assert show_status(load_settings(), store, as_json=True) == 0
        document = json.loads(capsys.readouterr().out)
        pairs = {(entry["service"], entry["direction"]): entry for entry in document["services"]}
        assert set(pairs) == {(SERVICE, "outgoing"), (SERVICE, "incoming")}
        outgoing = pairs[(SERVICE, "outgoing")]
        assert outgoing["cursor"] and outgoing["last_cycle"]["outcome"] == "ok" and outgoing["lease"] is None
        assert outgoing["last_cycle"]["rows_written"] == len(truth["outgoing"])
        [published] = document["daemons"]
        assert published["state"] == "running" and published["pid"] == daemon.proc.pid
        next_archive = dt.datetime.fromisoformat(published["jobs"]["archive"]["next_run"])
        assert dt.timedelta(0) < next_archive - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
        assert published["jobs"]["compact"]["next_run"]

        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0, daemon.output()
        notify.expect("STOPPING=1")
        assert daemon.wait_for("daemon_stopped")
    assert archive_contents(store) == truth
    stopped = json.loads(store.get(daemon_status_key(socket.gethostname())))
    assert stopped["state"] == "stopped"
    # Every line on stderr is one JSON event, and the job's lines carry its run id.
    assert all(line.startswith("{") for line in daemon.lines if line.strip()), daemon.output()
    job_events = [event for event in daemon.events if event.get("job") == "archive"]
    assert job_events and len({event["run_id"] for event in job_events}) == 1


def slow_env(emulator: Any, storage: Mapping[str, str], **extra: str) -> dict[str, str]:
    return cli_env(
        emulator,
        storage,
        SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE="10",
        SMS_ARCHIVER_OVH__FETCH="batch",  # one call per chunk: each chunk costs one emulator latency
        SMS_ARCHIVER_SCHEDULE__ARCHIVE="1h",
        SMS_ARCHIVER_LOG__LEVEL="debug",
        **extra,
    )


def assert_archive_is_a_correct_subset(store: Any, truth: dict[str, dict[int, tuple[str, ...]]]) -> None:
    archived = archive_contents(store)
    for direction, rows in archived.items():
        assert all(truth[direction][sms_id] == row for sms_id, row in rows.items())


def test_sigterm_during_a_slow_cycle_stops_at_a_safe_point(tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    with make_emulator(outgoing=300, incoming=20) as emulator:
        emulator.faults.latency_seconds = 0.1
        with DaemonProcess(slow_env(emulator, storage, SMS_ARCHIVER_DAEMON__SHUTDOWN_SECONDS="20")) as daemon:
            daemon.wait_for("part_written")  # the cycle is under way, with ~30 chunks to go
            signalled = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert daemon.wait_exit() == 0, daemon.output()
            assert time.monotonic() - signalled < 10
            interrupted = daemon.wait_for("job_interrupted", job="archive")
            assert "progress saved" in interrupted["reason"]
            assert not [event for event in daemon.events if event.get("event") == "job_failed"]

        store = store_from_env(storage)
        truth = api_truth(emulator)
        state = load_state(store, SERVICE, "outgoing")
        assert state.cursor is None and state.partial_until is not None  # stopped mid-cycle, checkpointed
        assert_archive_is_a_correct_subset(store, truth)
        assert read_lease(store, SERVICE) is None  # released on the way out

        emulator.faults.latency_seconds = 0
        resumed = run_cli("archive", env=cli_env(emulator, storage))
        assert resumed.code == 0, resumed.stderr
        assert archive_contents(store) == truth
        assert raw_row_count(store) == sum(len(rows) for rows in truth.values())  # nothing written twice


def test_second_signal_exits_at_once_and_the_archive_stays_correct(tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    with make_emulator(outgoing=60, incoming=10) as emulator:
        emulator.faults.latency_seconds = 1.0  # a safe point is at least a second away
        with DaemonProcess(slow_env(emulator, storage, SMS_ARCHIVER_DAEMON__SHUTDOWN_SECONDS="60")) as daemon:
            daemon.wait_for("job_started", job="archive")
            daemon.signal(signal.SIGTERM)
            daemon.wait_for("shutdown_requested")
            signalled = time.monotonic()
            daemon.signal(signal.SIGINT)
            assert daemon.wait_exit() == 128 + signal.SIGINT
            # The exit status alone proves no safe point was waited for (that ends with 0); the
            # time says it did not wait for the 60 s grace either.
            assert time.monotonic() - signalled < 5, "the second signal did not exit at once"
            assert daemon.wait_for("second_signal_exit")["signal"] == "SIGINT"
        emulator.faults.latency_seconds = 0
        store = store_from_env(storage)
        truth = api_truth(emulator)
        assert_archive_is_a_correct_subset(store, truth)
        resumed = run_cli("archive", env=cli_env(emulator, storage))  # takes over the dead process's lease
        assert resumed.code == 0, resumed.stderr
        assert archive_contents(store) == truth


class PingRecorder:
    """A healthchecks.io stand-in on 127.0.0.1 that records the paths it is pinged on."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.changed = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with recorder.changed:
                    recorder.paths.append(urllib.parse.urlsplit(self.path).path)
                    recorder.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/check-token"

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 20) -> list[str]:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.paths), timeout), self.paths
            return list(self.paths)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_a_failing_job_does_not_stop_the_next_one(emulator: Any, tmp_path: Path) -> None:
    storage = local_storage_env(tmp_path / "archive")
    store = store_from_env(storage)
    # A file where the service's folder must go: the first archive run cannot write its parts and fails.
    # (A lease held by another instance is no failure: the service is left to it, see test_fleet.py.)
    blocker = tmp_path / "archive" / SERVICE / "outgoing"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    pings = PingRecorder()
    port = free_port()
    env = cli_env(
        emulator,
        storage,
        SMS_ARCHIVER_OVH__SERVICES=SERVICE,
        SMS_ARCHIVER_SCHEDULE__ARCHIVE="10s",  # the shortest interval accepted
        SMS_ARCHIVER_PING__URL=pings.url,
        SMS_ARCHIVER_METRICS__LISTEN=f"127.0.0.1:{port}",
    )
    try:
        with DaemonProcess(env) as daemon:
            failed = daemon.wait_for("job_failed", job="archive")
            assert failed["error_type"] == "StorageError"
            blocker.unlink()  # cleared up
            daemon.wait_for("job_finished", job="archive", timeout=30)
            samples = scrape(port)
            assert samples[("sms_archiver_job_failures_total", (("job", "archive"),))] == 1
            assert samples[("sms_archiver_job_runs_total", (("job", "archive"), ("outcome", "ok")))] == 1
            paths = pings.wait_for(lambda paths: "/check-token" in paths)
            assert paths[:4] == ["/check-token/start", "/check-token/fail", "/check-token/start", "/check-token"]
            daemon.signal(signal.SIGTERM)
            assert daemon.wait_exit() == 0, daemon.output()
    finally:
        pings.close()
    assert archive_contents(store) == api_truth(emulator)
    assert "check-token" not in daemon.output()  # the ping URL is a secret


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("SMS_ARCHIVER_SCHEDULE__ARCHIVE", "every 5 minutes"),
        ("SMS_ARCHIVER_SCHEDULE__ARCHIVE", "5s"),
        ("SMS_ARCHIVER_SCHEDULE__COMPACT", "61 * * * *"),
    ],
)
def test_bad_schedule_strings_are_rejected_with_a_clear_message(
    emulator: Any, tmp_path: Path, setting: str, value: str
) -> None:
    env = cli_env(emulator, local_storage_env(tmp_path / "archive"), **{setting: value})
    with DaemonProcess(env) as daemon:
        assert daemon.wait_exit() == 2
    output = daemon.output()
    assert setting in output and "Traceback" not in output
    assert repr(value) in output or value in output


def test_start_up_check_failure_exits_non_zero_with_the_reason(
    emulator: Any, notify: NotifyListener, tmp_path: Path
) -> None:
    env = cli_env(
        emulator,
        local_storage_env(tmp_path / "archive"),
        SMS_ARCHIVER_OVH__APPLICATION_SECRET="wrong-secret-xyz",
        NOTIFY_SOCKET=notify.name,
    )
    with DaemonProcess(env) as daemon:
        assert daemon.wait_exit() == 1
    output = daemon.output()
    assert "start-up check of the OVH API failed" in output and "OVH rejected the credentials" in output
    assert "wrong-secret-xyz" not in output and CREDENTIALS["consumer_key"] not in output
    assert "Traceback" not in output
    assert any(message.startswith("STATUS=start-up failed") for message in notify.drain())
    assert not any("READY=1" in message for message in notify.messages)


def test_sigterm_during_start_up_checks_exits_at_once(tmp_path: Path) -> None:
    with make_emulator(outgoing=10, incoming=0) as emulator:
        emulator.faults.latency_seconds = 8.0  # GET /sms takes 8 s
        with DaemonProcess(cli_env(emulator, local_storage_env(tmp_path / "archive"))) as daemon:
            daemon.wait_for("daemon_starting")
            signalled = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert daemon.wait_exit() == 0, daemon.output()
            assert time.monotonic() - signalled < 4, "the daemon waited for the start-up checks to end"
            assert daemon.wait_for("daemon_stopped")["during"] == "start-up"


def test_metrics_address_in_use_is_a_setting_error(emulator: Any, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        env = cli_env(emulator, local_storage_env(tmp_path / "archive"), SMS_ARCHIVER_METRICS__LISTEN=listen)
        with DaemonProcess(env) as daemon:
            assert daemon.wait_exit() == 2
    assert f"SMS_ARCHIVER_METRICS__LISTEN: cannot listen on {listen}" in daemon.output()


def test_a_run_due_while_the_previous_one_goes_on_becomes_one_catch_up_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the archive job is replaced by one that waits for the test's go-ahead."""
    from archiver.daemon import Daemon

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    use_env(monkeypatch, local_storage_env(tmp_path / "archive") | {"SMS_ARCHIVER_SCHEDULE__ARCHIVE": "1h"})
    daemon = Daemon(load_settings())
    daemon.store = store_from_env(local_storage_env(tmp_path / "archive"))
    runs: list[float] = []
    changed = threading.Condition()
    go_ahead = threading.Event()

    def archive() -> str:
        with changed:
            runs.append(time.monotonic())
            changed.notify_all()
        assert go_ahead.wait(10)
        return "done"

    monkeypatch.setattr(daemon, "_archive", archive)
    deferred = threading.Event()
    on_event = daemon._on_scheduler_event

    def spy(event: Any) -> None:
        on_event(event)
        deferred.set()

    monkeypatch.setattr(daemon, "_on_scheduler_event", spy)
    daemon._start_scheduler()
    try:
        with changed:
            assert changed.wait_for(lambda: len(runs) == 1, 5)  # the start-up run, now waiting
        # Two more runs come due meanwhile (the next regular one is an hour away).
        for _ in range(2):
            deferred.clear()
            daemon.scheduler.modify_job("archive", next_run_time=dt.datetime.now(dt.UTC))
            assert deferred.wait(5)
        go_ahead.set()
        with changed:
            assert changed.wait_for(lambda: len(runs) == 2, 5), "no catch-up run after the first one ended"
            assert not changed.wait_for(lambda: len(runs) > 2, 0.5), "the piled-up runs were not coalesced"
        next_run = daemon.scheduler.get_job("archive").next_run_time
        assert next_run - dt.datetime.now(dt.UTC) > dt.timedelta(minutes=30)
    finally:
        daemon.stop_event.set()
        go_ahead.set()
        daemon.scheduler.shutdown(wait=True)


def test_a_daemon_whose_services_other_instances_hold_stays_healthy(emulator: Any, tmp_path: Path) -> None:
    """In a fleet with more daemons than services, one finds every lease held: an idle cycle, not a failure."""
    storage = local_storage_env(tmp_path / "archive")
    store = store_from_env(storage)
    now = dt.datetime.now(dt.UTC)
    other = LeaseInfo("another-instance", "another-host", 4242, "", now, now + dt.timedelta(hours=2))
    store.put(lease_key(SERVICE), other.to_json())
    port = free_port()
    env = cli_env(
        emulator,
        storage,
        SMS_ARCHIVER_METRICS__LISTEN=f"127.0.0.1:{port}",
        SMS_ARCHIVER_METRICS__MAX_AGE_SECONDS="60",
        SMS_ARCHIVER_SCHEDULE__ARCHIVE="1h",
    )
    with DaemonProcess(env) as daemon:
        daemon.wait_for("job_finished", job="archive")  # said only of a job that succeeded
        assert daemon.wait_for("service_skipped", service=SERVICE)
        status, body = healthz(port)
        assert status == 200, body
        samples = scrape(port)
        labels = (("direction", "outgoing"), ("service", SERVICE))
        assert samples[("sms_archiver_services_skipped_total", labels)] == 1
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0, daemon.output()
    assert archive_contents(store) == {"outgoing": {}, "incoming": {}}
