"""The OVH side: every API call goes through python-ovh, one rate limiter and one retry policy.

``OvhSource`` lists services and SMS ids, fetches records (``per-id`` concurrent GETs or ``batch``
with OVH's ``X-Ovh-Batch`` header, ``auto`` probing batch once and falling back), deletes records,
and turns OVH's refusals into errors that say what to fix. It never logs credentials, signatures
or request headers.

Why ``raw_call``: python-ovh's ``call()`` takes no headers and hides response headers, and we need
both (``X-Ovh-Batch``, ``Retry-After``). We map statuses to errors ourselves, as ``call()`` does.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import random
import socket
import tempfile
import threading
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlencode, urlsplit

import ovh
import ovh.client
import requests
import requests.adapters
import requests.utils
import structlog

from archiver.config import OvhSettings
from archiver.errors import AuthError, ConfigError, NotGrantedError, SourceError
from archiver.naming import Direction
from archiver.records import PTT_DESCRIPTIONS, describe_ptt

__all__ = [
    "CLOCK_TOLERANCE_SECONDS",
    "GONE",
    "AdaptiveConcurrency",
    "ExportUnavailable",
    "OvhSource",
    "RateLimiter",
    "backoff_delay",
]

log = structlog.get_logger()

GONE: Any = None  # what fetch yields for an id the API no longer has (404)
_EXPORT_WINDOW = dt.timedelta(days=365)  # a CSV export document covers at most 12 months
_EXPORT_POLLS = 120
_EXPORT_POLL_SECONDS = 1.0  # as OVH's Control Panel polls
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# python-ovh measures the clock difference to the second; beyond this we say so (NTP keeps well within it).
CLOCK_TOLERANCE_SECONDS = 30
_AUTH_CODES = frozenset({"INVALID_KEY", "INVALID_CREDENTIAL", "NOT_CREDENTIAL", "INVALID_SIGNATURE"})


class _ClockSkew(AuthError):
    """OVH refused the request timestamp: the machine's clock differs from OVH's."""


class _NotFound(Exception):
    """A 404, kept apart because callers decide what absence means."""


class _Retryable(Exception):
    def __init__(
        self, message: str, retry_after: float | None = None, *, throttled: bool = False, refused: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        self.refused = refused


# A refused connection means nothing listens at the endpoint: most often a wrong endpoint, sometimes a
# proxy restarting. Retried a little (about 1.5 s in all), not for the whole backoff of a real outage.
_REFUSED_RETRIES = 2


def _network_failure(error: BaseException, host: str) -> tuple[str, bool]:
    """Describe a failed connection from the exceptions it chains (requests, urllib3, OSError); say if refused."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending and len(seen) < 20:
        current = pending.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending += [item for item in linked if isinstance(item, BaseException)]
    if any(isinstance(item, ConnectionRefusedError) for item in seen):
        return f"network error: connection refused by {host}", True
    if any(isinstance(item, socket.gaierror) for item in seen):
        return f"network error: cannot resolve the host of {host}", False
    if any(isinstance(item, TimeoutError | requests.Timeout) for item in seen):
        return f"network error: {host} did not answer in time", False
    kinds = [type(item).__name__ for item in seen if type(item).__module__.startswith(("requests", "builtins"))]
    return f"network error talking to {host} ({kinds[-1] if kinds else type(error).__name__})", False


class RateLimiter:
    """A token bucket shared by every thread: at most ``rate`` calls per second, bursts of ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.clock = clock
        self.sleep = sleep
        self.tokens = self.burst
        self.updated = clock()
        self.lock = threading.Lock()
        self.paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (the server said Retry-After)."""
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                wait_for = max(self.paused_until - now, 0.0)
                if wait_for == 0.0 and self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                wait_for = max(wait_for, (1.0 - self.tokens) / self.rate)
            self.sleep(wait_for)


