"""A loopback HTTP server that behaves like OVH API v1 for the SMS history calls the archiver makes.

It verifies python-ovh 1.2.0 signatures, serves ``/1.0/sms/...`` and ``/1.0/me/document/...`` from
in-memory data, and injects faults (latency, dropped connections, 429, 500, truncated JSON) on demand.
Facts about the real API come from docs/ovh-api.md; every behaviour it marks UNKNOWN
is an assumption here, commented where it is made.

Threading: one handler thread per connection (HTTP/1.1 keep-alive, as python-ovh uses a requests
Session). All data sits behind one lock in ``_Store``; stored records are never mutated in place
(updates replace the dict), so a reference taken under the lock can be serialised after releasing it.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import math
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final, Literal
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from archiver.emulator.data import (
    PARIS,
    ServiceData,
    format_api_datetime,
    generate_sample_data,
    incoming_csv,
    outgoing_csv,
)

__all__ = [
    "DEMO_CREDENTIALS",
    "DemoCredentials",
    "EmulatorServer",
    "Faults",
    "RequestStats",
    "serve_forever_cli",
]

# stdlib logging (stderr) rather than structlog's default stdout renderer: the standalone command's
# stdout carries the one JSON line its caller parses.
_log = logging.getLogger(__name__)

Direction = Literal["outgoing", "incoming"]
_DIRECTIONS: Final = ("outgoing", "incoming")
_LOOPBACK: Final = "127.0.0.1"
_API_PREFIXES: Final = ("/1.0", "/v1")
# Third-party emulators and OVH's "Query out of time" message suggest a 180 s tolerance (docs/ovh-api.md,
# "Clock").
_TIMESTAMP_TOLERANCE_SECONDS: Final = 180
_MAX_BATCH_IDS: Final = 500
# The CSV export covers at most 12 months (docs/ovh-api.md, "CSV export"); a day of slack for leap years
# and rounding.
_MAX_EXPORT_PERIOD: Final = timedelta(days=366)
_DEFAULT_EXPORT_PERIOD: Final = timedelta(days=365)
_DOCUMENT_GENERATION_SECONDS: Final = 0.3
_DROPPED: Final = 0  # status recorded in the stats for a connection closed without any response

_OUTGOING_INT_FILTERS: Final = ("deliveryReceipt", "differedDelivery", "ptt")
_OUTGOING_STR_FILTERS: Final = ("batchID", "messageID", "receiver", "sender", "tag")
_INCOMING_STR_FILTERS: Final = ("sender", "tag")

# GET /sms/ptts texts, paraphrasing the OVH guide (docs/ovh-api.md, "Delivery statuses"); durations are our
# reading of it.
_PTTS: Final[dict[int, tuple[str, str, str]]] = {
    1: ("Not delivered yet: problem on the phone side, being retried", "Intermediate state", "temporary"),
    2: (
        "Not delivered yet: problem on the operator side, retried in the network",
        "Intermediate state",
        "temporary",
    ),
    3: ("Accepted by the operator", "Intermediate state", "temporary"),
    4: ("The message was delivered", "Delivered", "permanent"),
    5: ("Confirmed undelivered, no detail given", "Undelivered", "permanent"),
    6: ("Final state unknown: the operator gave no final delivery information", "Unknown", "indeterminated"),
    8: ("Expired inside the operator SMSC, no failure reason", "Expired", "permanent"),
    20: ("Undeliverable in its current form", "Undeliverable", "permanent"),
    21: ("Expired after retries for lack of subscriber credit", "Expired", "permanent"),
    23: ("Invalid, blacklisted or permanently barred MSISDN", "Invalid number", "permanent"),
    24: ("Subscriber temporarily absent (phone off, out of network)", "Absent subscriber", "temporary"),
    25: ("Temporary operator network failure (SS7, SMSC, gateway)", "Network failure", "temporary"),
    26: ("Temporary phone error (SIM full, busy, memory)", "Phone error", "temporary"),
    27: ("Handset permanently incompatible with this message type", "Incompatible handset", "permanent"),
    28: ("Rejected as suspected spam", "Spam", "permanent"),
    29: ("Content not permitted on this network or shortcode", "Content refused", "permanent"),
    33: ("Adult content blocked by parental lock", "Parental lock", "permanent"),
    39: ("New operator failure", "Operator failure", "indeterminated"),
    73: ("Ported combinations unreachable", "Ported number", "permanent"),
    74: ("MSISDN roaming", "Roaming", "temporary"),
    76: ("Ported combinations blocked for the client (blacklisted at destination)", "Blocked", "permanent"),
    202: ("Ported combinations blocked for the client (contact support)", "Blocked", "permanent"),
}


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    """Fixed, public credentials for the emulator (never valid against the real API)."""

    application_key: str
    application_secret: str
    consumer_key: str


DEMO_CREDENTIALS: Final = DemoCredentials(
    application_key="demo-application-key",
    application_secret="demo-application-secret",  # noqa: S106 - a public demo value, not a secret
    consumer_key="demo-consumer-key",
)


@dataclass(slots=True)
class Faults:
    """Failure knobs, read afresh on every request, so tests can change them while serving.

    Rates are probabilities in [0, 1]. Setting a different ``seed`` while serving restarts the
    dice sequence (the same seed twice in a row does not).
    """

    latency_seconds: float = 0.0
    rate_limit_per_second: float | None = None
    error_rate_500: float = 0.0
    error_rate_429: float = 0.0
    retry_after_seconds: float = 1.0
    drop_rate: float = 0.0
    malformed_json_rate: float = 0.0
    batch_supported: bool = True
    export_supported: bool = True
    clock_skew_seconds: int = 0  # the server's clock minus the real one
    seed: int | None = None
    # Id listings cut at this many ids (None: whole), keeping the "newest" or the "oldest" ids of the
    # window. Whether and how OVH caps a listing is UNKNOWN (docs/ovh-api.md, "Listings").
    listing_cap: int | None = None
    listing_cap_keep: str = "newest"
    # Share of batch elements answered as {"key": k, "value": null} with no error for records that do
    # exist: the keys of batch elements are UNKNOWN, so "null" must not be read as "deleted".
    batch_null_rate: float = 0.0
    # The CSV export's zone-less dates are written in this zone (None: Europe/Paris, the assumed answer).
    export_date_zone: str | None = None
    # What the export's ``date`` column holds: the creation time (assumed) or the send time (UNKNOWN).
    export_date_field: Literal["creationDatetime", "sentAt"] = "creationDatetime"
    # Answer API JSON with every non-ASCII character as a ``\\uXXXX`` escape, as JSON servers may:
    # a client must read both forms the same.
    json_ascii_only: bool = False


class RequestStats:
    """Thread-safe request counters: total, per (method, route template) and per HTTP status.

    A connection dropped on purpose counts under status 0. The control routes are not counted.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._by_route: Counter[tuple[str, str]] = Counter()
        self._by_status: Counter[int] = Counter()

    def record(self, method: str, route: str, status: int) -> None:
        """Count one request."""
        with self._lock:
            self._total += 1
            self._by_route[(method, route)] += 1
            self._by_status[status] += 1

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self._total = 0
            self._by_route.clear()
            self._by_status.clear()

    @property
    def total(self) -> int:
        """Number of requests counted since the last reset."""
        with self._lock:
            return self._total

    def count(self, method: str, route: str) -> int:
        """Requests to one route template, e.g. ``count("GET", "/sms/{sn}/outgoing/{id}")``."""
        with self._lock:
            return self._by_route[(method, route)]

    def status_count(self, status: int) -> int:
        """Requests answered with ``status`` (0 for dropped connections)."""
        with self._lock:
            return self._by_status[status]

    def snapshot(self) -> dict[str, Any]:
        """Return a JSON-ready copy: ``{"total", "by_route": {"GET /path": n}, "by_status": {"200": n}}``."""
        with self._lock:
            return {
                "total": self._total,
                "by_route": {f"{method} {route}": n for (method, route), n in sorted(self._by_route.items())},
                "by_status": {str(status): n for status, n in sorted(self._by_status.items())},
            }


