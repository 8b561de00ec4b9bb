"""A loopback HTTP server that behaves like OVH API v1 for the SMS history calls the archiver makes.

It verifies python-ovh 1.2.0 signatures (``signatures``), serves ``/1.0/sms/...`` and ``/1.0/me/document/...``
(``routes``) from in-memory data (``memory_store``), and injects faults (``faults``: latency, dropped
connections, 429, 500, truncated JSON ...) on demand. This module is the HTTP glue and ``EmulatorServer``,
the object tests start, stop, fill with data and read counters from.

Threading: one handler thread per connection (HTTP/1.1 keep-alive, as python-ovh uses a requests
Session). All data sits behind one lock in ``MemoryStore``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from archiver.emulator.data import PARIS, ServiceData
from archiver.emulator.faults import Dice, Faults, TokenBucket, ascii_only, inject, truncate_success
from archiver.emulator.memory_store import DIRECTIONS, Collection, MemoryStore
from archiver.emulator.protocol import INVALID_URL, Reply, Request, json_reply
from archiver.emulator.routes import Context, Route, answer, download, is_batch, match_route
from archiver.emulator.signatures import DemoCredentials, check_signature
from archiver.emulator.stats import RequestStats

__all__ = ["LOOPBACK", "EmulatorServer"]

# stdlib logging (stderr) rather than structlog's default stdout renderer: the standalone command's
# stdout carries the one JSON line its caller parses.
_log = logging.getLogger(__name__)

LOOPBACK: Final = "127.0.0.1"
_API_PREFIXES: Final = ("/1.0", "/v1")
_DROPPED: Final = 0  # status recorded in the stats for a connection closed without any response


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog (5) refuses connections when a benchmark opens many at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections, so their handler threads end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # OSError: already closed by the peer, nothing left to cut.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client going away mid-answer is routine here (drop faults, timeouts); anything else is a bug.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        _log.exception("emulator request failed")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: python-ovh reuses connections through a Session
    server_version = "sms-archiver-emulator/1"
    sys_version = ""
    timeout = 120  # seconds an idle keep-alive connection may hold a thread
    # Headers and body go out in separate writes; without TCP_NODELAY the client's delayed ACK adds
    # about 40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: _HttpServer

    def do_GET(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes one stderr line per request, which floods test and benchmark output.
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            reply = self.server.emulator._dispatch(self, body)
        except Exception as error:
            # An emulator bug (or a corrupt_record value json cannot encode) must not look like a
            # deliberate drop fault to the client under test: log it and answer a distinct 500.
            _log.exception("emulator request failed")
            reply = json_reply(500, {"message": f"Emulator bug: {type(error).__name__}: {error}"})
        if reply is None:
            # Drop fault: close without a single byte, like a reset connection.
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)


class EmulatorServer:
    """OVH API v1 emulator serving on loopback from a daemon thread.

    Use as a context manager, or call ``start()`` then ``stop()``. ``url`` (valid once started) is the
    endpoint to register in ``ovh.client.ENDPOINTS``. ``faults`` may be changed, or replaced, at any
    time. Data helpers (``add_outgoing`` ...) are thread-safe and may be used while serving.
    """

    def __init__(
        self,
        *,
        application_key: str,
        application_secret: str,
        consumer_key: str,
        services: Mapping[str, ServiceData] | None = None,
        faults: Faults | None = None,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        if host != LOOPBACK:
            raise ValueError(f"the emulator only binds {LOOPBACK}, not {host!r}")
        self.application_key = application_key
        self.application_secret = application_secret
        self.consumer_key = consumer_key
        self.faults = faults if faults is not None else Faults()
        self.stats = RequestStats()
        self._host = host
        self._requested_port = port
        self._store = MemoryStore(services or {})
        self._bucket = TokenBucket()
        self._dice = Dice(self.faults.seed)
        self._query_ids = itertools.count(1)
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> EmulatorServer:
        """Bind and serve from a daemon thread; return self."""
        if self._http is not None:
            raise RuntimeError("the emulator is already started")
        self._http = _HttpServer((self._host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="ovh-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and open connections; wait (bounded) for the thread."""
        http, thread = self._http, self._thread
        if http is None:
            return
        http.shutdown()
        http.close_connections()
        http.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._http, self._thread = None, None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (after start)."""
        if self._http is None:
            raise RuntimeError("the emulator is not started")
        return int(self._http.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: root of the unsigned routes (downloads, control)."""
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/1.0``: the API endpoint the archiver uses."""
        return self.base_url + "/1.0"

    # data helpers for tests

    def add_service(self, service: str) -> None:
        """Create an empty service (no-op if it exists)."""
        with self._store.lock:
            self._store.ensure_service(service)

    def add_outgoing(self, service: str, record: Mapping[str, Any]) -> None:
        """Insert or replace an outgoing record (creates the service); ValueError if no id/date."""
        self._put(service, "outgoing", record)

    def add_incoming(self, service: str, record: Mapping[str, Any]) -> None:
        """Insert or replace an incoming record (creates the service); ValueError if no id/date."""
        self._put(service, "incoming", record)

    def update_outgoing(self, service: str, sms_id: int, **fields: Any) -> None:
        """Change fields of an outgoing record, e.g. ``ptt=4, deliveredAt=...``; KeyError if absent."""
        self._update(service, "outgoing", sms_id, fields)

    def update_incoming(self, service: str, sms_id: int, **fields: Any) -> None:
        """Change fields of an incoming record; KeyError if absent."""
        self._update(service, "incoming", sms_id, fields)

    def outgoing(self, service: str) -> dict[int, dict[str, Any]]:
        """Copies of the current outgoing records of a service (the API's truth); KeyError if unknown."""
        return self._copies(service, "outgoing")

    def incoming(self, service: str) -> dict[int, dict[str, Any]]:
        """Copies of the current incoming records of a service; KeyError if unknown."""
        return self._copies(service, "incoming")

    def corrupt_record(self, service: str, direction: str, sms_id: int, raw: object) -> None:
        """Serve ``raw`` (any JSON value) instead of an existing record on GET by id and in batches.

        The record keeps its place in listings and exports; KeyError if it does not exist.
        """
        collection = self._collection_for_test(service, direction)
        with self._store.lock:
            if sms_id not in collection.records:
                raise KeyError(sms_id)
            collection.corrupt[sms_id] = raw

    @property
    def deleted(self) -> list[tuple[str, str, int]]:
        """(service, direction, id) of every record deleted through the API, in order."""
        with self._store.lock:
            return list(self._store.deleted)

    def _put(self, service: str, direction: str, record: Mapping[str, Any]) -> None:
        with self._store.lock:
            self._store.ensure_service(service)[direction].put(record)

    def _update(self, service: str, direction: str, sms_id: int, fields: Mapping[str, Any]) -> None:
        collection = self._collection_for_test(service, direction)
        with self._store.lock:
            current = collection.records[sms_id]
            updated = {**current, **fields, "id": sms_id}
            collection.put(updated)

    def _copies(self, service: str, direction: str) -> dict[int, dict[str, Any]]:
        collection = self._collection_for_test(service, direction)
        with self._store.lock:
            return {sms_id: dict(record) for sms_id, record in collection.records.items()}

    def _collection_for_test(self, service: str, direction: str) -> Collection:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be outgoing or incoming, not {direction!r}")
        with self._store.lock:
            return self._store.services[service][direction]

    # request processing (called from handler threads)

    def _server_now(self) -> float:
        return time.time() + self.faults.clock_skew_seconds

    def now(self) -> datetime:
        """The time on the emulated server's clock (``clock_skew_seconds`` away from the real one)."""
        return datetime.fromtimestamp(self._server_now(), tz=PARIS)

    def _dispatch(self, handler: _Handler, body: bytes) -> Reply | None:
        """Answer one request; None means drop the connection without a response."""
        split = urlsplit(handler.path)
        path = split.path
        method = handler.command

        if path.startswith("/_emulator/"):
            return self._control(handler, method, path)
        if path.startswith("/_download/"):
            document = download(self._store, path.removeprefix("/_download/"), method)
            self.stats.record(method, "/_download/{id}", document.status)
            return document

        api_path = next((path[len(p) :] for p in _API_PREFIXES if path.startswith(p + "/")), None)
        matched = None
        segments: tuple[str, ...] = ()
        if api_path is not None:
            segments = tuple(unquote(segment) for segment in api_path.strip("/").split("/"))
            matched = match_route(method, segments)
        if matched is None:
            self.stats.record(method, "(unmatched)", 404)
            return json_reply(404, INVALID_URL)
        route, params = matched
        request = Request(
            method=method,
            target=handler.path,
            segments=segments,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=handler.headers,
            body=body,
        )
        faults = self.faults
        template = route.template
        if "id" in params and route.pattern[0] == "sms" and is_batch(request, params["id"], faults):
            template = template.replace("{id}", "{ids}")

        reply = self._answer(route, request, params, faults)
        self.stats.record(method, template, _DROPPED if reply is None else reply.status)
        if reply is None:
            return None
        if faults.json_ascii_only:
            reply = ascii_only(reply)
        query_id = ("X-Ovh-QueryId", f"EU.emulator.{next(self._query_ids)}")
        return Reply(reply.status, reply.body, reply.content_type, (*reply.headers, query_id), reply.is_json)

    def _answer(self, route: Route, request: Request, params: dict[str, str], faults: Faults) -> Reply | None:
        """The route's reply, after the faults (signed routes only) and the signature check; None: drop."""
        context = Context(self._store, faults, self._dice, self._server_now, self.base_url)
        if not route.signed:
            return answer(route, context, request, params)
        injection = inject(faults, self._dice, self._bucket)
        if injection.drop:
            return None
        if injection.reply is not None:
            return injection.reply
        credentials = DemoCredentials(self.application_key, self.application_secret, self.consumer_key)
        refused = check_signature(request, credentials, self._server_now(), self.base_url)
        if refused is not None:
            return refused
        reply = answer(route, context, request, params)
        return truncate_success(reply) if injection.malformed else reply

    def _control(self, handler: _Handler, method: str, path: str) -> Reply:
        if handler.client_address[0] not in (LOOPBACK, "::1"):
            return json_reply(403, {"message": "Loopback only"})
        if method == "GET" and path == "/_emulator/stats":
            return json_reply(200, self.stats.snapshot())
        if method == "POST" and path == "/_emulator/stats/reset":
            self.stats.reset()
            return json_reply(200, None)
        return json_reply(404, INVALID_URL)
