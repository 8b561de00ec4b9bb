from __future__ import annotations

from dataclasses import asdict

import pytest

from archiver.config import OvhSettings
from archiver.emulator import DEMO_CREDENTIALS, EmulatorServer
from archiver.errors import AuthError, SourceError
from archiver.source import OvhSource
from archiver.source.answers import access_rule as _access_rule
from archiver.source.fetch import says_not_found as _says_not_found


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
