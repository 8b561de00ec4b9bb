"""Signature checking: what python-ovh signs is accepted, any change to a signed part is refused."""

from __future__ import annotations

import hashlib
import json
from email.message import Message
from typing import Any

import ovh
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from archiver.emulator.protocol import Reply, Request
from archiver.emulator.signatures import (
    DEMO_CREDENTIALS,
    TIMESTAMP_TOLERANCE_SECONDS,
    DemoCredentials,
    check_signature,
    signature,
)

BASE = "http://127.0.0.1:8999"
NOW = 1_780_000_000
TARGET = "/1.0/sms/sms-test-1/outgoing?creationDatetime.from=2026-01-01T00%3A00%3A00%2B01%3A00"


def ovh_signature(secret: str, consumer: str, method: str, url: str, body: str, timestamp: str) -> str:
    """OVH's scheme as its API guide states it, written out independently of the emulator."""
    joined = f"{secret}+{consumer}+{method}+{url}+{body}+{timestamp}"
    return "$1$" + hashlib.sha1(joined.encode("utf-8")).hexdigest()


def signed(
    *,
    method: str = "GET",
    target: str = TARGET,
    body: bytes = b"",
    timestamp: int = NOW,
    credentials: DemoCredentials = DEMO_CREDENTIALS,
    base: str = BASE,
    host: str | None = None,
) -> Request:
    headers = Message()
    headers["X-Ovh-Application"] = credentials.application_key
    headers["X-Ovh-Consumer"] = credentials.consumer_key
    headers["X-Ovh-Timestamp"] = str(timestamp)
    headers["X-Ovh-Signature"] = ovh_signature(
        credentials.application_secret,
        credentials.consumer_key,
        method,
        base + target,
        body.decode("utf-8"),
        str(timestamp),
    )
    if host is not None:
        headers["Host"] = host
    return Request(method=method, target=target, segments=(), query={}, headers=headers, body=body)


def error_code(reply: Reply | None) -> tuple[int, str] | None:
    if reply is None:
        return None
    return reply.status, json.loads(reply.body)["errorCode"]


def replaced(request: Request, name: str, value: str) -> Request:
    headers = Message()
    for key, current in request.headers.items():
        if key != name:
            headers[key] = current
    headers[name] = value
    return Request(request.method, request.target, request.segments, request.query, headers, request.body)


def test_the_signature_is_ovhs_scheme() -> None:
    assert signature(DEMO_CREDENTIALS, "GET", BASE + TARGET, "", str(NOW)) == ovh_signature(
        DEMO_CREDENTIALS.application_secret, DEMO_CREDENTIALS.consumer_key, "GET", BASE + TARGET, "", str(NOW)
    )


def test_a_correctly_signed_request_is_accepted() -> None:
    assert check_signature(signed(), DEMO_CREDENTIALS, NOW, BASE) is None
    assert check_signature(signed(method="DELETE", body=b'{"a":1}'), DEMO_CREDENTIALS, NOW, BASE) is None


def test_what_python_ovh_signs_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real client's headers, captured before they reach any network, pass the check."""
    captured: list[requests.PreparedRequest] = []

    class Capture(requests.adapters.BaseAdapter):
        def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
            captured.append(request)
            response = requests.Response()
            response.status_code, response._content = 200, b"null"
            return response

        def close(self) -> None:
            pass

    monkeypatch.setitem(ovh.client.ENDPOINTS, "sms-archiver-unit", BASE + "/1.0")
    client = ovh.Client(
        endpoint="sms-archiver-unit",
        application_key=DEMO_CREDENTIALS.application_key,
        application_secret=DEMO_CREDENTIALS.application_secret,
        consumer_key=DEMO_CREDENTIALS.consumer_key,
    )
    client._time_delta = 0
    client._session.mount("http://", Capture())
    client.get("/sms/sms-test-1/outgoing", **{"creationDatetime.from": "2026-01-01T00:00:00+01:00"})
    (sent,) = captured
    assert sent.url is not None and sent.url.startswith(BASE)
    headers = Message()
    for name, value in sent.headers.items():
        headers[name] = value
    body = sent.body if isinstance(sent.body, bytes) else (sent.body or "").encode()
    request = Request(str(sent.method), sent.url.removeprefix(BASE), (), {}, headers, body)
    now = int(headers["X-Ovh-Timestamp"])
    assert check_signature(request, DEMO_CREDENTIALS, now, BASE) is None
    assert error_code(check_signature(request, DEMO_CREDENTIALS, now, "http://127.0.0.1:9000")) == (
        400,
        "INVALID_SIGNATURE",
    )


