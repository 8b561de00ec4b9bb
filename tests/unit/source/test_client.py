"""archiver/source/client.py: signed calls, retries, OVH's clock and call counts, over HTTP to the emulator."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from dataclasses import asdict

import ovh.client
import pytest
from structlog.testing import capture_logs

from archiver.config import OvhSettings
from archiver.emulator import DEMO_CREDENTIALS, EmulatorServer
from archiver.errors import AuthError, ConfigError, SourceError
from archiver.source.answers import NotFound
from archiver.source.client import CLOCK_TOLERANCE_SECONDS, ApiClient, DownloadError, register_endpoint
from archiver.source.limits import RateLimiter
from tests.unit.source.conftest import SERVICE, FakeClock, ovh_settings


class Sleeps:
    """Records the sleeps of the retry loop (none really happens)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    yield port


def client_for(emulator: EmulatorServer, sleeps: Sleeps | None = None, **overrides: object) -> ApiClient:
    return ApiClient(ovh_settings(emulator, **overrides), sleep=sleeps or Sleeps())


# -- one call ------------------------------------------------------------------------------------------


def test_a_call_answers_its_json_and_is_counted(emulator: EmulatorServer) -> None:
    client = client_for(emulator)
    assert client.request("GET", "/sms") == [SERVICE]
    assert client.calls["ok"] == 1
    assert client.total_calls == 1
    assert client.retries == 0


def test_settings_without_credentials_are_refused() -> None:
    settings = OvhSettings.model_validate({"endpoint": "http://127.0.0.1:9/1.0"})
    with pytest.raises(ConfigError, match="SMS_ARCHIVER_OVH__APPLICATION_KEY"):
        ApiClient(settings)


def test_an_endpoint_url_is_registered_under_a_name_of_its_own() -> None:
    first = register_endpoint("http://127.0.0.1:8001/1.0")
    second = register_endpoint("http://127.0.0.1:8002/1.0")
    assert first != second
    assert ovh.client.ENDPOINTS[first] == "http://127.0.0.1:8001/1.0"
    assert register_endpoint("ovh-eu") == "ovh-eu"


# -- retries -------------------------------------------------------------------------------------------


def test_transient_errors_are_retried_then_reported(emulator: EmulatorServer, sleeps: Sleeps) -> None:
    emulator.faults.error_rate_500 = 1.0
    client = client_for(emulator, sleeps, max_retries=3)
    with pytest.raises(SourceError, match="failed after 4 attempts: HTTP 500") as raised:
        client.request("GET", f"/sms/{SERVICE}")
    assert not isinstance(raised.value, AuthError)
    assert emulator.stats.status_count(500) == 4
    assert client.calls["http_500"] == 4
    assert client.retries == 3
    assert len(sleeps.delays) == 3


def test_a_retry_that_succeeds_answers_normally(emulator: EmulatorServer) -> None:
    emulator.faults.error_rate_500 = 1.0

    def heal(seconds: float) -> None:
        emulator.faults.error_rate_500 = 0.0

    client = ApiClient(ovh_settings(emulator), sleep=heal)
    assert client.request("GET", "/sms") == [SERVICE]
    assert client.calls == {"http_500": 1, "ok": 1}
    assert client.retries == 1


def test_a_429_halves_concurrency_and_pauses_everyone_for_its_retry_after(
    emulator: EmulatorServer, sleeps: Sleeps
) -> None:
    emulator.faults.error_rate_429 = 1.0
    emulator.faults.retry_after_seconds = 7
    client = client_for(emulator, sleeps, max_retries=2, concurrency=8)
    clock = FakeClock()
    client.limiter = RateLimiter(1000.0, burst=5, clock=clock, sleep=clock.sleep)
    with pytest.raises(SourceError, match="HTTP 429"):
        client.request("GET", "/sms")
    assert client.concurrency.limit == 1  # 8 -> 4 -> 2 -> 1
    assert all(delay >= 7 for delay in sleeps.delays)  # never sooner than Retry-After
    assert len(sleeps.delays) == 2
    assert sum(clock.slept) >= 7  # the shared limiter held the next call back too


def test_a_body_that_is_not_json_is_retried(emulator: EmulatorServer, sleeps: Sleeps) -> None:
    emulator.faults.malformed_json_rate = 1.0
    client = client_for(emulator, sleeps, max_retries=1)
    with pytest.raises(SourceError, match="not JSON"):
        client.request("GET", "/sms")
    assert client.calls["malformed_response"] == 2


def test_a_dropped_connection_is_a_network_error_retried(emulator: EmulatorServer, sleeps: Sleeps) -> None:
    emulator.faults.drop_rate = 1.0
    client = client_for(emulator, sleeps, max_retries=2)
    with pytest.raises(SourceError, match="network error") as raised:
        client.request("GET", "/sms")
    assert f"127.0.0.1:{emulator.port}" in str(raised.value)
    assert client.calls["network_error"] == 3


