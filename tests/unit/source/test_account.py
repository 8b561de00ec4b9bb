"""archiver/source/account.py: ``OvhSource``, the calls the archiver makes, over HTTP to the emulator."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
import requests

from archiver.emulator import EmulatorServer
from archiver.errors import SourceError
from archiver.records import PTT_DESCRIPTIONS
from archiver.source import GONE, OvhSource
from tests.unit.source.conftest import RECENT, SERVICE, RewritingTransport, mount_transport, ovh_settings, record


@pytest.fixture
def source(emulator: EmulatorServer) -> Iterator[OvhSource]:
    with OvhSource(ovh_settings(emulator), sleep=lambda seconds: None) as opened:
        yield opened


def test_services_are_listed_sorted(emulator: EmulatorServer, source: OvhSource) -> None:
    emulator.add_service("sms-aaa-1")
    assert source.list_services() == ["sms-aaa-1", SERVICE]


def only_for(path_end: str, answer: object) -> RewritingTransport:
    """A transport that answers ``answer`` to the GETs whose path ends with ``path_end``."""

    def rewrite(request: requests.PreparedRequest, body: bytes) -> bytes | None:
        path = str(request.url).split("?")[0]
        return json.dumps(answer).encode() if request.method == "GET" and path.endswith(path_end) else None

    return RewritingTransport(rewrite)


def test_services_in_ovh_s_order_are_sorted(source: OvhSource) -> None:
    mount_transport(source.client, only_for("/sms", ["sms-b-1", "sms-c-1", "sms-a-1"]))
    assert source.list_services() == ["sms-a-1", "sms-b-1", "sms-c-1"]


@pytest.mark.parametrize("answer", [["sms-a-1", 2], {"services": []}, None])
def test_a_services_answer_that_is_not_names_is_refused(source: OvhSource, answer: object) -> None:
    mount_transport(source.client, only_for("/sms", answer))
    with pytest.raises(SourceError, match="did not answer a list of service names"):
        source.list_services()


def test_a_service_that_does_not_exist_is_named(source: OvhSource) -> None:
    source.check_service(SERVICE)
    with pytest.raises(SourceError, match="'sms-nope-1' does not exist"):
        source.check_service("sms-nope-1")
    with pytest.raises(SourceError, match="'sms-nope-1' does not exist"):
        source.list_ids("sms-nope-1", "outgoing", since=None, until=RECENT)


def test_ids_are_listed_with_both_ends_inclusive(emulator: EmulatorServer, source: OvhSource) -> None:
    for sms_id, minutes_ago in [(1, 120), (2, 60), (3, 30), (4, 0)]:
        emulator.add_outgoing(SERVICE, record(sms_id, minutes_ago=minutes_ago))
    since = RECENT - dt.timedelta(minutes=60)
    until = RECENT - dt.timedelta(minutes=30)
    assert sorted(source.list_ids(SERVICE, "outgoing", since=since, until=until)) == [2, 3]
    assert sorted(source.list_ids(SERVICE, "outgoing", since=None, until=until)) == [1, 2, 3]
    assert source.list_ids(SERVICE, "incoming", since=None, until=RECENT) == []


@pytest.mark.parametrize(
    "answer",
    [[1, "2"], [1, True], {"ids": [1]}, None],
    ids=["a-string", "a-boolean", "not-a-list", "null"],
)
def test_a_listing_that_is_not_a_list_of_ids_is_refused(source: OvhSource, answer: object) -> None:
    """An id we cannot read is never skipped silently: the listing is refused as a whole."""
    mount_transport(source.client, only_for("/outgoing", answer))
    with pytest.raises(SourceError, match="did not answer a list of ids"):
        source.list_ids(SERVICE, "outgoing", since=None, until=RECENT)


def test_a_record_is_read_or_gone(emulator: EmulatorServer, source: OvhSource) -> None:
    emulator.add_outgoing(SERVICE, record(5))
    assert source.get_record(SERVICE, "outgoing", 5) == emulator.outgoing(SERVICE)[5]
    assert source.get_record(SERVICE, "outgoing", 6) is GONE


def test_a_delete_says_whether_the_record_was_still_there(emulator: EmulatorServer, source: OvhSource) -> None:
    emulator.add_outgoing(SERVICE, record(5))
    assert source.delete_record(SERVICE, "outgoing", 5) is True
    assert source.delete_record(SERVICE, "outgoing", 5) is False
    assert emulator.deleted == [(SERVICE, "outgoing", 5)]


def test_ptt_texts_come_built_in_then_from_ovh_once_then_as_a_label(
    emulator: EmulatorServer, source: OvhSource
) -> None:
    known = next(iter(PTT_DESCRIPTIONS))
    assert source.ptt_text(known) == PTT_DESCRIPTIONS[known]
    assert emulator.stats.count("GET", "/sms/ptts") == 0
    assert source.ptt_text(31337) == "ptt 31337"  # unknown at OVH too (404)
    assert source.ptt_text(31337) == "ptt 31337"
    assert emulator.stats.count("GET", "/sms/ptts") == 1  # asked once per code


def test_the_client_s_counters_and_clock_are_the_source_s(emulator: EmulatorServer, source: OvhSource) -> None:
    source.list_services()
    source.get_record(SERVICE, "outgoing", 1)
    assert source.calls is source.client.calls
    assert source.calls == {"ok": 1, "http_404": 1}
    assert source.total_calls == 2
    assert source.retries == 0
    assert source.limiter is source.client.limiter
    assert source.concurrency is source.client.concurrency
    assert abs((source.now() - emulator.now()).total_seconds()) <= 2


def test_fetching_and_exporting_ask_nothing_until_read(emulator: EmulatorServer, source: OvhSource) -> None:
    emulator.add_outgoing(SERVICE, record(5))
    fetch = source.fetch(SERVICE, "outgoing", [5])
    rows = source.export_rows(SERVICE, "outgoing", since=None, until=RECENT)
    assert emulator.stats.total == 0
    assert list(fetch) == [(5, emulator.outgoing(SERVICE)[5])]
    assert [row["id"] for row in rows] == ["5"]
    assert source.strategy == "batch"  # auto, settled by its probe