class AdaptiveConcurrency:
    """How many calls may be in flight: halved on a 429, grown by one after a run of successes."""

    def __init__(self, ceiling: int, *, grow_after: int = 20) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self.in_flight = 0
        self.successes = 0
        self.grow_after = grow_after
        self.condition = threading.Condition()

    def __enter__(self) -> AdaptiveConcurrency:
        with self.condition:
            self.condition.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self.condition:
            self.in_flight -= 1
            self.condition.notify_all()

    def throttled(self) -> None:
        with self.condition:
            self.limit = max(1, self.limit // 2)
            self.successes = 0

    def succeeded(self) -> None:
        with self.condition:
            self.successes += 1
            if self.successes >= self.grow_after and self.limit < self.ceiling:
                self.limit += 1
                self.successes = 0
                self.condition.notify_all()


def backoff_delay(attempt: int, retry_after: float | None, *, base: float = 0.5, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter; never sooner than the server's Retry-After."""
    delay = random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not cryptography
    return max(delay, retry_after or 0.0)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            return max(0.0, (parsedate_to_datetime(value) - dt.datetime.now(dt.UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def _access_rule(method: str, path: str) -> str:
    """The access rule a consumer key needs for a call, e.g. GET /sms/*."""
    return f"{method} /sms" if path.rstrip("/") == "/sms" else f"{method} /{path.strip('/').split('/')[0]}/*"


def _register_endpoint(endpoint: str) -> str:
    """python-ovh accepts only endpoint names: register a URL under a private name.

    See docs/ovh-api.md, "Calls we make".
    """
    if not endpoint.startswith(("http://", "https://")):
        return endpoint
    name = "sms-archiver-" + hashlib.sha256(endpoint.encode()).hexdigest()[:12]
    ovh.client.ENDPOINTS[name] = endpoint
    return name


class OvhSource:
    """The OVH API, as the archiver uses it. Thread-safe; close() when done."""

    def __init__(self, settings: OvhSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not settings.has_credentials:
            raise ConfigError(
                "invalid settings:\n  SMS_ARCHIVER_OVH__APPLICATION_KEY: required (with APPLICATION_SECRET and "
                "CONSUMER_KEY), or SMS_ARCHIVER_OVH__CLIENT_ID with CLIENT_SECRET"
            )
        self.settings = settings
        self.sleep = sleep
        self.api_zone = zoneinfo.ZoneInfo(settings.api_timezone)
        self.limiter = RateLimiter(settings.max_requests_per_second, burst=min(settings.concurrency, 5))
        self.concurrency = AdaptiveConcurrency(settings.concurrency)
        self.calls: Counter[str] = Counter()
        self.retries = 0
        self._stats_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="ovh")
        self._strategy: str | None = None if settings.fetch == "auto" else settings.fetch
        self._ptt_cache: dict[int, str] = dict(PTT_DESCRIPTIONS)
        self._client = self._build_client(settings)
        self._offset_reported: int | None = None

    @staticmethod
    def _build_client(settings: OvhSettings) -> Any:
        def secret(value: Any) -> str | None:
            return value.get_secret_value() if value is not None else None

        try:
            client = ovh.Client(
                endpoint=_register_endpoint(settings.endpoint),
                application_key=secret(settings.application_key),
                application_secret=secret(settings.application_secret),
                consumer_key=secret(settings.consumer_key),
                client_id=settings.client_id,
                client_secret=secret(settings.client_secret),
                timeout=(min(10.0, settings.timeout_seconds), settings.timeout_seconds),
            )
        except ovh.exceptions.InvalidConfiguration as error:
            raise ConfigError(f"invalid settings:\n  SMS_ARCHIVER_OVH: {error}") from None
        # python-ovh shares one requests.Session across our threads; its pool keeps 10 connections per
        # host by default, so more concurrent calls would open and drop a connection each time.
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=max(10, settings.concurrency))
        for scheme in ("https://", "http://"):
            client._session.mount(scheme, adapter)
        # requests reads proxy variables and ~/.netrc again on every call (a measurable share of our CPU
        # on large backfills): read the proxies once here, then stop looking.
        session = client._session
        session.proxies.update(requests.utils.get_environ_proxies(client._endpoint))
        session.trust_env = False
        return client

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> OvhSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def clock_offset_seconds(self) -> int:
        """OVH's clock minus ours, in seconds, as python-ovh measures it to sign calls (``GET /auth/time``).

        Measured once per process (again after OVH refuses a timestamp); a difference larger than
        ``CLOCK_TOLERANCE_SECONDS`` is logged once, since anything compared with OVH's timestamps
        (windows, cursors, lookbacks, retention cutoffs) must use OVH's clock: see ``now``.
        """
        offset = self._client._time_delta
        if offset is None:
            # Measured here, as python-ovh does (OVH's unix time minus ours), through our retries and
            # error messages; python-ovh then signs with it.
            server_time = self.request("GET", "/auth/time", signed=False)
            if isinstance(server_time, bool) or not isinstance(server_time, int):
                raise SourceError("GET /auth/time did not answer OVH's time as a number")
            offset = server_time - int(time.time())
            self._client._time_delta = offset
        offset = int(offset)
        if abs(offset) > CLOCK_TOLERANCE_SECONDS and offset != self._offset_reported:
            self._offset_reported = offset
            log.warning(
                "clock_offset",
                offset_seconds=offset,
                tolerance_seconds=CLOCK_TOLERANCE_SECONDS,
                meaning="OVH's clock minus this machine's; OVH's is used for windows and cutoffs",
            )
        return offset

    def now(self) -> dt.datetime:
        """The current time on OVH's clock (UTC)."""
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset_seconds())

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    # -- one call, with rate limit, concurrency limit and retries ------------------------------------

    def _count(self, outcome: str) -> None:
        with self._stats_lock:
            self.calls[outcome] += 1

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        *,
        signed: bool = True,
    ) -> Any:
        """Make one API call and return its JSON, retrying transient failures.

        Raises ``_NotFound`` on 404, ``AuthError`` / ``NotGrantedError`` on refusals, and
        ``SourceError`` once retries are exhausted.
        """
        target = f"{path}?{urlencode(params)}" if params else path
        resynced_clock = False
        attempt = 0
        while True:
            self.limiter.acquire()
            try:
                with self.concurrency:
                    result = self._attempt(method, target, headers, signed=signed)
                self.concurrency.succeeded()
                return result
            except _Retryable as error:
                if error.throttled:
                    self.concurrency.throttled()
                    if error.retry_after:
                        self.limiter.pause(error.retry_after)
                retries = (
                    min(self.settings.max_retries, _REFUSED_RETRIES) if error.refused else self.settings.max_retries
                )
                if attempt >= retries:
                    raise SourceError(f"OVH API {method} {path} failed after {attempt + 1} attempts: {error}") from None
                delay = backoff_delay(attempt, error.retry_after)
                with self._stats_lock:
                    self.retries += 1
                log.info(
                    "api_retry",
                    method=method,
                    path=path,
                    attempt=attempt + 1,
                    delay=round(delay, 2),
                    why=str(error),
                )
                self.sleep(delay)
                attempt += 1
            except _ClockSkew:
                # python-ovh measures the clock difference once per process; after a clock jump it is stale.
                if resynced_clock:
                    raise
                self._client._time_delta = None
                resynced_clock = True

    def _attempt(self, method: str, target: str, headers: dict[str, str] | None, *, signed: bool = True) -> Any:
        try:
            response = self._client.raw_call(method, target, headers=dict(headers or {}), need_auth=signed)
        except (requests.RequestException, ovh.exceptions.APIError) as error:
            # python-ovh wraps the requests error of its own /auth/time call (signing) in an APIError.
            self._count("network_error")
            host = urlsplit(str(getattr(self._client, "_endpoint", ""))).netloc or str(self.settings.endpoint)
            description, refused = _network_failure(error, host)
            raise _Retryable(description, refused=refused) from None
        status = response.status_code
        try:
            body = response.json() if status != 204 and response.content else None
        except ValueError:
            body = ...
        if 200 <= status < 300:
            if body is ...:
                self._count("malformed_response")
                raise _Retryable(f"HTTP {status} with a body that is not JSON (truncated?)")
            self._count("ok")
            return body
        self._count(f"http_{status}")
        details = body if isinstance(body, dict) else {}
        code = str(details.get("errorCode") or "")
        message = str(details.get("message") or response.reason or "")
        query_id = response.headers.get("X-OVH-QUERYID", "")
        if status in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {status} {message}".strip(), _retry_after(response), throttled=status == 429)
        if status == 404:
            raise _NotFound(message)
        path = target.split("?", 1)[0]
        if status == 403 and code == "NOT_GRANTED_CALL":
            raise NotGrantedError(
                f"OVH refused {method} {path}: the consumer key has no access rule for it. "
                f"Create a consumer key whose rules include '{_access_rule(method, path)}' "
                f"(the archiver needs GET /sms and GET /sms/*; retention also DELETE /sms/*). {query_id}".strip()
            )
        if code in _AUTH_CODES or status in (401, 403):
            raise AuthError(
                f"OVH rejected the credentials on {method} {path} ({code or status}: {message}). Check "
                "SMS_ARCHIVER_OVH__APPLICATION_KEY, APPLICATION_SECRET and CONSUMER_KEY, and that the consumer "
                "key was validated and has not expired."
            )
        # Only OVH's own code says "your timestamp": a 400 about a bad datetime parameter is no clock skew.
        if code == "QUERY_TIME_OUT":
            raise _ClockSkew(
                f"OVH refused the request timestamp on {method} {path} ({message}): this machine's clock is off; "
                "synchronise it (NTP)."
            )
        if status == 460:
            raise SourceError(f"OVH says the service of {path} has expired (HTTP 460)")
        raise SourceError(f"OVH API {method} {path} answered HTTP {status}: {message} {query_id}".strip())

    # -- the calls the archiver makes ------------------------------------------------------------------

    def list_services(self) -> list[str]:
        """Every SMS service of the account (``GET /sms``)."""
        services = self.request("GET", "/sms")
        if not isinstance(services, list) or not all(isinstance(item, str) for item in services):
            raise SourceError("GET /sms did not answer a list of service names")
        return sorted(services)

    def check_service(self, service: str) -> None:
        """Make sure a configured service exists and is reachable with these credentials."""
        try:
            self.request("GET", f"/sms/{service}")
        except _NotFound:
            raise SourceError(f"SMS service {service!r} does not exist on this OVH account") from None

    def list_ids(
        self, service: str, direction: Direction, *, since: dt.datetime | None, until: dt.datetime
    ) -> list[int]:
        """Ids of SMS created in ``[since, until]`` (both ends inclusive at OVH; ``since=None``: all)."""
        params = {"creationDatetime.to": until.isoformat(timespec="seconds")}
        if since is not None:
            params["creationDatetime.from"] = since.isoformat(timespec="seconds")
        try:
            ids = self.request("GET", f"/sms/{service}/{direction}", params)
        except _NotFound:
            raise SourceError(f"SMS service {service!r} does not exist on this OVH account") from None
        if not isinstance(ids, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in ids):
            raise SourceError(f"GET /sms/{service}/{direction} did not answer a list of ids")
        return ids

    def get_record(self, service: str, direction: Direction, sms_id: int) -> Any:
        """One record's raw JSON, or ``GONE`` if the API no longer has it."""
        try:
            return self.request("GET", f"/sms/{service}/{direction}/{sms_id}")
        except _NotFound:
            return GONE

    def delete_record(self, service: str, direction: Direction, sms_id: int) -> bool:
        """Delete one record at OVH; return False if it was already gone (404)."""
        try:
            self.request("DELETE", f"/sms/{service}/{direction}/{sms_id}")
        except _NotFound:
            return False
        return True

    def ptt_text(self, ptt: int) -> str:
        """The text of a ptt code: built in, else ``GET /sms/ptts`` once per code, else a label."""
        if ptt not in self._ptt_cache:
            try:
                details = self.request("GET", "/sms/ptts", {"ptt": str(ptt)})
                text = details.get("description") if isinstance(details, dict) else None
            except (_NotFound, SourceError):
                text = None
            self._ptt_cache[ptt] = text if isinstance(text, str) and text else describe_ptt(ptt)
        return self._ptt_cache[ptt]

    def export_rows(
        self, service: str, direction: Direction, *, since: dt.datetime | None, until: dt.datetime
    ) -> Iterator[dict[str, str]]:
        """Yield the rows of OVH's CSV history export for ``[since, until]``, window by window.

        A document covers at most 12 months (docs/ovh-api.md, "CSV export"): the range is cut into windows of 365
        days, newest first (``since=None``: the last 365 days only, as far as the export reaches).
        Each document is generated at OVH, polled until ready, downloaded to a temporary file
        (memory stays flat), parsed by header name, and deleted at OVH. Raises
        ``ExportUnavailable`` if OVH refuses or never finishes a document.
        """
        start = since if since is not None else until - _EXPORT_WINDOW
        end = until
        while end > start:
            window_start = max(start, end - _EXPORT_WINDOW)
            yield from self._export_window(service, direction, window_start, end)
            end = window_start

    def _export_window(
        self, service: str, direction: Direction, since: dt.datetime, until: dt.datetime
    ) -> Iterator[dict[str, str]]:
        params = {
            "wayType": direction,
            "creationDatetime.from": since.isoformat(timespec="seconds"),
            "creationDatetime.to": until.isoformat(timespec="seconds"),
        }
        try:
            document_id = self.request("GET", f"/sms/{service}/document", params)
        except (_NotFound, SourceError) as error:
            if isinstance(error, AuthError | NotGrantedError):
                raise
            raise ExportUnavailable(f"the CSV export was refused: {error}") from None
        if not isinstance(document_id, str) or not document_id:
            raise ExportUnavailable("GET /sms/{service}/document did not answer a document id")
        try:
            url = self._await_document(document_id)
            with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
                self.limiter.acquire()
                try:
                    with self._client._session.get(url, stream=True, timeout=self.settings.timeout_seconds) as answer:
                        self._count("ok" if answer.ok else f"http_{answer.status_code}")
                        if not answer.ok:
                            raise ExportUnavailable(f"downloading the export answered HTTP {answer.status_code}")
                        for block in answer.iter_content(1 << 16):
                            spool.write(block)
                except requests.RequestException as error:
                    self._count("network_error")
                    raise ExportUnavailable(f"downloading the export failed ({type(error).__name__})") from None
                spool.seek(0)
                text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
                try:
                    yield from csv.DictReader(text, delimiter=";", quotechar='"', strict=True)
                except (csv.Error, UnicodeDecodeError) as error:
                    raise ExportUnavailable(f"the export is not readable CSV ({error})") from None
                finally:
                    text.detach()
        finally:
            with contextlib.suppress(SourceError, _NotFound):
                self.request("DELETE", f"/me/document/{document_id}")

    def _await_document(self, document_id: str) -> str:
        """Poll a /me/document until OVH has generated it (bounded); return its download URL."""
        for _attempt in range(_EXPORT_POLLS):
            try:
                document = self.request("GET", f"/me/document/{document_id}")
            except _NotFound:
                raise ExportUnavailable(f"document {document_id} vanished while generated") from None
            if isinstance(document, dict) and isinstance(document.get("size"), int) and document["size"] > 0:
                url = document.get("getUrl")
                if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                    raise ExportUnavailable("the export document has no download URL")
                return url
            self.sleep(_EXPORT_POLL_SECONDS)
        raise ExportUnavailable(f"the export was not ready after {_EXPORT_POLLS} polls")

    @property
    def strategy(self) -> str:
        return self._strategy or "auto"

    def fetch(self, service: str, direction: Direction, ids: Sequence[int]) -> Iterator[tuple[int, Any]]:
        """Yield ``(id, raw JSON or GONE)`` for every id, in no particular order.

        ``batch`` asks many ids per call, ``concurrency`` calls at a time; if OVH refuses it or
        answers in an unexpected shape, the rest of the run uses ``per-id`` (logged once).
        """
        # ``export`` is used by the archive for large fetches (``export_rows``); what it does not cover,
        # and small fetches, come through batch calls.
        if self._strategy not in (None, "batch", "export"):
            yield from self._fetch_per_id(service, direction, ids)
            return
        size = self.settings.batch_size
        chunks = [list(ids[start : start + size]) for start in range(0, len(ids), size)]
        if self._strategy is None and chunks:
            # Probe with one call before sending many: the answer decides the run's strategy.
            try:
                probe = self._fetch_batch(service, direction, chunks[0])
            except _BatchUnsupported as error:
                yield from self._fall_back(service, direction, ids, error)
                return
            self._strategy = "batch"
            yield from probe
            chunks = chunks[1:]
        failed: list[int] = []
        unsupported: _BatchUnsupported | None = None
        pending: set[Future[list[tuple[int, Any]]]] = set()
        submitted: dict[Future[list[tuple[int, Any]]], list[int]] = {}
        queue = iter(chunks)
        try:
            for chunk in queue:
                future = self._pool.submit(self._fetch_batch, service, direction, chunk)
                submitted[future] = chunk
                pending.add(future)
                if len(pending) >= self.settings.concurrency * 2:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        try:
                            yield from future.result()
                        except _BatchUnsupported as error:
                            unsupported = error
                            failed.extend(submitted[future])
                    if unsupported is not None:
                        break
            for future in list(pending):
                try:
                    yield from future.result()
                except _BatchUnsupported as error:
                    unsupported = error
                    failed.extend(submitted[future])
                pending.discard(future)
        finally:
            for future in pending:
                future.cancel()
        if unsupported is not None:
            failed.extend(sms_id for chunk in queue for sms_id in chunk)
            yield from self._fall_back(service, direction, failed, unsupported)

    def _fall_back(
        self, service: str, direction: Direction, ids: Sequence[int], error: _BatchUnsupported
    ) -> Iterator[tuple[int, Any]]:
        log.warning("batch_fetch_unavailable", reason=str(error), fallback="per-id")
        self._strategy = "per-id"
        yield from self._fetch_per_id(service, direction, ids)

    def _fetch_batch(self, service: str, direction: Direction, ids: list[int]) -> list[tuple[int, Any]]:
        """One X-Ovh-Batch call (run in the pool); raises ``_BatchUnsupported`` on an unexpected answer."""
        if len(ids) == 1:
            return [(ids[0], self.get_record(service, direction, ids[0]))]
        path = f"/sms/{service}/{direction}/{','.join(map(str, ids))}"
        try:
            answer = self.request("GET", path, headers={"X-Ovh-Batch": ","})
        except (_NotFound, SourceError) as error:
            if isinstance(error, AuthError | NotGrantedError):
                raise
            raise _BatchUnsupported(f"batch call refused: {error}") from None
        if not isinstance(answer, list) or len(answer) != len(ids):
            raise _BatchUnsupported("batch answer is not a list with one element per id")
        results: list[tuple[int, Any]] = []
        for sms_id, element in zip(ids, answer, strict=True):
            if not isinstance(element, dict) or "value" not in element:
                raise _BatchUnsupported("batch element without a 'value' key")
            if element.get("key") not in (None, str(sms_id), sms_id):
                raise _BatchUnsupported("batch answer out of order")
            if element["value"] is not None:
                results.append((sms_id, element["value"]))
            elif _says_not_found(element.get("error")):
                results.append((sms_id, GONE))
            else:
                # A null value without an explicit not-found (the keys of batch elements are UNKNOWN: see
                # docs/ovh-api.md, "Batch calls") proves nothing: ask for it alone, whose 404 is explicit.
                # Here, not through the pool: we run in it.
                results.append((sms_id, self.get_record(service, direction, sms_id)))
        return results

    def _fetch_per_id(self, service: str, direction: Direction, ids: Iterable[int]) -> Iterator[tuple[int, Any]]:
        pending: set[Future[tuple[int, Any]]] = set()
        queue = iter(ids)

        def one(sms_id: int) -> tuple[int, Any]:
            return sms_id, self.get_record(service, direction, sms_id)

        try:
            for sms_id in queue:
                pending.add(self._pool.submit(one, sms_id))
                if len(pending) >= self.settings.concurrency * 2:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            for future in list(pending):
                yield future.result()
                pending.discard(future)
        finally:
            for future in pending:
                future.cancel()


def _says_not_found(error: object) -> bool:
    """Whether a batch element's ``error`` says explicitly that the record does not exist."""
    if isinstance(error, dict):
        error = " ".join(str(value) for value in error.values())
    text = str(error or "").lower()
    return "not found" in text or "404" in text or "does not exist" in text


class _BatchUnsupported(Exception):
    """The server does not do X-Ovh-Batch the way OVH's Control Panel uses it."""


class ExportUnavailable(SourceError):
    """The CSV history export could not be had (refused, never ready, unreadable)."""