# --- data ------------------------------------------------------------------------------------------


def _parse_instant(text: str) -> float:
    """Parse an ISO 8601 datetime or a plain date into epoch seconds (ValueError if invalid).

    ASSUMPTION: a value without offset (including a plain date, read as midnight) is Paris local time.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PARIS)
    return moment.timestamp()


def _record_epoch(record: Mapping[str, Any]) -> float:
    created = record.get("creationDatetime")
    if not isinstance(created, str):
        raise ValueError("a record needs a creationDatetime string")
    return _parse_instant(created)


def _record_id(record: Mapping[str, Any]) -> int:
    sms_id = record.get("id")
    if not isinstance(sms_id, int) or isinstance(sms_id, bool):
        raise ValueError("a record needs an integer id")
    return sms_id


class _Collection:
    """The records of one service and direction, with an index sorted by creation instant.

    The index is sorted lazily: inserts append, and the next range query re-sorts (timsort is
    linear on the mostly-sorted lists this produces), so bulk loads stay fast.
    """

    def __init__(self) -> None:
        self.records: dict[int, dict[str, Any]] = {}
        self.epochs: dict[int, float] = {}
        self.corrupt: dict[int, object] = {}
        self._index: list[tuple[float, int]] = []
        self._sorted = True

    def put(self, record: Mapping[str, Any]) -> None:
        sms_id = _record_id(record)
        epoch = _record_epoch(record)
        if sms_id in self.records:
            self._unindex(sms_id)
        self.records[sms_id] = dict(record)
        self.epochs[sms_id] = epoch
        entry = (epoch, sms_id)
        if self._index and entry < self._index[-1]:
            self._sorted = False
        self._index.append(entry)

    def remove(self, sms_id: int) -> dict[str, Any]:
        self._unindex(sms_id)
        del self.epochs[sms_id]
        self.corrupt.pop(sms_id, None)
        return self.records.pop(sms_id)

    def ids_between(self, low: float | None, high: float | None) -> list[int]:
        """Ids created in [low, high] (both inclusive; None = unbounded), oldest first."""
        self._ensure_sorted()
        start = 0 if low is None else bisect.bisect_left(self._index, (low,))
        stop = len(self._index) if high is None else bisect.bisect_right(self._index, (high, math.inf))
        return [sms_id for _, sms_id in self._index[start:stop]]

    def _ensure_sorted(self) -> None:
        if not self._sorted:
            self._index.sort()
            self._sorted = True

    def _unindex(self, sms_id: int) -> None:
        self._ensure_sorted()
        entry = (self.epochs[sms_id], sms_id)
        position = bisect.bisect_left(self._index, entry)
        del self._index[position]


@dataclass(slots=True)
class _Document:
    id: str
    name: str
    content: bytes
    created: datetime
    created_monotonic: float
    polls: int = 0


class _Store:
    """All mutable emulator data, behind one lock."""

    def __init__(self, services: Mapping[str, ServiceData]) -> None:
        self.lock = threading.Lock()
        self.services: dict[str, dict[str, _Collection]] = {}
        self.documents: dict[str, _Document] = {}
        self.deleted: list[tuple[str, str, int]] = []
        for name, data in services.items():
            self.ensure_service(name)
            for record in data.outgoing.values():
                self.services[name]["outgoing"].put(record)
            for record in data.incoming.values():
                self.services[name]["incoming"].put(record)

    def ensure_service(self, name: str) -> dict[str, _Collection]:
        if name not in self.services:
            self.services[name] = {direction: _Collection() for direction in _DIRECTIONS}
        return self.services[name]


# --- HTTP plumbing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    is_json: bool = True


def _json_reply(status: int, payload: object, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    try:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a test's malformed record): JSON escapes carry it
        body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return _Reply(status, body, headers=headers)


class _ApiError(Exception):
    """Raised by a route handler to answer with an error status and JSON body."""

    def __init__(self, status: int, payload: Mapping[str, object]) -> None:
        super().__init__(status, payload)
        self.status = status
        self.payload = payload


def _not_found(what: str, value: object) -> _ApiError:
    return _ApiError(
        404,
        {"class": "Client::NotFound", "message": f"The requested object ({what} = {value}) does not exist"},
    )


def _bad_parameter(message: str) -> _ApiError:
    return _ApiError(400, {"class": "Client::BadRequest", "message": message})


_INVALID_URL: Final = {"message": "Got an invalid (or empty) URL"}


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    target: str  # the request target exactly as received (path + raw query string)
    segments: tuple[str, ...]  # decoded API path segments, without the /1.0 prefix
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: tuple[str, ...]  # literal segments, or "{name}" placeholders
    handler_name: str
    signed: bool = True

    @property
    def template(self) -> str:
        return "/" + "/".join(self.pattern)


def _build_routes() -> tuple[_Route, ...]:
    routes = [
        _Route("GET", ("auth", "time"), "_auth_time", signed=False),
        _Route("GET", ("sms",), "_list_services"),
        _Route("GET", ("sms", "ptts"), "_ptt_details"),
        _Route("GET", ("sms", "{sn}"), "_get_account"),
        _Route("GET", ("sms", "{sn}", "document"), "_create_document"),
        _Route("GET", ("me", "document", "{id}"), "_get_document"),
        _Route("DELETE", ("me", "document", "{id}"), "_delete_document"),
    ]
    for direction in _DIRECTIONS:
        routes += [
            _Route("GET", ("sms", "{sn}", direction), "_list_records"),
            _Route("GET", ("sms", "{sn}", direction, "{id}"), "_get_record"),
            _Route("DELETE", ("sms", "{sn}", direction, "{id}"), "_delete_record"),
        ]
    return tuple(routes)


_ROUTES: Final = _build_routes()


def _match_route(method: str, segments: tuple[str, ...]) -> tuple[_Route, dict[str, str]] | None:
    # Routes with more literal segments come first in _ROUTES where they could clash (sms/ptts).
    for route in _ROUTES:
        if route.method != method or len(route.pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        for expected, actual in zip(route.pattern, segments, strict=True):
            if expected.startswith("{"):
                params[expected[1:-1]] = actual
            elif expected != actual:
                break
        else:
            return route, params
    return None


def _scrambled(ids: list[int]) -> list[int]:
    """Return ids in a stable but unsorted order: the real order is UNKNOWN, clients must not rely on it."""
    return sorted(ids, key=lambda sms_id: ((sms_id * 2654435761) & 0xFFFFFFFF, sms_id))


class _TokenBucket:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rate: float | None = None
        self._tokens = 0.0
        self._last = 0.0

    def take(self, rate: float) -> float:
        """Take one token; return 0 if granted, else the seconds until one is available."""
        with self._lock:
            now = time.monotonic()
            if rate <= 0:
                return math.inf
            capacity = max(1.0, rate)
            if self._rate != rate:
                # A changed limit starts with a full bucket, like a fresh server would.
                self._rate, self._tokens = rate, capacity
            else:
                self._tokens = min(capacity, self._tokens + (now - self._last) * rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / rate


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
            reply = _json_reply(500, {"message": f"Emulator bug: {type(error).__name__}: {error}"})
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


# --- the emulator ----------------------------------------------------------------------------------


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
        host: str = _LOOPBACK,
        port: int = 0,
    ) -> None:
        if host != _LOOPBACK:
            raise ValueError(f"the emulator only binds {_LOOPBACK}, not {host!r}")
        self.application_key = application_key
        self.application_secret = application_secret
        self.consumer_key = consumer_key
        self.faults = faults if faults is not None else Faults()
        self.stats = RequestStats()
        self._host = host
        self._requested_port = port
        self._store = _Store(services or {})
        self._bucket = _TokenBucket()
        self._rng_lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)  # noqa: S311 - fault dice, not security
        self._rng_seed = self.faults.seed
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

    def _collection_for_test(self, service: str, direction: str) -> _Collection:
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be outgoing or incoming, not {direction!r}")
        with self._store.lock:
            return self._store.services[service][direction]

    # request processing (called from handler threads)

    def _server_now(self) -> float:
        return time.time() + self.faults.clock_skew_seconds

    def now(self) -> datetime:
        """The time on the emulated server's clock (``clock_skew_seconds`` away from the real one)."""
        return datetime.fromtimestamp(self._server_now(), tz=PARIS)

    def _dispatch(self, handler: _Handler, body: bytes) -> _Reply | None:
        """Answer one request; None means drop the connection without a response."""
        split = urlsplit(handler.path)
        path = split.path
        method = handler.command

        if path.startswith("/_emulator/"):
            return self._control(handler, method, path)
        if path.startswith("/_download/"):
            download = self._download(path.removeprefix("/_download/"), method)
            self.stats.record(method, "/_download/{id}", download.status)
            return download

        api_path = next((path[len(p) :] for p in _API_PREFIXES if path.startswith(p + "/")), None)
        matched = None
        segments: tuple[str, ...] = ()
        if api_path is not None:
            segments = tuple(unquote(segment) for segment in api_path.strip("/").split("/"))
            matched = _match_route(method, segments)
        if matched is None:
            self.stats.record(method, "(unmatched)", 404)
            return _json_reply(404, _INVALID_URL)
        route, params = matched
        request = _Request(
            method=method,
            target=handler.path,
            segments=segments,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=handler.headers,
            body=body,
        )
        template = route.template
        if "id" in params and route.pattern[0] == "sms" and self._is_batch(request, params["id"]):
            template = template.replace("{id}", "{ids}")

        reply = self._answer(route, request, params, handler)
        self.stats.record(method, template, _DROPPED if reply is None else reply.status)
        if reply is not None:
            if self.faults.json_ascii_only:
                reply = _ascii_only(reply)
            reply = _Reply(
                reply.status,
                reply.body,
                reply.content_type,
                (*reply.headers, ("X-Ovh-QueryId", f"EU.emulator.{next(self._query_ids)}")),
                reply.is_json,
            )
        return reply

    def _answer(self, route: _Route, request: _Request, params: dict[str, str], handler: _Handler) -> _Reply | None:
        malformed = False
        if route.signed:
            faults = self.faults
            if faults.latency_seconds > 0:
                time.sleep(faults.latency_seconds)
            if self._roll(faults.drop_rate):
                return None
            if faults.rate_limit_per_second is not None:
                wait = self._bucket.take(faults.rate_limit_per_second)
                if wait > 0:
                    retry_after = faults.retry_after_seconds if math.isinf(wait) else wait
                    return self._too_many(retry_after)
            if self._roll(faults.error_rate_429):
                return self._too_many(faults.retry_after_seconds)
            if self._roll(faults.error_rate_500):
                return _json_reply(500, {"message": "Internal server error"})
            malformed = self._roll(faults.malformed_json_rate)
            refused = self._check_signature(request, handler)
            if refused is not None:
                return refused
        try:
            route_handler: Callable[[_Request, dict[str, str]], _Reply] = getattr(self, route.handler_name)
            reply = route_handler(request, params)
        except _ApiError as error:
            reply = _json_reply(error.status, error.payload)
        if malformed and 200 <= reply.status < 300 and reply.is_json:
            reply = _Reply(reply.status, _truncated(reply.body), reply.content_type, reply.headers)
        return reply

    def _roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._rng_lock:
            if self.faults.seed != self._rng_seed:
                # A new seed set at runtime restarts the sequence, for reproducible fault runs.
                self._rng_seed = self.faults.seed
                self._rng.seed(self._rng_seed)
            return self._rng.random() < probability

    @staticmethod
    def _too_many(retry_after: float) -> _Reply:
        seconds = max(0, math.ceil(retry_after))
        return _json_reply(429, {"message": "Too many requests"}, (("Retry-After", str(seconds)),))

    def _check_signature(self, request: _Request, handler: _Handler) -> _Reply | None:
        headers = request.headers
        if headers.get("X-Ovh-Application") != self.application_key:
            return _json_reply(
                403,
                {
                    "errorCode": "INVALID_KEY",
                    "httpCode": "403 Forbidden",
                    "message": "Invalid application key",
                },
            )
        if headers.get("X-Ovh-Consumer") != self.consumer_key:
            return _json_reply(
                403,
                {
                    "errorCode": "INVALID_CREDENTIAL",
                    "httpCode": "403 Forbidden",
                    "message": "This credential is not valid",
                },
            )
        timestamp = headers.get("X-Ovh-Timestamp") or ""
        if not timestamp.isdigit() or abs(int(timestamp) - self._server_now()) > _TIMESTAMP_TOLERANCE_SECONDS:
            return _json_reply(
                400,
                {
                    "errorCode": "QUERY_TIME_OUT",
                    "httpCode": "400 Bad Request",
                    "message": "Query out of time",
                },
            )
        signature = headers.get("X-Ovh-Signature") or ""
        body = request.body.decode("utf-8", errors="surrogateescape")
        # The client signs the URL it built: the registered endpoint (our bound address) + path + raw
        # query. Accept the Host it sent too, so "localhost" endpoints also verify.
        bases = {self.base_url}
        if handler.headers.get("Host"):
            bases.add(f"http://{handler.headers['Host']}")
        for base in bases:
            material = "+".join(
                (
                    self.application_secret,
                    self.consumer_key,
                    request.method,
                    base + request.target,
                    body,
                    timestamp,
                )
            )
            digest = hashlib.sha1(material.encode("utf-8", errors="surrogateescape"))  # noqa: S324 - OVH's scheme
            expected = "$1$" + digest.hexdigest()
            if hmac.compare_digest(expected, signature):
                return None
        return _json_reply(
            400,
            {"errorCode": "INVALID_SIGNATURE", "httpCode": "400 Bad Request", "message": "Invalid signature"},
        )

    # route handlers: each returns a reply or raises _ApiError

    def _auth_time(self, request: _Request, params: dict[str, str]) -> _Reply:
        return _json_reply(200, int(self._server_now()))

    def _list_services(self, request: _Request, params: dict[str, str]) -> _Reply:
        with self._store.lock:
            names = sorted(self._store.services)
        return _json_reply(200, names)

    def _service(self, name: str) -> dict[str, _Collection]:
        """Must hold the store lock."""
        try:
            return self._store.services[name]
        except KeyError:
            raise _not_found("serviceName", name) from None

    def _get_account(self, request: _Request, params: dict[str, str]) -> _Reply:
        name = params["sn"]
        with self._store.lock:
            self._service(name)
        return _json_reply(
            200,
            {
                "name": name,
                "description": "",
                "status": "enable",
                "creditsLeft": 1234.5,
                "creditsHoldByQuota": 0.0,
                "callBack": "",
                "stopCallBack": "",
                "channel": "http",
                "userQuantityWithQuota": 0,
            },
        )

    def _ptt_details(self, request: _Request, params: dict[str, str]) -> _Reply:
        value = request.param("ptt")
        if value is None:
            raise _bad_parameter("[ptt] Missing parameter")
        ptt = _parse_int("ptt", value)
        if ptt not in _PTTS:
            raise _not_found("ptt", ptt)
        comment, description, duration = _PTTS[ptt]
        return _json_reply(200, {"comment": comment, "description": description, "duration": duration})

    def _date_filters(self, request: _Request) -> tuple[float | None, float | None]:
        bounds: list[float | None] = []
        for name in ("creationDatetime.from", "creationDatetime.to"):
            value = request.param(name)
            if value is None:
                bounds.append(None)
                continue
            try:
                bounds.append(_parse_instant(value))
            except ValueError:
                raise _bad_parameter(f"[{name}] Given data ({value}) is not valid for type datetime") from None
        return bounds[0], bounds[1]

    def _list_records(self, request: _Request, params: dict[str, str]) -> _Reply:
        direction = request.segments[2]
        low, high = self._date_filters(request)
        wanted: dict[str, object] = {}
        if direction == "outgoing":
            for name in _OUTGOING_INT_FILTERS:
                value = request.param(name)
                if value is not None:
                    wanted[name] = _parse_int(name, value)
        for name in _OUTGOING_STR_FILTERS if direction == "outgoing" else _INCOMING_STR_FILTERS:
            value = request.param(name)
            if value is not None:
                wanted[name] = value
        with self._store.lock:
            collection = self._service(params["sn"])[direction]
            ids = collection.ids_between(low, high)
            if wanted:
                records = collection.records
                ids = [
                    sms_id
                    for sms_id in ids
                    if all(records[sms_id].get(name) == value for name, value in wanted.items())
                ]
        cap = self.faults.listing_cap
        if cap is not None and len(ids) > cap:
            # ids_between answers oldest first.
            ids = ids[-cap:] if self.faults.listing_cap_keep == "newest" else ids[:cap]
        return _json_reply(200, _scrambled(ids))

    def _is_batch(self, request: _Request, id_segment: str) -> bool:
        separator = request.headers.get("X-Ovh-Batch")
        if not separator or request.method != "GET":
            return False
        return self.faults.batch_supported or separator in id_segment

    def _get_record(self, request: _Request, params: dict[str, str]) -> _Reply:
        direction = request.segments[2]
        id_segment = params["id"]
        if not self._is_batch(request, id_segment):
            sms_id = _parse_int("id", id_segment)
            with self._store.lock:
                collection = self._service(params["sn"])[direction]
                if sms_id not in collection.records:
                    raise _not_found("id", sms_id)
                value = collection.corrupt.get(sms_id, collection.records[sms_id])
            return _json_reply(200, value)

        if not self.faults.batch_supported:
            raise _ApiError(400, {"message": "Invalid batch request"})
        separator = str(request.headers.get("X-Ovh-Batch"))
        keys = id_segment.split(separator)
        if len(keys) > _MAX_BATCH_IDS:
            raise _ApiError(400, {"message": f"Too many ids in batch request (max {_MAX_BATCH_IDS})"})
        elements: list[dict[str, object]] = []
        with self._store.lock:
            collection = self._service(params["sn"])[direction]
            for key in keys:
                try:
                    sms_id = int(key)
                except ValueError:
                    elements.append({"key": key, "value": None, "error": "Invalid parameter id"})
                    continue
                if sms_id in collection.records and self._roll(self.faults.batch_null_rate):
                    elements.append({"key": key, "value": None})
                elif sms_id in collection.records:
                    value = collection.corrupt.get(sms_id, collection.records[sms_id])
                    elements.append({"key": key, "value": value, "error": None})
                else:
                    elements.append({"key": key, "value": None, "error": "Not found"})
        return _json_reply(200, elements)

    def _delete_record(self, request: _Request, params: dict[str, str]) -> _Reply:
        # ASSUMPTION: batch DELETE is not emulated; whether OVH accepts it is UNKNOWN.
        direction = request.segments[2]
        sms_id = _parse_int("id", params["id"])
        with self._store.lock:
            collection = self._service(params["sn"])[direction]
            if sms_id not in collection.records:
                raise _not_found("id", sms_id)
            collection.remove(sms_id)
            self._store.deleted.append((params["sn"], direction, sms_id))
        return _json_reply(200, None)

    def _create_document(self, request: _Request, params: dict[str, str]) -> _Reply:
        if not self.faults.export_supported:
            raise _ApiError(404, _INVALID_URL)
        service = params["sn"]
        way = request.param("wayType")
        if way is None:
            raise _bad_parameter("[wayType] Missing parameter")
        if way not in _DIRECTIONS:
            raise _bad_parameter(
                f"[wayType] Given data ({way}) does not belong to the sms.DocumentWayTypeEnum enumeration"
            )
        low, high = self._date_filters(request)
        # ASSUMPTION: without dates the export covers the last 12 months (the real default is UNKNOWN).
        high = self._server_now() if high is None else high
        low = high - _DEFAULT_EXPORT_PERIOD.total_seconds() if low is None else low
        if high - low > _MAX_EXPORT_PERIOD.total_seconds():
            raise _ApiError(400, {"message": "Period too long"})
        tag = request.param("tag")
        batch_id = request.param("batchID") if way == "outgoing" else None
        with self._store.lock:
            collection = self._service(service)[way]
            selected = [
                collection.records[sms_id]
                for sms_id in collection.ids_between(low, high)
                if (tag is None or collection.records[sms_id].get("tag") == tag)
                and (batch_id is None or collection.records[sms_id].get("batchID") == batch_id)
            ]
        zone = ZoneInfo(self.faults.export_date_zone) if self.faults.export_date_zone else PARIS
        content = (
            outgoing_csv(selected, zone=zone, date_field=self.faults.export_date_field)
            if way == "outgoing"
            else incoming_csv(selected, zone=zone)
        )
        created = datetime.fromtimestamp(self._server_now(), tz=PARIS)
        document = _Document(
            id=str(uuid.uuid4()),
            name=f"sms-{way}-{service}-{created:%Y%m%d%H%M%S}.csv",
            content=content,
            created=created,
            created_monotonic=time.monotonic(),
        )
        with self._store.lock:
            self._store.documents[document.id] = document
        return _json_reply(200, document.id)

    def _get_document(self, request: _Request, params: dict[str, str]) -> _Reply:
        document_id = params["id"]
        with self._store.lock:
            document = self._store.documents.get(document_id)
            if document is None:
                raise _not_found("id", document_id)
            document.polls += 1
            # Simulated generation: the first poll sees an empty document, like OVH's "size: 0".
            ready = document.polls > 1 or time.monotonic() - document.created_monotonic >= _DOCUMENT_GENERATION_SECONDS
        return _json_reply(
            200,
            {
                "id": document.id,
                "name": document.name,
                "size": len(document.content) if ready else 0,
                "getUrl": f"{self.base_url}/_download/{document.id}.csv",
                "putUrl": f"{self.base_url}/_upload/{document.id}",
                "creationDate": format_api_datetime(document.created),
                "expirationDate": format_api_datetime(document.created + timedelta(days=1)),
                "validationDate": None,
                "tags": [],
            },
        )

    def _delete_document(self, request: _Request, params: dict[str, str]) -> _Reply:
        with self._store.lock:
            if self._store.documents.pop(params["id"], None) is None:
                raise _not_found("id", params["id"])
        return _json_reply(200, None)

    # unsigned routes

    def _download(self, name: str, method: str) -> _Reply:
        document_id = name.removesuffix(".csv")
        with self._store.lock:
            document = self._store.documents.get(document_id) if method == "GET" else None
        if document is None:
            return _json_reply(404, {"message": "Document not found"})
        return _Reply(200, document.content, content_type="text/csv; charset=utf-8", is_json=False)

    def _control(self, handler: _Handler, method: str, path: str) -> _Reply:
        if handler.client_address[0] not in (_LOOPBACK, "::1"):
            return _json_reply(403, {"message": "Loopback only"})
        if method == "GET" and path == "/_emulator/stats":
            return _json_reply(200, self.stats.snapshot())
        if method == "POST" and path == "/_emulator/stats/reset":
            self.stats.reset()
            return _json_reply(200, None)
        return _json_reply(404, _INVALID_URL)


