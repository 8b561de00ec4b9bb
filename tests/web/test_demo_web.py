"""The demo ends with the history browser on a terminal, and never blocks without one."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.web.conftest import get


def _env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMS_ARCHIVER_")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), SMS_ARCHIVER_SECRETS_DIR="/nonexistent")
    return env


def _read_until(fd: int, pattern: str, timeout: float) -> re.Match[str]:
    seen = ""
    deadline = time.monotonic() + timeout
    while (match := re.search(pattern, seen)) is None:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {pattern!r} in:\n{seen}"
        ready, _w, _x = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal closed: the process ended
                chunk = b""
            assert chunk, f"the demo ended without {pattern!r}:\n{seen}"
            seen += chunk.decode("utf-8", "replace")
    return match


def test_on_a_terminal_the_demo_ends_serving_the_history_until_ctrl_c(tmp_path: Path) -> None:
    archive = (tmp_path / "demo-archive").as_uri()
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "archiver", "demo", "--storage-url", archive, "--outgoing", "30", "--incoming", "5"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=_env(tmp_path),
        close_fds=True,
    )
    os.close(terminal)
    try:
        url = _read_until(controller, r"Browse the history:\s+(http://127\.0\.0\.1:\d+/)", timeout=120)[1]
        body = get(url + "api/sms?limit=1000").json()
        assert len(body["items"]) == 35
        assert get(url).status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(controller)


def test_without_a_terminal_or_with_no_web_the_demo_just_ends(tmp_path: Path) -> None:
    for extra in ([], ["--no-web"]):
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "archiver",
                "demo",
                "--storage-url",
                (tmp_path / "a").as_uri(),
                "--outgoing",
                "10",
                "--incoming",
                "2",
                *extra,
            ],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        assert "Browse the history" not in completed.stdout
