"""Shared pieces of the source's unit tests: the OVH emulator on loopback, settings pointing at it, fakes.

Every test talks HTTP to a real emulator (no mock of python-ovh); the emulator is started and stopped
by the fixture.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import pytest
import requests
import requests.adapters

from archiver.config import OvhSettings
from archiver.emulator import DEMO_CREDENTIALS, EmulatorServer
from archiver.source.client import ApiClient

SERVICE = "sms-unit-1"
# A recent instant on the emulator's data: every record below is created within the last days.
RECENT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)


class FakeClock:
    """A monotonic clock that moves only when something sleeps on it; records every sleep.

    Bounded: more than ``max_sleeps`` sleeps fail the test (a loop that never gets what it waits for).
    """

    def __init__(self, *, max_sleeps: int = 10_000) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.max_sleeps = max_sleeps

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if len(self.slept) > self.max_sleeps:
            raise AssertionError(f"{len(self.slept)} sleeps: the caller waits for ever (last: {seconds!r} s)")
        self.now += seconds


def ovh_settings(emulator: EmulatorServer, **overrides: Any) -> OvhSettings:
    """Settings for the emulator with the demo credentials; ``overrides`` win."""
    return OvhSettings.model_validate(
        {
            "endpoint": emulator.url,
            **asdict(DEMO_CREDENTIALS),
            "max_requests_per_second": 1000,
            **overrides,
        }
    )


def record(sms_id: int, *, minutes_ago: int = 10, **fields: Any) -> dict[str, Any]:
    """An outgoing record as OVH's API answers it, created ``minutes_ago`` before ``RECENT``."""
    created = (RECENT - dt.timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")
    return {
        "id": sms_id,
        "creationDatetime": created,
        "sender": "ACME",
        "receiver": "+33612345678",
        "message": f"message {sms_id}",
        "ptt": 4,
        "deliveredAt": None,
        "tag": "",
        **fields,
    }


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """The emulator on 127.0.0.1 with one empty service, stopped at the end of the test."""
    with EmulatorServer(**asdict(DEMO_CREDENTIALS)) as server:
        server.add_service(SERVICE)
        yield server


class RewritingTransport(requests.adapters.HTTPAdapter):
    """A transport that sends every request to the emulator for real, then lets a test change the answer.

    ``rewrite(request, body)`` returns the body to hand back (bytes) or None to keep it: a way to give
    the client answers the emulator never gives (a batch out of order, a CSV that is not UTF-8), while
    python-ovh and requests run unchanged. Mounted with ``mount_transport``.
    """

    def __init__(self, rewrite: Callable[[requests.PreparedRequest, bytes], bytes | None]) -> None:
        super().__init__()
        self.rewrite = rewrite

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["stream"] = False  # the body is read here, to be rewritten
        response = super().send(request, *args, **kwargs)
        changed = self.rewrite(request, response.content)
        if changed is not None:
            response._content = changed
        return response


def mount_transport(client: ApiClient, transport: requests.adapters.BaseAdapter) -> None:
    """Route every call of ``client`` (signed calls and downloads) through ``transport``."""
    client._ovh._session.mount("http://", transport)
