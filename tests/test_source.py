from __future__ import annotations

from dataclasses import asdict

import pytest

from archiver.config import OvhSettings
from archiver.emulator import DEMO_CREDENTIALS, EmulatorServer
from archiver.errors import AuthError, SourceError
from archiver.source import AdaptiveConcurrency, OvhSource, RateLimiter, backoff_delay
from archiver.source.answers import access_rule as _access_rule
from archiver.source.fetch import says_not_found as _says_not_found


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_paces_calls_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        limiter.acquire()
    # the first call is free (a full bucket), the next ten take 0.5 s each
    assert clock.now == pytest.approx(5.0)


def test_rate_limiter_pause_holds_everyone_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100.0, burst=1, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.pause(3.0)
    limiter.acquire()
    assert clock.now >= 3.0


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    for attempt in range(12):
        delay = backoff_delay(attempt, None, base=0.5, cap=60)
        assert 0 <= delay <= min(60, 0.5 * 2**attempt)
    assert backoff_delay(0, 7.0) >= 7.0


def test_adaptive_concurrency_halves_and_grows_back() -> None:
    limit = AdaptiveConcurrency(8, grow_after=2)
    limit.throttled()
    assert limit.limit == 4
    limit.throttled()
    limit.throttled()
    limit.throttled()
    assert limit.limit == 1
    for _ in range(4):
        limit.succeeded()
    assert limit.limit == 3
    for _ in range(100):
        limit.succeeded()
    assert limit.limit == 8


@pytest.mark.parametrize(
    ("method", "path", "rule"),
    [
        ("GET", "/sms", "GET /sms"),
        ("GET", "/sms/sn-1/outgoing/12", "GET /sms/*"),
        ("DELETE", "/sms/x/incoming/1", "DELETE /sms/*"),
    ],
)
def test_access_rule_named_in_403_messages(method: str, path: str, rule: str) -> None:
    assert _access_rule(method, path) == rule


def emulator_source(emulator: EmulatorServer, **overrides: object) -> OvhSource:
    """An OvhSource on the emulator, over HTTP (no mock of python-ovh)."""
    return OvhSource(
        OvhSettings.model_validate(
            {
                "endpoint": emulator.url,
                "application_key": DEMO_CREDENTIALS.application_key,
                "application_secret": DEMO_CREDENTIALS.application_secret,
                "consumer_key": DEMO_CREDENTIALS.consumer_key,
                "max_requests_per_second": 1000,
                **overrides,
            }
        ),
        sleep=lambda seconds: None,
    )


def test_a_400_about_a_datetime_parameter_is_not_clock_skew() -> None:
    """Only OVH's QUERY_TIME_OUT code means "your timestamp"; "datetime" in a message does not."""
    with EmulatorServer(**asdict(DEMO_CREDENTIALS)) as emulator:
        emulator.add_service("sms-x-1")
        with emulator_source(emulator) as source, pytest.raises(SourceError) as raised:
            source.request("GET", "/sms/sms-x-1/outgoing", {"creationDatetime.from": "not-a-date"})
    assert not isinstance(raised.value, AuthError)
    assert "clock" not in str(raised.value)
    assert "creationDatetime.from" in str(raised.value)


def test_a_refused_timestamp_is_clock_skew() -> None:
    with EmulatorServer(**asdict(DEMO_CREDENTIALS)) as emulator:
        emulator.add_service("sms-x-1")
        with emulator_source(emulator) as source:
            source.list_services()  # python-ovh measures the clock difference once
            emulator.faults.clock_skew_seconds = 3600
            assert source.list_services() == ["sms-x-1"]  # re-measured once, then signed right
            assert source.clock_offset_seconds() == pytest.approx(3600, abs=2)


@pytest.mark.parametrize("offset", [-3 * 86400, -7200, 0, 5400])
def test_now_is_ovh_s_clock(offset: int) -> None:
    with EmulatorServer(**asdict(DEMO_CREDENTIALS)) as emulator:
        emulator.faults.clock_skew_seconds = offset
        with emulator_source(emulator) as source:
            ovh_now = source.now()
        assert abs((ovh_now - emulator.now()).total_seconds()) <= 2


@pytest.mark.parametrize(
    ("error", "not_found"),
    [
        ("Not found", True),
        ({"code": 404, "message": "Object not found"}, True),
        ("This SMS does not exist", True),
        (None, False),
        ("", False),
        ("Internal error", False),
        ({"message": "timeout"}, False),
    ],
)
def test_only_an_explicit_not_found_means_gone(error: object, not_found: bool) -> None:
    assert _says_not_found(error) is not_found
