"""OVH API v1 emulator for tests, the demo and the benchmark (loopback only, no extra dependencies).

Typical use::

    with EmulatorServer(**dataclasses.asdict(DEMO_CREDENTIALS), services=generate_sample_data()) as server:
        ovh.client.ENDPOINTS["sms-archiver-emulator"] = server.url
        ...

It stands for OVH, so it imports nothing from the archiver outside this package. Its modules:
``server`` (HTTP glue, ``EmulatorServer``), ``routes`` (each API endpoint), ``signatures`` (credentials and
request signatures), ``faults`` (injected misbehaviour), ``memory_store`` (the records), ``protocol``
(request, reply, OVH's errors), ``stats`` (request counters), ``data`` (sample data, CSV export format)
and ``cli`` (the standalone command).
"""

from __future__ import annotations

from archiver.emulator.cli import serve_forever_cli
from archiver.emulator.data import ServiceData, generate_sample_data
from archiver.emulator.faults import Faults
from archiver.emulator.server import EmulatorServer
from archiver.emulator.signatures import DEMO_CREDENTIALS, DemoCredentials
from archiver.emulator.stats import RequestStats

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