def _parse_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _bad_parameter(f"[{name}] Given data ({value}) is not valid for type long") from None


def _truncated(body: bytes) -> bytes:
    """Cut a JSON body in half; never return something that still parses (e.g. half of ``12345``)."""
    half = body[: len(body) // 2]
    try:
        json.loads(half)
    except ValueError:
        return half
    return b""


def _ascii_only(reply: _Reply) -> _Reply:
    """The reply re-encoded with every non-ASCII character escaped, if it is well-formed JSON."""
    if not reply.is_json:
        return reply
    try:
        payload = json.loads(reply.body)
    except ValueError:  # a truncated body stays as cut
        return reply
    body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return _Reply(reply.status, body, reply.content_type, reply.headers, reply.is_json)


# --- standalone command ----------------------------------------------------------------------------


def _split_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("at least one service name is required")
    return names


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sms-archiver emulator",
        description="Serve an OVH API v1 SMS emulator on loopback until SIGTERM or SIGINT.",
    )
    parser.add_argument("--host", default=_LOOPBACK, choices=[_LOOPBACK], help="always 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    parser.add_argument("--services", type=_split_names, default=["sms-demo12345-1"], help="a,b,...")
    parser.add_argument("--outgoing", type=int, default=250, help="outgoing records in total")
    parser.add_argument("--incoming", type=int, default=40, help="incoming records in total")
    parser.add_argument("--days", type=int, default=90, help="history depth in days")
    parser.add_argument("--seed", type=int, default=1, help="data and fault seed")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second")
    parser.add_argument("--error-rate-500", type=float, default=0.0)
    parser.add_argument("--error-rate-429", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--malformed-json-rate", type=float, default=0.0)
    parser.add_argument("--no-batch", action="store_true", help="refuse X-Ovh-Batch requests")
    parser.add_argument("--no-export", action="store_true", help="answer 404 to /sms/{sn}/document")
    parser.add_argument(
        "--clock-offset-seconds", type=int, default=0, help="the server's clock minus the real one (e.g. -3600)"
    )
    parser.add_argument("--listing-cap", type=int, default=None, help="cut id listings at N ids")
    parser.add_argument(
        "--listing-cap-keep",
        choices=["newest", "oldest"],
        default="newest",
        help="which ids a cut listing keeps (default: newest)",
    )
    parser.add_argument(
        "--batch-null-rate", type=float, default=0.0, help="share of batch elements answered as value null, no error"
    )
    parser.add_argument(
        "--export-date-zone", default=None, type=_zone_name, help="write the export's dates in this zone (IANA name)"
    )
    parser.add_argument(
        "--export-date-field",
        default="creationDatetime",
        choices=["creationDatetime", "sentAt"],
        help="what the export's date column holds (default: the creation time)",
    )
    return parser


def _zone_name(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ValueError, KeyError) as error:  # ZoneInfoNotFoundError is a KeyError
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r}") from error
    return text


def serve_forever_cli(argv: list[str] | None = None) -> int:
    """Run the emulator in the foreground; print one JSON line (url + demo credentials) on stdout.

    Serves until SIGTERM or SIGINT, then returns 0. Must run in the main thread (signal handlers).
    """
    options = _build_parser().parse_args(argv)
    faults = Faults(
        latency_seconds=options.latency_ms / 1000,
        rate_limit_per_second=options.rate_limit,
        error_rate_500=options.error_rate_500,
        error_rate_429=options.error_rate_429,
        drop_rate=options.drop_rate,
        malformed_json_rate=options.malformed_json_rate,
        batch_supported=not options.no_batch,
        export_supported=not options.no_export,
        clock_skew_seconds=options.clock_offset_seconds,
        seed=options.seed,
        listing_cap=options.listing_cap,
        listing_cap_keep=options.listing_cap_keep,
        batch_null_rate=options.batch_null_rate,
        export_date_zone=options.export_date_zone,
        export_date_field=options.export_date_field,
    )
    services = generate_sample_data(
        services=options.services,
        outgoing=options.outgoing,
        incoming=options.incoming,
        days=options.days,
        seed=options.seed,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with EmulatorServer(**asdict(DEMO_CREDENTIALS), services=services, faults=faults, port=options.port) as server:
            line = {"url": server.url, **asdict(DEMO_CREDENTIALS)}
            print(json.dumps(line), flush=True)
            while not stop.wait(timeout=1.0):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
