"""archiver/source/answers.py: what each answer of OVH means, as pure rules (no HTTP)."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.errors import AuthError, NotGrantedError, SourceError
from archiver.source.answers import (
    RETRY_STATUSES,
    ClockSkew,
    NotFound,
    Retryable,
    access_rule,
    answer_error,
    network_failure,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
TARGET = "/sms/sms-x-1/outgoing?creationDatetime.from=2026-01-01T00%3A00%3A00"


def error_for(status: int, body: Any = None, *, reason: str = "", **headers: str) -> Exception:
    return answer_error("GET", TARGET, status, body, reason=reason, headers=headers, received_at=NOW)


@pytest.mark.parametrize(
    ("method", "path", "rule"),
    [
        ("GET", "/sms", "GET /sms"),
        ("GET", "/sms/sn-1/outgoing/12", "GET /sms/*"),
        ("DELETE", "/sms/x/incoming/1", "DELETE /sms/*"),
    ],
)
def test_access_rule_named_in_403_messages(method: str, path: str, rule: str) -> None:
    assert access_rule(method, path) == rule


@pytest.mark.parametrize(
    ("status", "body", "kind", "words"),
    [
        (404, {"message": "The requested object (id = 3) does not exist"}, NotFound, "does not exist"),
        (
            403,
            {"errorCode": "NOT_GRANTED_CALL", "message": "This call has not been granted"},
            NotGrantedError,
            "'GET /sms/*'",
        ),
        (403, {"errorCode": "INVALID_CREDENTIAL", "message": "bad"}, AuthError, "SMS_ARCHIVER_OVH__APPLICATION_KEY"),
        (400, {"errorCode": "INVALID_SIGNATURE", "message": "Invalid signature"}, AuthError, "INVALID_SIGNATURE"),
        (401, None, AuthError, "401"),
        (400, {"errorCode": "QUERY_TIME_OUT", "message": "Query out of time"}, ClockSkew, "NTP"),
        (460, {"message": "Service expired"}, SourceError, "expired"),
        (400, {"message": "[creationDatetime.from] not valid for type datetime"}, SourceError, "creationDatetime"),
        (409, "not a dict", SourceError, "HTTP 409"),
    ],
)
def test_each_refusal_says_what_it_is(status: int, body: Any, kind: type[Exception], words: str) -> None:
    error = error_for(status, body)
    assert type(error) is kind
    assert words in str(error)


def test_the_path_in_a_message_has_no_query() -> None:
    """Queries may carry phone numbers or dates: messages name the route, not its parameters."""
    error = error_for(400, {"message": "bad"})
    assert "/sms/sms-x-1/outgoing" in str(error)
    assert "creationDatetime" not in str(error)


def test_a_400_about_a_datetime_is_a_bad_parameter_not_clock_skew() -> None:
    error = error_for(400, {"message": "Given data (soon) is not valid for type datetime"})
    assert not isinstance(error, AuthError)
    assert "clock" not in str(error)


@settings(max_examples=200, deadline=None)
@given(
    status=st.sampled_from(sorted(RETRY_STATUSES)),
    body=st.none() | st.just({"message": "busy"}) | st.just({"errorCode": "QUERY_TIME_OUT"}),
    retry_after=st.none() | st.integers(min_value=0, max_value=3600),
)
def test_transient_statuses_are_retried_whatever_the_body(status: int, body: Any, retry_after: int | None) -> None:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    error = error_for(status, body, **headers)
    assert isinstance(error, Retryable)
    assert error.throttled is (status == 429)
    assert error.retry_after == (None if retry_after is None else float(retry_after))
    assert not error.refused


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(min_value=300, max_value=599).filter(lambda s: s not in RETRY_STATUSES and s != 404),
    code=st.sampled_from(["", "INVALID_KEY", "NOT_GRANTED_CALL", "QUERY_TIME_OUT", "SOMETHING_ELSE"]),
    message=st.text(max_size=30),
)
def test_no_other_status_is_retried_or_read_as_absence(status: int, code: str, message: str) -> None:
    """Only transient statuses are tried again, and only a 404 means "not there" (which may delete nothing)."""
    error = error_for(status, {"errorCode": code, "message": message})
    assert isinstance(error, SourceError)
    assert not isinstance(error, Retryable | NotFound)
    assert isinstance(error, ClockSkew) is (code == "QUERY_TIME_OUT" and status not in (401, 403))


def test_the_query_id_is_kept_for_ovh_support() -> None:
    error = error_for(409, {"message": "Conflict"}, **{"X-OVH-QUERYID": "EU.ext-3.1234"})
    assert "EU.ext-3.1234" in str(error)


# -- network failures ----------------------------------------------------------------------------------


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("error", "words", "refused"),
    [
        (
            chained(requests.ConnectionError("boom"), ConnectionRefusedError(111, "refused")),
            "connection refused by api.example",
            True,
        ),
        (
            chained(requests.ConnectionError("boom"), socket.gaierror(-2, "Name or service not known")),
            "cannot resolve the host of api.example",
            False,
        ),
        (requests.ReadTimeout("read timed out"), "api.example did not answer in time", False),
        (chained(requests.ConnectionError("boom"), TimeoutError()), "did not answer in time", False),
        (requests.ConnectionError("reset"), "network error talking to api.example (ConnectionError)", False),
    ],
)
def test_network_failures_are_named_from_their_chain(error: BaseException, words: str, refused: bool) -> None:
    description, was_refused = network_failure(error, "api.example")
    assert words in description
    assert was_refused is refused


def test_a_refusal_deep_in_the_args_is_found() -> None:
    """urllib3 keeps the OSError in ``reason`` and requests in ``args``: both are followed."""
    inner = ConnectionRefusedError(111, "refused")
    middle = requests.ConnectionError(OSError("wrapped", inner))
    middle.reason = inner  # type: ignore[attr-defined]
    assert network_failure(requests.ConnectionError(middle), "h")[1] is True


def test_a_chain_that_loops_ends() -> None:
    first = requests.ConnectionError("first")
    second = OSError("second")
    first.__context__ = second
    second.__context__ = first
    description, refused = network_failure(first, "h")
    assert description == "network error talking to h (OSError)"
    assert refused is False
