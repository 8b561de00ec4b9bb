"""archiver/source/export.py: OVH's CSV history export (docs/ovh-api.md, "CSV export"), over HTTP to the emulator.

Windows are a pure rule (hypothesis); the exporter is exercised against the emulator, with a transport
that changes its answers where OVH might answer otherwise (never ready, not UTF-8, no download URL).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.emulator import EmulatorServer
from archiver.errors import AuthError
from archiver.source.client import ApiClient
from archiver.source.export import EXPORT_WINDOW, Exporter, ExportUnavailable, export_windows
from tests.unit.source.conftest import (
    RECENT,
    SERVICE,
    FakeClock,
    RewritingTransport,
    mount_transport,
    ovh_settings,
    record,
)

DAY_MINUTES = 24 * 60
DELETE_DOCUMENT = ("DELETE", "/me/document/{id}")

# -- windows -------------------------------------------------------------------------------------------

instants = st.datetimes(min_value=dt.datetime(2015, 1, 1), max_value=dt.datetime(2035, 1, 1), timezones=st.just(dt.UTC))


@settings(max_examples=300, deadline=None)
@given(since=st.none() | instants, until=instants)
def test_windows_tile_the_range_newest_first_at_most_12_months_each(
    since: dt.datetime | None, until: dt.datetime
) -> None:
    windows = list(export_windows(since, until))
    start = since if since is not None else until - EXPORT_WINDOW
    if until <= start:
        assert windows == []
        return
    assert windows[0][1] == until
    assert windows[-1][0] == start
    for (_, older_end), (newer_start, _) in zip(windows[1:], windows, strict=False):
        assert older_end == newer_start  # no gap, no overlap
    for window_start, window_end in windows:
        assert dt.timedelta(0) < window_end - window_start <= EXPORT_WINDOW
    assert len(windows) <= (until - start) // EXPORT_WINDOW + 1


# -- the exporter --------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(max_sleeps=1000)


@pytest.fixture
def make_exporter(emulator: EmulatorServer, clock: FakeClock) -> Callable[..., Exporter]:
    def make(rewrite: Callable[[requests.PreparedRequest, bytes], bytes | None] | None = None) -> Exporter:
        client = ApiClient(ovh_settings(emulator), sleep=lambda seconds: None)
        if rewrite is not None:
            mount_transport(client, RewritingTransport(rewrite))
        return Exporter(client, sleep=clock.sleep)

    return make


def exported_ids(exporter: Exporter, since: dt.datetime | None, until: dt.datetime = RECENT) -> list[int]:
    return [int(row["id"]) for row in exporter.rows(SERVICE, "outgoing", since=since, until=until)]


def test_rows_of_the_range_are_read_by_header_and_the_document_deleted(
    emulator: EmulatorServer, make_exporter: Callable[..., Exporter], clock: FakeClock
) -> None:
    for sms_id in range(1, 6):
        emulator.add_outgoing(SERVICE, record(sms_id, minutes_ago=sms_id * 60, message=f'say "hi";\n{sms_id}'))
    emulator.add_outgoing(SERVICE, record(99, minutes_ago=30 * DAY_MINUTES))  # before the range
    rows = list(make_exporter().rows(SERVICE, "outgoing", since=RECENT - dt.timedelta(days=2), until=RECENT))
    assert sorted(int(row["id"]) for row in rows) == [1, 2, 3, 4, 5]
    assert {row["message"] for row in rows} == {f'say "hi";\n{n}' for n in range(1, 6)}
    assert emulator.stats.count(*DELETE_DOCUMENT) == 1
    assert clock.slept == [1.0]  # the first poll sees the document still empty


def test_a_range_over_a_year_is_read_in_windows_newest_first(
    emulator: EmulatorServer, make_exporter: Callable[..., Exporter]
) -> None:
    emulator.add_outgoing(SERVICE, record(1, minutes_ago=500 * DAY_MINUTES))
    emulator.add_outgoing(SERVICE, record(2, minutes_ago=10 * DAY_MINUTES))
    ids = exported_ids(make_exporter(), since=RECENT - dt.timedelta(days=700))
    assert ids == [2, 1]
    assert emulator.stats.count("GET", "/sms/{sn}/document") == 2
    assert emulator.stats.count(*DELETE_DOCUMENT) == 2


def test_without_a_start_the_export_reaches_back_one_window(
    emulator: EmulatorServer, make_exporter: Callable[..., Exporter]
) -> None:
    emulator.add_outgoing(SERVICE, record(1, minutes_ago=500 * DAY_MINUTES))
    emulator.add_outgoing(SERVICE, record(2, minutes_ago=10 * DAY_MINUTES))
    assert exported_ids(make_exporter(), since=None) == [2]


def test_a_refused_export_is_unavailable(emulator: EmulatorServer, make_exporter: Callable[..., Exporter]) -> None:
    emulator.faults.export_supported = False
    with pytest.raises(ExportUnavailable, match="refused"):
        exported_ids(make_exporter(), since=None)


def test_refused_credentials_stay_an_auth_error(
    emulator: EmulatorServer, make_exporter: Callable[..., Exporter]
) -> None:
    """Not "export unavailable, use the API": the API would be refused too, and the user must fix the key."""
    exporter = make_exporter()
    emulator.consumer_key = "revoked-in-the-meantime"
    with pytest.raises(AuthError) as raised:
        exported_ids(exporter, since=None)
    assert not isinstance(raised.value, ExportUnavailable)


def document_answer(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., bytes | None]:
    def rewrite(request: requests.PreparedRequest, body: bytes) -> bytes | None:
        if request.method == "GET" and "/me/document/" in str(request.url):
            return json.dumps(change(json.loads(body))).encode()
        return None

    return rewrite


def download_answer(content: bytes) -> Callable[..., bytes | None]:
    def rewrite(request: requests.PreparedRequest, body: bytes) -> bytes | None:
        return content if "/_download/" in str(request.url) else None

    return rewrite


@pytest.mark.parametrize(
    ("rewrite", "words"),
    [
        (document_answer(lambda document: {**document, "size": 0}), "not ready after 120 polls"),
        (document_answer(lambda document: {**document, "getUrl": "ftp://x/y.csv"}), "no download URL"),
        (document_answer(lambda document: {**document, "getUrl": None}), "no download URL"),
        (
            document_answer(
                lambda document: {**document, "getUrl": document["getUrl"].replace("/_download/", "/_download/x")}
            ),
            "downloading the export answered HTTP 404",
        ),
        (download_answer(b"id;date;message\r\n1;2026-01-01;\xff\xfe caf\xe9\r\n"), "not readable CSV"),
        (download_answer(b'id;date;message\r\n1;2026-01-01;"unclosed'), "not readable CSV"),
    ],
    ids=["never-ready", "ftp-url", "no-url", "download-404", "not-utf8", "unclosed-quote"],
)
def test_an_export_that_cannot_be_had_is_unavailable_and_its_document_deleted(
    emulator: EmulatorServer,
    make_exporter: Callable[..., Exporter],
    rewrite: Callable[..., bytes | None],
    words: str,
) -> None:
    emulator.add_outgoing(SERVICE, record(1))
    with pytest.raises(ExportUnavailable, match=words):
        exported_ids(make_exporter(rewrite), since=None)
    assert emulator.stats.count(*DELETE_DOCUMENT) == 1


def test_polling_is_bounded(emulator: EmulatorServer, make_exporter: Callable[..., Exporter], clock: FakeClock) -> None:
    exporter = make_exporter(document_answer(lambda document: {**document, "size": 0}))
    with pytest.raises(ExportUnavailable):
        exported_ids(exporter, since=None)
    assert clock.slept == [1.0] * 120


def test_a_document_that_vanishes_while_generated_is_unavailable(
    emulator: EmulatorServer, make_exporter: Callable[..., Exporter]
) -> None:
    created: list[str] = []

    def remember(request: requests.PreparedRequest, body: bytes) -> bytes | None:
        if str(request.url).split("?")[0].endswith("/document"):
            created.append(json.loads(body))
        return None

    exporter = make_exporter(remember)
    exporter.sleep = lambda seconds: exporter.client.request("DELETE", f"/me/document/{created[0]}")
    with pytest.raises(ExportUnavailable, match="vanished"):
        exported_ids(exporter, since=None)
