"""Every misbehaviour the emulator can inject: latency, drops, rate limits, 429/500, truncated JSON, capped
listings, null batch elements, a skewed clock, export quirks.

``Faults`` holds the knobs; the server reads them afresh on every request, so tests can change them while
it serves. Dice are seeded, so a run with faults can be replayed.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from archiver.emulator.protocol import Reply, json_reply


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


class Dice:
    """Seeded fault dice, shared by the handler threads; a new seed set while serving restarts them."""

    def __init__(self, seed: int | None) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._random = random.Random(seed)  # noqa: S311 - fault dice, not security

    def roll(self, probability: float, seed: int | None) -> bool:
        """True with ``probability``; ``seed`` is the one the faults name now. Draws nothing if probability <= 0."""
        if probability <= 0:
            return False
        with self._lock:
            if seed != self._seed:
                # A new seed set at runtime restarts the sequence, for reproducible fault runs.
                self._seed = seed
                self._random.seed(seed)
            return self._random.random() < probability


class TokenBucket:
    """The rate limit: a bucket of ``rate`` tokens refilled at ``rate`` per second."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rate: float | None = None
        self._tokens = 0.0
        self._last = 0.0

    def take(self, rate: float) -> float:
        """Take one token; return 0 if granted, else the seconds until one is available."""
        with self._lock:
            now = self._clock()
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


@dataclass(frozen=True, slots=True)
class Injection:
    """What the faults decided for one signed request before it reaches its route."""

    drop: bool = False  # close the connection without a byte
    reply: Reply | None = None  # an error answered instead of the route's
    malformed: bool = False  # cut the route's JSON answer in half


def too_many_requests(retry_after: float) -> Reply:
    """429 with a ``Retry-After`` of whole seconds (rounded up)."""
    seconds = max(0, math.ceil(retry_after))
    return json_reply(429, {"message": "Too many requests"}, (("Retry-After", str(seconds)),))


def inject(faults: Faults, dice: Dice, bucket: TokenBucket) -> Injection:
    """Sleep the latency, then roll drop, rate limit, 429, 500 and malformed JSON, in that order."""
    if faults.latency_seconds > 0:
        time.sleep(faults.latency_seconds)
    if dice.roll(faults.drop_rate, faults.seed):
        return Injection(drop=True)
    if faults.rate_limit_per_second is not None:
        wait = bucket.take(faults.rate_limit_per_second)
        if wait > 0:
            retry_after = faults.retry_after_seconds if math.isinf(wait) else wait
            return Injection(reply=too_many_requests(retry_after))
    if dice.roll(faults.error_rate_429, faults.seed):
        return Injection(reply=too_many_requests(faults.retry_after_seconds))
    if dice.roll(faults.error_rate_500, faults.seed):
        return Injection(reply=json_reply(500, {"message": "Internal server error"}))
    return Injection(malformed=dice.roll(faults.malformed_json_rate, faults.seed))


def truncated(body: bytes) -> bytes:
    """Cut a JSON body in half; never return something that still parses (e.g. half of ``12345``)."""
    half = body[: len(body) // 2]
    try:
        json.loads(half)
    except ValueError:
        return half
    return b""


def truncate_success(reply: Reply) -> Reply:
    """The reply with its body cut (``truncated``) if it is a 2xx JSON answer; others unchanged."""
    if 200 <= reply.status < 300 and reply.is_json:
        return Reply(reply.status, truncated(reply.body), reply.content_type, reply.headers)
    return reply


def ascii_only(reply: Reply) -> Reply:
    """The reply re-encoded with every non-ASCII character escaped, if it is well-formed JSON."""
    if not reply.is_json:
        return reply
    try:
        payload = json.loads(reply.body)
    except ValueError:  # a truncated body stays as cut
        return reply
    body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return Reply(reply.status, body, reply.content_type, reply.headers, reply.is_json)


def cap_listing(ids: list[int], faults: Faults) -> list[int]:
    """Cut an oldest-first id listing to ``listing_cap`` ids, keeping the newest or the oldest."""
    cap = faults.listing_cap
    if cap is None or len(ids) <= cap:
        return ids
    return ids[len(ids) - cap :] if faults.listing_cap_keep == "newest" else ids[:cap]
