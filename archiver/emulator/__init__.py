"""OVH API v1 emulator for tests, the demo and the benchmark (loopback only, no extra dependencies).

Typical use::

    with EmulatorServer(**dataclasses.asdict(DEMO_CREDENTIALS), services=generate_sample_data()) as server:
        ovh.client.ENDPOINTS["sms-archiver-emulator"] = server.url
        ...
"""

from __future__ import annotations

from archiver.emulator.data import ServiceData, generate_sample_data
from archiver.emulator.server import (
    DEMO_CREDENTIALS,
    DemoCredentials,
    EmulatorServer,
    Faults,
    RequestStats,
    serve_forever_cli,
)

__all__ = [
    "DEMO_CREDENTIALS",
    "DemoCredentials",
    "EmulatorServer",
    "Faults",
    "RequestStats",
    "ServiceData",
    "generate_sample_data",
    "serve_forever_cli",
]
