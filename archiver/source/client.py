"""The HTTP layer: one OVH account's API through python-ovh, under one rate limiter and one retry policy.

``ApiClient.request`` makes a signed call and returns its JSON, retrying what is transient (with backoff
and Retry-After), halving concurrency on a 429, and measuring OVH's clock again after a refused
timestamp. It counts every call by outcome, and measures OVH's clock (``now``). It never logs
credentials, signatures or request headers.

Why ``raw_call``: python-ovh's ``call()`` takes no headers and hides response headers, and we need
both (``X-Ovh-Batch``, ``Retry-After``). We map statuses to errors ourselves (``answers.py``), as
``call()`` does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

import ovh
import ovh.client
import requests
import requests.adapters
import requests.utils
import structlog

from archiver.config import PRIVATE_ENDPOINT, OvhSettings
from archiver.errors import ConfigError, SourceError
from archiver.source.answers import ClockSkew, Retryable, answer_error, network_failure
from archiver.source.limits import AdaptiveConcurrency, RateLimiter, backoff_delay

__all__ = ["CLOCK_TOLERANCE_SECONDS", "ApiClient", "DownloadError"]

log = structlog.get_logger()

# python-ovh measures the clock difference to the second; beyond this we say so (NTP keeps well within it).
CLOCK_TOLERANCE_SECONDS = 30
# A refused connection means nothing listens at the endpoint: most often a wrong endpoint, sometimes a
# proxy restarting. Retried a little (about 1.5 s in all), not for the whole backoff of a real outage.
_REFUSED_RETRIES = 2
_NOT_JSON: Any = ...  # a body that did not parse


class DownloadError(Exception):
    """An unsigned download failed; the message says how (``answered HTTP 500``, ``failed (Timeout)``)."""


def register_endpoint(endpoint: str) -> str:
    """python-ovh accepts only endpoint names: register a URL under a private name.

    See docs/ovh-api.md, "Calls we make".
    """
    if not endpoint.startswith(("http://", "https://")):
        return endpoint
    name = PRIVATE_ENDPOINT + hashlib.sha256(endpoint.encode()).hexdigest()[:12]
    ovh.client.ENDPOINTS[name] = endpoint
    return name


def build_ovh_client(settings: OvhSettings) -> Any:
    """A python-ovh client for these settings; ``ConfigError`` if python-ovh refuses them."""

    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    try:
        client = ovh.Client(
            endpoint=register_endpoint(settings.endpoint),
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


class ApiClient:
    """Signed calls to one OVH account, rate-limited, retried and counted. Thread-safe."""

    def __init__(self, settings: OvhSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not settings.has_credentials:
            raise ConfigError(
                "invalid settings:\n  SMS_ARCHIVER_OVH__APPLICATION_KEY: required (with APPLICATION_SECRET and "
                "CONSUMER_KEY), or SMS_ARCHIVER_OVH__CLIENT_ID with CLIENT_SECRET"
            )
        self.settings = settings
        self.sleep = sleep
        self.limiter = RateLimiter(settings.max_requests_per_second, burst=min(settings.concurrency, 5))
        self.concurrency = AdaptiveConcurrency(settings.concurrency)
        self.calls: Counter[str] = Counter()
        self.retries = 0
        self._stats_lock = threading.Lock()
        self._ovh = build_ovh_client(settings)
        self._offset_reported: int | None = None

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def count(self, outcome: str) -> None:
        """Count one call under ``outcome`` (``ok``, ``http_404``, ``network_error`` ...)."""
        with self._stats_lock:
            self.calls[outcome] += 1

    # -- OVH's clock -----------------------------------------------------------------------------------

    def clock_offset_seconds(self) -> int:
        """OVH's clock minus ours, in seconds, as python-ovh measures it to sign calls (``GET /auth/time``).

        Measured once per process (again after OVH refuses a timestamp); a difference larger than
        ``CLOCK_TOLERANCE_SECONDS`` is logged once, since anything compared with OVH's timestamps
        (windows, cursors, lookbacks, retention cutoffs) must use OVH's clock: see ``now`` and
        docs/ovh-api.md, "Clock".
        """
        offset = self._ovh._time_delta
        if offset is None:
            # Measured here, as python-ovh does (OVH's unix time minus ours), through our retries and
            # error messages; python-ovh then signs with it.
            server_time = self.request("GET", "/auth/time", signed=False)
            if isinstance(server_time, bool) or not isinstance(server_time, int):
                raise SourceError("GET /auth/time did not answer OVH's time as a number")
            offset = server_time - int(time.time())
            self._ovh._time_delta = offset
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

    # -- one call, with rate limit, concurrency limit and retries ----------------------------------------

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

        Raises ``NotFound`` on 404, ``AuthError`` / ``NotGrantedError`` on refusals, and
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
            except Retryable as error:
                self._before_retry(method, path, attempt, error)
                attempt += 1
            except ClockSkew:
                # python-ovh measures the clock difference once per process; after a clock jump it is stale.
                if resynced_clock:
                    raise
                self._ovh._time_delta = None
                resynced_clock = True

    def _before_retry(self, method: str, path: str, attempt: int, error: Retryable) -> None:
        """Slow down as the failure asks, then wait before the next attempt; ``SourceError`` when none is left."""
        if error.throttled:
            self.concurrency.throttled()
            if error.retry_after:
                self.limiter.pause(error.retry_after)
        retries = min(self.settings.max_retries, _REFUSED_RETRIES) if error.refused else self.settings.max_retries
        if attempt >= retries:
            raise SourceError(f"OVH API {method} {path} failed after {attempt + 1} attempts: {error}") from None
        delay = backoff_delay(attempt, error.retry_after)
        with self._stats_lock:
            self.retries += 1
        log.info("api_retry", method=method, path=path, attempt=attempt + 1, delay=round(delay, 2), why=str(error))
        self.sleep(delay)

    def _attempt(self, method: str, target: str, headers: dict[str, str] | None, *, signed: bool = True) -> Any:
        try:
            response = self._ovh.raw_call(method, target, headers=dict(headers or {}), need_auth=signed)
        except (requests.RequestException, ovh.exceptions.APIError) as error:
            # python-ovh wraps the requests error of its own /auth/time call (signing) in an APIError.
            self.count("network_error")
            description, refused = network_failure(error, self._host())
            raise Retryable(description, refused=refused) from None
        status = response.status_code
        try:
            body = response.json() if status != 204 and response.content else None
        except ValueError:
            body = _NOT_JSON
        if 200 <= status < 300:
            if body is _NOT_JSON:
                self.count("malformed_response")
                raise Retryable(f"HTTP {status} with a body that is not JSON (truncated?)")
            self.count("ok")
            return body
        self.count(f"http_{status}")
        raise answer_error(
            method,
            target,
            status,
            body,
            reason=response.reason,
            headers=response.headers,
            received_at=dt.datetime.now(dt.UTC),
        )

    def _host(self) -> str:
        return urlsplit(str(getattr(self._ovh, "_endpoint", ""))).netloc or str(self.settings.endpoint)

    # -- an unsigned download (an export document) -------------------------------------------------------

    def download(self, url: str, into: IO[bytes]) -> None:
        """Stream an unsigned URL into ``into``, under the rate limiter and counted as a call.

        Not retried (the caller decides); raises ``DownloadError`` on a non-2xx answer or a network failure.
        """
        self.limiter.acquire()
        try:
            with self._ovh._session.get(url, stream=True, timeout=self.settings.timeout_seconds) as answer:
                self.count("ok" if answer.ok else f"http_{answer.status_code}")
                if not answer.ok:
                    raise DownloadError(f"answered HTTP {answer.status_code}")
                for block in answer.iter_content(1 << 16):
                    into.write(block)
        except requests.RequestException as error:
            self.count("network_error")
            raise DownloadError(f"failed ({type(error).__name__})") from None
