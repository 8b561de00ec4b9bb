"""sd_notify over a real datagram socket (a path and an abstract name), and the watchdog heartbeat."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from archiver.daemon.notify import Heartbeat, Notifier, start_heartbeat, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound where systemd's would be, and the NOTIFY_SOCKET value naming it."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_messages_reach_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, name = listener
    notifier = Notifier(environ={"NOTIFY_SOCKET": name})
    assert notifier.enabled
    assert notifier.ready("running")
    assert receive(sock) == "READY=1\nSTATUS=running"
    assert notifier.status("last cycle ok\nsecond line")
    assert receive(sock) == "STATUS=last cycle ok second line"  # a newline would start another field
    assert notifier.watchdog()
    assert receive(sock) == "WATCHDOG=1"
    assert notifier.stopping()
    assert receive(sock) == "STOPPING=1"


def test_abstract_socket_name() -> None:
    name = f"sms-archiver-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier(environ={"NOTIFY_SOCKET": "@" + name}).ready()
        assert receive(sock) == "READY=1"


def test_without_notify_socket_nothing_happens() -> None:
    notifier = Notifier(environ={})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_a_socket_that_is_gone_warns_once_and_never_raises(tmp_path: Path) -> None:
    notifier = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    with capture_logs() as logs:
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    assert [entry["event"] for entry in logs] == ["notify_failed"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),  # meant for us (pid 4242 below)
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # meant for our parent
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ, pid=4242) == expected


def test_heartbeat_beats_while_healthy_and_stops_promptly(listener: tuple[socket.socket, str]) -> None:
    sock, name = listener
    heartbeat = Heartbeat(Notifier(environ={"NOTIFY_SOCKET": name}), 0.02, lambda: True).start()
    try:
        assert [receive(sock) for _ in range(3)] == ["WATCHDOG=1"] * 3
    finally:
        heartbeat.stop()
    assert not heartbeat._thread.is_alive()


def test_heartbeat_is_withheld_while_unhealthy(listener: tuple[socket.socket, str]) -> None:
    sock, name = listener
    state = {"healthy": False, "asked": 0}

    def healthy() -> bool:
        state["asked"] += 1
        # Unhealthy for the first few checks, then healthy: only then may a beat arrive.
        if state["asked"] >= 4:
            state["healthy"] = True
        return state["healthy"]

    with capture_logs() as logs:
        heartbeat = Heartbeat(Notifier(environ={"NOTIFY_SOCKET": name}), 0.02, healthy).start()
        try:
            assert receive(sock) == "WATCHDOG=1"
            assert state["asked"] >= 4, "a beat was sent while unhealthy"
        finally:
            heartbeat.stop()
    withheld = [entry for entry in logs if entry["event"] == "watchdog_withheld"]
    assert len(withheld) == 1  # said once, not at every check


def test_start_heartbeat_uses_half_the_watchdog_period(listener: tuple[socket.socket, str]) -> None:
    _sock, name = listener
    notifier = Notifier(environ={"NOTIFY_SOCKET": name})
    assert start_heartbeat(notifier, lambda: True, environ={}) is None
    assert start_heartbeat(Notifier(environ={}), lambda: True, environ={"WATCHDOG_USEC": "1000000"}) is None
    heartbeat = start_heartbeat(notifier, lambda: True, environ={"WATCHDOG_USEC": "1000000"})
    assert heartbeat is not None
    try:
        assert heartbeat.interval == 0.5
    finally:
        heartbeat.stop()
