"""Dead man's switch pings against a tiny HTTP server on 127.0.0.1: paths, run ids, bodies, failures."""

from __future__ import annotations

import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from archiver.config import PingSettings
from archiver.errors import CycleInterrupted, StorageError
from archiver.ping import MAX_BODY_BYTES, Pinger

TOKEN = "5f1d1c1e-ping-token-DO-NOT-LEAK"


@dataclass
class Ping:
    path: str
    query: dict[str, list[str]]
    body: bytes


@dataclass
class PingServer:
    url: str
    received: list[Ping] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def ping_server() -> Iterator[PingServer]:
    state = PingServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urllib.parse.urlsplit(self.path)
            state.received.append(Ping(parts.path, urllib.parse.parse_qs(parts.query), self.rfile.read(length)))
            self.send_response(state.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/{TOKEN}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def pinger(url: str | None, timeout: float = 5.0) -> Pinger:
    return Pinger(PingSettings(url=SecretStr(url) if url is not None else None, timeout_seconds=timeout))


def test_start_success_fail_paths_share_a_run_id(ping_server: PingServer) -> None:
    ping = pinger(ping_server.url)
    assert ping.start()
    assert ping.success("42 rows written")
    assert ping.start()
    assert ping.fail("archive cycle failed: OVH API GET /sms answered HTTP 500")
    first, second, third, fourth = ping_server.received
    assert [p.path for p in ping_server.received] == [
        f"/{TOKEN}/start",
        f"/{TOKEN}",
        f"/{TOKEN}/start",
        f"/{TOKEN}/fail",
    ]
    assert first.query["rid"] == second.query["rid"]
    assert third.query["rid"] == fourth.query["rid"] != first.query["rid"]
    assert second.body == b"42 rows written"
    assert fourth.body.startswith(b"archive cycle failed")


def test_query_string_of_the_configured_url_is_kept(ping_server: PingServer) -> None:
    ping = pinger(ping_server.url + "/?create=1")
    ping.start()
    [received] = ping_server.received
    assert received.path == f"/{TOKEN}/start"
    assert received.query["create"] == ["1"] and "rid" in received.query


def test_long_messages_are_cut_to_their_end(ping_server: PingServer) -> None:
    ping = pinger(ping_server.url)
    ping.fail("x" * (3 * MAX_BODY_BYTES) + "THE END")
    [received] = ping_server.received
    assert len(received.body) == MAX_BODY_BYTES
    assert received.body.endswith(b"THE END")


def test_refused_ping_only_warns_and_never_logs_the_url(ping_server: PingServer) -> None:
    ping_server.status = 404
    with capture_logs() as logs:
        assert pinger(ping_server.url).success("ok") is False
    [event] = logs
    assert event["event"] == "ping_failed" and event["http_status"] == 404
    assert TOKEN not in repr(logs)


def test_unreachable_ping_only_warns_and_never_logs_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: the connection is refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/{TOKEN}"
        with capture_logs() as logs:
            assert pinger(url, timeout=2).fail("boom") is False
    [event] = logs
    assert event["event"] == "ping_failed" and event["error_type"] == "ConnectionError"
    assert TOKEN not in repr(logs)


def test_no_url_means_no_ping(ping_server: PingServer) -> None:
    ping = pinger(None)
    assert not ping.enabled
    assert ping.start() is False and ping.success() is False and ping.fail("x") is False
    assert ping_server.received == []


def test_repr_hides_the_url(ping_server: PingServer) -> None:
    assert TOKEN not in repr(pinger(ping_server.url))


def test_monitored_run_pings_start_then_success_with_the_summary_it_set(ping_server: PingServer) -> None:
    ping = pinger(ping_server.url)
    with ping.monitored("heading\n") as outcome:
        outcome.summary = "7 rows written"
    assert [p.path for p in ping_server.received] == [f"/{TOKEN}/start", f"/{TOKEN}"]
    assert ping_server.received[1].body == b"7 rows written"


@pytest.mark.parametrize(
    ("error", "body"),
    [
        (StorageError("bucket unreachable"), b"cycle failed\nbucket unreachable"),
        (KeyError("oops"), b"cycle failed\nKeyError: 'oops'"),
    ],
)
def test_monitored_run_that_raises_pings_fail_and_the_error_goes_on(
    ping_server: PingServer, error: Exception, body: bytes
) -> None:
    ping = pinger(ping_server.url)
    with pytest.raises(type(error)), ping.monitored("cycle failed\n"):
        raise error
    assert [p.path for p in ping_server.received] == [f"/{TOKEN}/start", f"/{TOKEN}/fail"]
    assert ping_server.received[1].body == body


def test_monitored_run_that_is_stopped_pings_neither_success_nor_fail(ping_server: PingServer) -> None:
    ping = pinger(ping_server.url)
    with pytest.raises(CycleInterrupted), ping.monitored():
        raise CycleInterrupted("stop requested")
    assert [p.path for p in ping_server.received] == [f"/{TOKEN}/start"]
