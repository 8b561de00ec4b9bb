"""What OVH's answers mean: each refusal or failure turned into an error that says what to fix.

Pure rules, no I/O: ``answer_error`` reads a non-2xx answer, ``network_failure`` a failed connection.
The client (``client.py``) raises what they return. Messages never carry credentials, signatures or
request headers.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Mapping
from typing import Any

import requests

from archiver.errors import AuthError, NotGrantedError, SourceError
from archiver.source.limits import retry_after_seconds

__all__ = [
    "RETRY_STATUSES",
    "ClockSkew",
    "NotFound",
    "Retryable",
    "access_rule",
    "answer_error",
    "network_failure",
]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_AUTH_CODES = frozenset({"INVALID_KEY", "INVALID_CREDENTIAL", "NOT_CREDENTIAL", "INVALID_SIGNATURE"})


class ClockSkew(AuthError):
    """OVH refused the request timestamp: the machine's clock differs from OVH's."""


class NotFound(Exception):
    """A 404, kept apart because callers decide what absence means."""


class Retryable(Exception):
    """A failure worth trying again: a transient status, a truncated body, a network error."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, throttled: bool = False, refused: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        self.refused = refused


def network_failure(error: BaseException, host: str) -> tuple[str, bool]:
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


def access_rule(method: str, path: str) -> str:
    """The access rule a consumer key needs for a call, e.g. GET /sms/*."""
    return f"{method} /sms" if path.rstrip("/") == "/sms" else f"{method} /{path.strip('/').split('/')[0]}/*"


def answer_error(
    method: str,
    target: str,
    status: int,
    body: Any,
    *,
    reason: str | None,
    headers: Mapping[str, str],
    received_at: dt.datetime,
) -> Exception:
    """The error a non-2xx answer means, to raise: ``Retryable``, ``NotFound``, or one that says what to fix.

    ``target`` is the path with its query; ``body`` the parsed JSON (anything else if it was not JSON);
    ``received_at`` (aware) reads a Retry-After given as a date.
    """
    details = body if isinstance(body, dict) else {}
    code = str(details.get("errorCode") or "")
    message = str(details.get("message") or reason or "")
    query_id = headers.get("X-OVH-QUERYID", "")
    if status in RETRY_STATUSES:
        retry_after = retry_after_seconds(headers.get("Retry-After"), now=received_at)
        return Retryable(f"HTTP {status} {message}".strip(), retry_after, throttled=status == 429)
    if status == 404:
        return NotFound(message)
    path = target.split("?", 1)[0]
    if status == 403 and code == "NOT_GRANTED_CALL":
        return NotGrantedError(
            f"OVH refused {method} {path}: the consumer key has no access rule for it. "
            f"Create a consumer key whose rules include '{access_rule(method, path)}' "
            f"(the archiver needs GET /sms and GET /sms/*; retention also DELETE /sms/*). {query_id}".strip()
        )
    if code in _AUTH_CODES or status in (401, 403):
        return AuthError(
            f"OVH rejected the credentials on {method} {path} ({code or status}: {message}). Check "
            "SMS_ARCHIVER_OVH__APPLICATION_KEY, APPLICATION_SECRET and CONSUMER_KEY, and that the consumer "
            "key was validated and has not expired."
        )
    # Only OVH's own code says "your timestamp": a 400 about a bad datetime parameter is no clock skew
    # (docs/ovh-api.md, "Clock").
    if code == "QUERY_TIME_OUT":
        return ClockSkew(
            f"OVH refused the request timestamp on {method} {path} ({message}): this machine's clock is off; "
            "synchronise it (NTP)."
        )
    if status == 460:
        return SourceError(f"OVH says the service of {path} has expired (HTTP 460)")
    return SourceError(f"OVH API {method} {path} answered HTTP {status}: {message} {query_id}".strip())
