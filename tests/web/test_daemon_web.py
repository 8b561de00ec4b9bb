"""``sms-archiver run`` serves the history browser beside the scheduler when SMS_ARCHIVER_WEB__ENABLED=true."""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import api_truth, cli_env, local_storage_env, make_emulator
from tests.integration.test_daemon import DaemonProcess, free_port
from tests.web.conftest import get


def test_the_daemon_serves_the_browser_and_stops_it(tmp_path: Path) -> None:
    port = free_port()
    with make_emulator(outgoing=40, incoming=5) as emulator:
        env = cli_env(
            emulator,
            local_storage_env(tmp_path / "archive"),
            SMS_ARCHIVER_WEB__ENABLED="true",
            SMS_ARCHIVER_WEB__PORT=str(port),
            SMS_ARCHIVER_WEB__CACHE_DIR=str(tmp_path / "cache"),
            SMS_ARCHIVER_SCHEDULE__ARCHIVE="1h",
        )
        with DaemonProcess(env) as daemon:
            started = daemon.wait_for("web_started")
            assert started["url"] == f"http://127.0.0.1:{port}/"
            daemon.wait_for("job_finished", job="archive")
            truth = api_truth(emulator)
            # The index looks at the archive again at most every 5 s: wait (bounded) for the cycle's rows.
            expected = len(truth["outgoing"]) + len(truth["incoming"])
            deadline = time.monotonic() + 30
            while len(get(f"http://127.0.0.1:{port}/api/sms?limit=1000").json()["items"]) != expected:
                assert time.monotonic() < deadline, "the browser never showed the archived SMS"
                threading.Event().wait(0.25)
            daemon.signal(signal.SIGTERM)
            assert daemon.wait_exit() == 0, daemon.output()
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)


def test_the_daemon_refuses_an_exposed_browser_without_authentication(tmp_path: Path) -> None:
    with make_emulator(outgoing=5, incoming=1) as emulator:
        env: dict[str, Any] = cli_env(
            emulator,
            local_storage_env(tmp_path / "archive"),
            SMS_ARCHIVER_WEB__ENABLED="true",
            SMS_ARCHIVER_WEB__HOST="0.0.0.0",
        )
        with DaemonProcess(env) as daemon:
            assert daemon.wait_exit() == 2
            assert "SMS_ARCHIVER_WEB__HOST" in daemon.output()
