"""OVH API v1 credentials and request signatures, checked as the real API does for python-ovh 1.2.0.

A signed request carries ``X-Ovh-Application`` (the application key), ``X-Ovh-Consumer`` (the consumer
key), ``X-Ovh-Timestamp`` (the client's idea of the server's clock, from ``/auth/time``) and
``X-Ovh-Signature``: ``"$1$" + sha1(secret+consumer key+method+url+body+timestamp)``, fields joined by "+".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from archiver.emulator.protocol import Reply, Request, json_reply

# Third-party emulators and OVH's "Query out of time" message suggest a 180 s tolerance (docs/ovh-api.md,
# "Clock").
TIMESTAMP_TOLERANCE_SECONDS: Final = 180


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


def signature(credentials: DemoCredentials, method: str, url: str, body: str, timestamp: str) -> str:
    """The ``X-Ovh-Signature`` a client holding ``credentials`` sends for this request."""
    material = "+".join((credentials.application_secret, credentials.consumer_key, method, url, body, timestamp))
    digest = hashlib.sha1(material.encode("utf-8", errors="surrogateescape"))  # noqa: S324 - OVH's scheme
    return "$1$" + digest.hexdigest()


def _refusal(status: int, error_code: str, message: str) -> Reply:
    reason = "Forbidden" if status == 403 else "Bad Request"
    return json_reply(status, {"errorCode": error_code, "httpCode": f"{status} {reason}", "message": message})


def check_signature(request: Request, credentials: DemoCredentials, now: float, base_url: str) -> Reply | None:
    """Return None if the request is signed with ``credentials`` at about ``now``, else OVH's refusal.

    The client signs the URL it built: the registered endpoint (``base_url``, our bound address) + path +
    raw query. The Host it sent is accepted too, so "localhost" endpoints also verify.
    """
    headers = request.headers
    if headers.get("X-Ovh-Application") != credentials.application_key:
        return _refusal(403, "INVALID_KEY", "Invalid application key")
    if headers.get("X-Ovh-Consumer") != credentials.consumer_key:
        return _refusal(403, "INVALID_CREDENTIAL", "This credential is not valid")
    timestamp = headers.get("X-Ovh-Timestamp") or ""
    if not timestamp.isdigit() or abs(int(timestamp) - now) > TIMESTAMP_TOLERANCE_SECONDS:
        return _refusal(400, "QUERY_TIME_OUT", "Query out of time")
    sent = headers.get("X-Ovh-Signature") or ""
    body = request.body.decode("utf-8", errors="surrogateescape")
    bases: Iterable[str] = {base_url, f"http://{headers['Host']}"} if headers.get("Host") else {base_url}
    for base in bases:
        expected = signature(credentials, request.method, base + request.target, body, timestamp)
        if hmac.compare_digest(expected, sent):
            return None
    return _refusal(400, "INVALID_SIGNATURE", "Invalid signature")