def test_a_refused_connection_is_retried_only_a_little(closed_port: int, sleeps: Sleeps) -> None:
    """Nothing listening is most often a wrong endpoint: say so in seconds, not after a long backoff."""
    settings = OvhSettings.model_validate(
        {"endpoint": f"http://127.0.0.1:{closed_port}/1.0", **asdict(DEMO_CREDENTIALS), "max_retries": 6}
    )
    client = ApiClient(settings, sleep=sleeps)
    with pytest.raises(SourceError, match=f"connection refused by 127.0.0.1:{closed_port}"):
        client.request("GET", "/sms")
    assert client.calls["network_error"] == 3
    assert len(sleeps.delays) == 2


def test_refused_credentials_are_not_retried_and_stay_secret(emulator: EmulatorServer, sleeps: Sleeps) -> None:
    secret = "a-secret-that-must-never-show-9f2c"
    client = client_for(emulator, sleeps, application_key="wrong-key", application_secret=secret)
    with capture_logs() as logs, pytest.raises(AuthError, match="SMS_ARCHIVER_OVH__APPLICATION_KEY") as raised:
        client.request("GET", "/sms")
    assert client.calls == {"http_403": 1}
    assert sleeps.delays == []
    assert secret not in str(raised.value)
    assert secret not in repr(logs)


def test_a_404_is_not_found_not_an_error_to_retry(emulator: EmulatorServer, sleeps: Sleeps) -> None:
    client = client_for(emulator, sleeps)
    with pytest.raises(NotFound):
        client.request("GET", f"/sms/{SERVICE}/outgoing/12345")
    assert client.calls == {"http_404": 1}
    assert sleeps.delays == []


# -- OVH's clock (docs/ovh-api.md, "Clock") ------------------------------------------------------------


def test_a_400_about_a_datetime_parameter_is_not_clock_skew(emulator: EmulatorServer) -> None:
    """Only OVH's QUERY_TIME_OUT code means "your timestamp"; "datetime" in a message does not."""
    client = client_for(emulator)
    with pytest.raises(SourceError) as raised:
        client.request("GET", f"/sms/{SERVICE}/outgoing", {"creationDatetime.from": "not-a-date"})
    assert not isinstance(raised.value, AuthError)
    assert "clock" not in str(raised.value)
    assert "creationDatetime.from" in str(raised.value)


def test_a_refused_timestamp_is_clock_skew(emulator: EmulatorServer) -> None:
    client = client_for(emulator)
    client.request("GET", "/sms")  # python-ovh measures the clock difference once
    emulator.faults.clock_skew_seconds = 3600
    assert client.request("GET", "/sms") == [SERVICE]  # re-measured once, then signed right
    assert client.clock_offset_seconds() == pytest.approx(3600, abs=2)
    assert client.calls["http_400"] == 1


@pytest.mark.parametrize("offset", [-3 * 86400, -7200, 0, 5400])
def test_now_is_ovh_s_clock(emulator: EmulatorServer, offset: int) -> None:
    emulator.faults.clock_skew_seconds = offset
    ovh_now = client_for(emulator).now()
    assert abs((ovh_now - emulator.now()).total_seconds()) <= 2


def test_a_large_clock_offset_is_logged_once(emulator: EmulatorServer) -> None:
    emulator.faults.clock_skew_seconds = 10 * CLOCK_TOLERANCE_SECONDS
    client = client_for(emulator)
    with capture_logs() as logs:
        client.clock_offset_seconds()
        client.now()
        client.request("GET", "/sms")
    offsets = [event for event in logs if event["event"] == "clock_offset"]
    assert len(offsets) == 1
    assert offsets[0]["offset_seconds"] == pytest.approx(10 * CLOCK_TOLERANCE_SECONDS, abs=2)


def test_a_small_clock_offset_is_not_logged(emulator: EmulatorServer) -> None:
    emulator.faults.clock_skew_seconds = CLOCK_TOLERANCE_SECONDS // 3
    with capture_logs() as logs:
        client_for(emulator).clock_offset_seconds()
    assert [event for event in logs if event["event"] == "clock_offset"] == []


# -- unsigned downloads --------------------------------------------------------------------------------


def test_a_download_streams_the_document(emulator: EmulatorServer) -> None:
    client = client_for(emulator)
    document_id = client.request("GET", f"/sms/{SERVICE}/document", {"wayType": "outgoing"})
    document = client.request("GET", f"/me/document/{document_id}")
    document = client.request("GET", f"/me/document/{document_id}")  # the first poll sees it empty
    into = io.BytesIO()
    client.download(document["getUrl"], into)
    assert into.getvalue().startswith(b"id;date;")
    assert len(into.getvalue()) == document["size"]


def test_a_download_refused_says_its_status(emulator: EmulatorServer) -> None:
    client = client_for(emulator)
    into = io.BytesIO()
    with pytest.raises(DownloadError, match="answered HTTP 404"):
        client.download(f"{emulator.base_url}/_download/nothing-here.csv", into)
    assert into.getvalue() == b""
    assert client.calls == {"http_404": 1}


def test_a_download_that_cannot_connect_says_so(emulator: EmulatorServer, closed_port: int) -> None:
    client = client_for(emulator)
    with pytest.raises(DownloadError, match=r"failed \(ConnectionError\)"):
        client.download(f"http://127.0.0.1:{closed_port}/_download/x.csv", io.BytesIO())
    assert client.calls == {"network_error": 1}