def test_the_host_the_client_sent_also_verifies() -> None:
    request = signed(base="http://localhost:8999", host="localhost:8999")
    assert check_signature(request, DEMO_CREDENTIALS, NOW, BASE) is None
    without_host = signed(base="http://localhost:8999")
    assert error_code(check_signature(without_host, DEMO_CREDENTIALS, NOW, BASE)) == (400, "INVALID_SIGNATURE")


def test_a_wrong_application_key_is_refused_first() -> None:
    request = replaced(signed(), "X-Ovh-Application", "someone-else")
    assert error_code(check_signature(request, DEMO_CREDENTIALS, NOW, BASE)) == (403, "INVALID_KEY")


def test_a_wrong_consumer_key_is_refused() -> None:
    request = replaced(signed(), "X-Ovh-Consumer", "someone-else")
    assert error_code(check_signature(request, DEMO_CREDENTIALS, NOW, BASE)) == (403, "INVALID_CREDENTIAL")


@pytest.mark.parametrize("offset", [-TIMESTAMP_TOLERANCE_SECONDS, 0, TIMESTAMP_TOLERANCE_SECONDS])
def test_a_timestamp_within_the_tolerance_is_accepted(offset: int) -> None:
    assert check_signature(signed(timestamp=NOW + offset), DEMO_CREDENTIALS, NOW, BASE) is None


@pytest.mark.parametrize("offset", [-TIMESTAMP_TOLERANCE_SECONDS - 1, TIMESTAMP_TOLERANCE_SECONDS + 1, 86_400])
def test_a_timestamp_out_of_the_tolerance_is_refused(offset: int) -> None:
    reply = check_signature(signed(timestamp=NOW + offset), DEMO_CREDENTIALS, NOW, BASE)
    assert error_code(reply) == (400, "QUERY_TIME_OUT")


@pytest.mark.parametrize("timestamp", ["", "soon", "-5", "1.5"])
def test_a_timestamp_that_is_not_a_number_is_refused(timestamp: str) -> None:
    request = replaced(signed(), "X-Ovh-Timestamp", timestamp)
    assert error_code(check_signature(request, DEMO_CREDENTIALS, NOW, BASE)) == (400, "QUERY_TIME_OUT")


def test_a_missing_signature_is_refused() -> None:
    headers = Message()
    for key, value in signed().headers.items():
        if key != "X-Ovh-Signature":
            headers[key] = value
    request = Request("GET", TARGET, (), {}, headers, b"")
    assert error_code(check_signature(request, DEMO_CREDENTIALS, NOW, BASE)) == (400, "INVALID_SIGNATURE")


@given(
    part=st.sampled_from(["method", "target", "body", "secret"]),
    change=st.text(alphabet="abcXYZ019/?=&", min_size=1, max_size=8),
)
def test_changing_any_signed_part_is_refused(part: str, change: str) -> None:
    """Signed for one request, checked against another that differs in one signed part."""
    original = signed(body=b'{"x":1}')
    if part == "method":
        tampered = Request("DELETE", original.target, (), {}, original.headers, original.body)
    elif part == "target":
        tampered = Request("GET", original.target + change, (), {}, original.headers, original.body)
    elif part == "body":
        tampered = Request("GET", original.target, (), {}, original.headers, original.body + change.encode())
    else:
        secret = DEMO_CREDENTIALS.application_secret + change
        other = DemoCredentials(DEMO_CREDENTIALS.application_key, secret, DEMO_CREDENTIALS.consumer_key)
        assert error_code(check_signature(original, other, NOW, BASE)) == (400, "INVALID_SIGNATURE")
        return
    assert error_code(check_signature(tampered, DEMO_CREDENTIALS, NOW, BASE)) == (400, "INVALID_SIGNATURE")
