"""The OVH API emulator, exercised through the real python-ovh client over loopback HTTP."""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import ovh
import ovh.exceptions
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.emulator import (
    DEMO_CREDENTIALS,
    EmulatorServer,
    Faults,
    ServiceData,
    generate_sample_data,
)
from archiver.emulator.data import PARIS, format_api_datetime, sms_parts
from archiver.emulator.memory_store import Collection

SERVICE = "sms-test12345-1"
NOW = datetime(2026, 5, 15, 12, 0, tzinfo=PARIS)
ENDPOINT_NAME = "sms-archiver-test"
OUTGOING_FIELDS = {
    "id",
    "creationDatetime",
    "sentAt",
    "deliveredAt",
    "sender",
    "receiver",
    "message",
    "messageLength",
    "numberOfSms",
    "credits",
    "ptt",
    "deliveryReceipt",
    "differedDelivery",
    "tag",
    "tariffCode",
    "batchID",
    "messageID",
}


def outgoing_record(sms_id: int, created: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": sms_id,
        "creationDatetime": created,
        "sentAt": created,
        "deliveredAt": None,
        "sender": "MaBoutique",
        "receiver": "+33612345678",
        "message": "Bonjour",
        "messageLength": 7,
        "numberOfSms": 1,
        "credits": 1.0,
        "ptt": 4,
        "deliveryReceipt": 1,
        "differedDelivery": 0,
        "tag": "",
        "tariffCode": "FR-STD",
        "batchID": None,
        "messageID": None,
    }
    record.update(fields)
    return record


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    data = generate_sample_data(services=(SERVICE,), outgoing=60, incoming=10, seed=7, now=NOW)
    with EmulatorServer(**asdict(DEMO_CREDENTIALS), services=data, faults=Faults(seed=3)) as running:
        yield running


@pytest.fixture
def client(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> ovh.Client:
    return make_client(server, monkeypatch)


def make_client(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch, **overrides: str) -> ovh.Client:
    # python-ovh only knows named endpoints; register ours for the duration of the test.
    monkeypatch.setitem(ovh.client.ENDPOINTS, ENDPOINT_NAME, server.url)
    credentials = {**asdict(DEMO_CREDENTIALS), **overrides}
    return ovh.Client(endpoint=ENDPOINT_NAME, **credentials)


def any_outgoing_id(server: EmulatorServer) -> int:
    return min(server.outgoing(SERVICE))


# --- authentication --------------------------------------------------------------------------------


def test_signed_calls_are_accepted(client: ovh.Client) -> None:
    assert client.get("/sms") == [SERVICE]
    account = client.get(f"/sms/{SERVICE}")
    assert account["status"] == "enable"


def test_auth_time_is_the_skewed_server_clock(server: EmulatorServer, client: ovh.Client) -> None:
    server.faults.clock_skew_seconds = 5000
    server_time = client.get("/auth/time", _need_auth=False)
    assert isinstance(server_time, int)
    assert abs(server_time - 5000 - time.time()) < 5


def test_wrong_secret_is_an_invalid_signature(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(server, monkeypatch, application_secret="not-the-secret")
    with pytest.raises(ovh.exceptions.BadParametersError, match="Invalid signature"):
        client.get("/sms")


def test_wrong_consumer_key_is_an_invalid_credential(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(server, monkeypatch, consumer_key="someone-else")
    with pytest.raises(ovh.exceptions.InvalidCredential):
        client.get("/sms")


def test_wrong_application_key_is_an_invalid_key(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(server, monkeypatch, application_key="other-app")
    with pytest.raises(ovh.exceptions.InvalidKey):
        client.get("/sms")


def test_stale_cached_time_delta_is_out_of_time(
    server: EmulatorServer, client: ovh.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.get("/sms")  # caches the time delta (0)
    server.faults.clock_skew_seconds = 1000
    with pytest.raises(ovh.exceptions.BadParametersError, match="Query out of time"):
        client.get("/sms")
    # A fresh client asks /auth/time again and compensates for the skew.
    assert make_client(server, monkeypatch).get("/sms") == [SERVICE]


def test_signature_covers_the_query_string(server: EmulatorServer, client: ovh.Client) -> None:
    response = client.raw_call("GET", f"/sms/{SERVICE}/outgoing?ptt=4")
    assert response.status_code == 200
    # Same signed headers replayed on another query: the signature no longer matches.
    tampered = requests.get(
        server.url + f"/sms/{SERVICE}/outgoing?ptt=5",
        headers={k: v for k, v in response.request.headers.items() if k.startswith("X-Ovh")},
        timeout=5,
    )
    assert tampered.status_code == 400
    assert tampered.json()["errorCode"] == "INVALID_SIGNATURE"


# --- listing and filters ---------------------------------------------------------------------------


@pytest.fixture
def boundary_service(server: EmulatorServer) -> str:
    service = "sms-bounds-1"
    server.add_outgoing(service, outgoing_record(1, "2026-05-01T10:00:00+02:00", ptt=5, tag="a"))
    server.add_outgoing(service, outgoing_record(2, "2026-05-01T11:00:00+02:00", tag="b"))
    server.add_outgoing(service, outgoing_record(3, "2026-05-01T12:00:00+02:00", receiver="+33700000000"))
    server.add_outgoing(service, outgoing_record(4, "2026-05-02T00:00:00+02:00"))
    return service


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"creationDatetime.from": "2026-05-01T11:00:00+02:00"}, {2, 3, 4}),
        ({"creationDatetime.to": "2026-05-01T11:00:00+02:00"}, {1, 2}),
        (
            {
                "creationDatetime.from": "2026-05-01T09:00:00.000Z",
                "creationDatetime.to": "2026-05-01T10:00:00Z",
            },
            {2, 3},
        ),
        ({"creationDatetime.from": "2026-05-02"}, {4}),
        ({"creationDatetime.to": "2026-05-01T10:00:00+02:00"}, {1}),
        ({}, {1, 2, 3, 4}),
    ],
)
def test_date_filters_are_inclusive_instants(
    client: ovh.Client, boundary_service: str, window: dict[str, str], expected: set[int]
) -> None:
    assert set(client.get(f"/sms/{boundary_service}/outgoing", **window)) == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"ptt": 5}, {1}),
        ({"tag": "b"}, {2}),
        ({"tag": ""}, {3, 4}),
        ({"receiver": "+33700000000"}, {3}),
        ({"ptt": 4, "creationDatetime.from": "2026-05-01T12:00:00+02:00"}, {3, 4}),
    ],
)
def test_equality_filters(
    client: ovh.Client, boundary_service: str, filters: dict[str, Any], expected: set[int]
) -> None:
    assert set(client.get(f"/sms/{boundary_service}/outgoing", **filters)) == expected


def test_invalid_date_and_unknown_service(client: ovh.Client) -> None:
    with pytest.raises(ovh.exceptions.BadParametersError):
        client.get(f"/sms/{SERVICE}/outgoing", **{"creationDatetime.from": "yesterday"})
    with pytest.raises(ovh.exceptions.ResourceNotFoundError, match="serviceName = sms-nope"):
        client.get("/sms/sms-nope/outgoing")


def test_listing_is_complete_but_not_sorted(server: EmulatorServer, client: ovh.Client) -> None:
    ids = client.get(f"/sms/{SERVICE}/outgoing")
    assert set(ids) == set(server.outgoing(SERVICE))
    assert ids != sorted(ids)
    assert ids != sorted(ids, reverse=True)
    incoming = client.get(f"/sms/{SERVICE}/incoming", **{"creationDatetime.from": "2020-01-01"})
    assert set(incoming) == set(server.incoming(SERVICE))


# --- records ---------------------------------------------------------------------------------------


def test_get_one_record(server: EmulatorServer, client: ovh.Client) -> None:
    sms_id = any_outgoing_id(server)
    record = client.get(f"/sms/{SERVICE}/outgoing/{sms_id}")
    assert record == server.outgoing(SERVICE)[sms_id]
    assert set(record) == OUTGOING_FIELDS
    incoming_id = min(server.incoming(SERVICE))
    assert client.get(f"/sms/{SERVICE}/incoming/{incoming_id}")["id"] == incoming_id
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get(f"/sms/{SERVICE}/outgoing/1")
    with pytest.raises(ovh.exceptions.BadParametersError):
        client.get(f"/sms/{SERVICE}/outgoing/abc")


def test_batch_get(server: EmulatorServer, client: ovh.Client) -> None:
    first, second = sorted(server.outgoing(SERVICE))[:2]
    response = client.raw_call("GET", f"/sms/{SERVICE}/outgoing/{second},1,{first}", headers={"X-Ovh-Batch": ","})
    assert response.status_code == 200
    elements = response.json()
    assert [element["key"] for element in elements] == [str(second), "1", str(first)]
    assert elements[0] == {"key": str(second), "value": server.outgoing(SERVICE)[second], "error": None}
    assert elements[1] == {"key": "1", "value": None, "error": "Not found"}

    without_header = client.raw_call("GET", f"/sms/{SERVICE}/outgoing/{first},{second}")
    assert without_header.status_code == 400
    too_many = ",".join(str(n) for n in range(501))
    assert (
        client.raw_call("GET", f"/sms/{SERVICE}/outgoing/{too_many}", headers={"X-Ovh-Batch": ","}).status_code == 400
    )
    server.faults.batch_supported = False
    refused = client.raw_call("GET", f"/sms/{SERVICE}/outgoing/{first},{second}", headers={"X-Ovh-Batch": ","})
    assert refused.status_code == 400
    assert refused.json()["message"] == "Invalid batch request"


def test_delete_then_not_found(server: EmulatorServer, client: ovh.Client) -> None:
    sms_id = any_outgoing_id(server)
    assert client.delete(f"/sms/{SERVICE}/outgoing/{sms_id}") is None
    assert server.deleted == [(SERVICE, "outgoing", sms_id)]
    assert sms_id not in client.get(f"/sms/{SERVICE}/outgoing")
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get(f"/sms/{SERVICE}/outgoing/{sms_id}")
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.delete(f"/sms/{SERVICE}/outgoing/{sms_id}")


def test_update_and_corrupt_records(server: EmulatorServer, client: ovh.Client) -> None:
    sms_id = any_outgoing_id(server)
    server.update_outgoing(SERVICE, sms_id, ptt=24, deliveredAt=None)
    assert client.get(f"/sms/{SERVICE}/outgoing/{sms_id}")["ptt"] == 24
    assert sms_id in client.get(f"/sms/{SERVICE}/outgoing", ptt=24)

    server.corrupt_record(SERVICE, "outgoing", sms_id, {"id": "not-a-number", "ptt": None})
    assert client.get(f"/sms/{SERVICE}/outgoing/{sms_id}") == {"id": "not-a-number", "ptt": None}
    batch = client.raw_call("GET", f"/sms/{SERVICE}/outgoing/{sms_id}", headers={"X-Ovh-Batch": ","}).json()
    assert batch == [{"key": str(sms_id), "value": {"id": "not-a-number", "ptt": None}, "error": None}]
    with pytest.raises(KeyError):
        server.update_outgoing(SERVICE, 1, ptt=4)


def test_unencodable_corrupt_value_is_a_distinct_500(server: EmulatorServer, client: ovh.Client) -> None:
    sms_id = any_outgoing_id(server)
    server.corrupt_record(SERVICE, "outgoing", sms_id, object())
    with pytest.raises(ovh.exceptions.APIError, match="Emulator bug") as caught:
        client.get(f"/sms/{SERVICE}/outgoing/{sms_id}")
    assert caught.value.response.status_code == 500


def test_ptt_details(client: ovh.Client) -> None:
    assert client.get("/sms/ptts", ptt=4)["duration"] == "permanent"
    assert client.get("/sms/ptts", ptt=1)["duration"] == "temporary"
    assert set(client.get("/sms/ptts", ptt=6)) == {"comment", "description", "duration"}
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get("/sms/ptts", ptt=999)
    with pytest.raises(ovh.exceptions.BadParametersError):
        client.get("/sms/ptts")


def test_unknown_route_is_404(client: ovh.Client) -> None:
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get("/me")


# --- CSV export ------------------------------------------------------------------------------------


def wait_for_document(client: ovh.Client, document_id: str) -> dict[str, Any]:
    for _ in range(50):
        document: dict[str, Any] = client.get(f"/me/document/{document_id}")
        if document["size"] > 0:
            return document
    raise AssertionError("the document never became ready")


def test_outgoing_export_round_trips(server: EmulatorServer, client: ovh.Client) -> None:
    tricky = 'Offre "spéciale" ; -20% 🎉\nSTOP 36184'
    created = format_api_datetime(NOW - timedelta(days=1))
    server.add_outgoing(SERVICE, outgoing_record(99_999_999_999, created, message=tricky, tag='a"b'))

    document_id = client.get(f"/sms/{SERVICE}/document", wayType="outgoing")
    assert isinstance(document_id, str)
    first = client.get(f"/me/document/{document_id}")
    assert first["size"] == 0  # still "being generated"
    document = wait_for_document(client, document_id)
    download = requests.get(document["getUrl"], timeout=5)
    assert download.status_code == 200
    assert len(download.content) == document["size"]

    text = download.content.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    assert (
        text.splitlines()[0] == "id;date;sender;receiver;ptt;operatorCode;descriptionDlr;tag;message;sentAt;deliveredAt"
    )
    by_id = {row["id"]: row for row in rows}
    assert by_id["99999999999"]["message"] == tricky
    assert by_id["99999999999"]["tag"] == 'a"b'
    assert by_id["99999999999"]["date"] == (NOW - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert by_id["99999999999"]["deliveredAt"] == ""
    assert set(by_id) == {str(sms_id) for sms_id in server.outgoing(SERVICE)}

    assert client.delete(f"/me/document/{document_id}") is None
    assert requests.get(document["getUrl"], timeout=5).status_code == 404
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get(f"/me/document/{document_id}")


def test_incoming_export_and_errors(server: EmulatorServer, client: ovh.Client) -> None:
    document_id = client.get(f"/sms/{SERVICE}/document", wayType="incoming", **{"creationDatetime.from": "2026-01-01"})
    document = wait_for_document(client, document_id)
    text = requests.get(document["getUrl"], timeout=5).content.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    assert {int(row["id"]) for row in rows} == set(server.incoming(SERVICE))

    with pytest.raises(ovh.exceptions.BadParametersError):
        client.get(f"/sms/{SERVICE}/document")
    with pytest.raises(ovh.exceptions.BadParametersError, match="Period too long"):
        client.get(
            f"/sms/{SERVICE}/document",
            wayType="outgoing",
            **{"creationDatetime.from": "2024-01-01", "creationDatetime.to": "2026-01-01"},
        )
    server.faults.export_supported = False
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get(f"/sms/{SERVICE}/document", wayType="outgoing")


# --- faults ----------------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(server: EmulatorServer, client: ovh.Client) -> None:
    # 0.1/s: the second call within the next 10 s is refused, whatever the machine's speed.
    server.faults.rate_limit_per_second = 0.1
    client.get("/sms")
    with pytest.raises(ovh.exceptions.APIError) as caught:
        client.get("/sms")
    response = caught.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 10


def test_random_429_uses_configured_retry_after(server: EmulatorServer, client: ovh.Client) -> None:
    server.faults.error_rate_429 = 1.0
    server.faults.retry_after_seconds = 2.5
    with pytest.raises(ovh.exceptions.APIError) as caught:
        client.get("/sms")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "3"


def test_500_fault(server: EmulatorServer, client: ovh.Client) -> None:
    server.faults.error_rate_500 = 1.0
    with pytest.raises(ovh.exceptions.APIError, match="Internal server error") as caught:
        client.get("/sms")
    assert caught.value.response.status_code == 500


def test_drop_fault_is_a_low_level_http_error(server: EmulatorServer, client: ovh.Client) -> None:
    assert client.get("/sms") == [SERVICE]  # opens a keep-alive connection first
    server.faults.drop_rate = 1.0
    with pytest.raises(ovh.exceptions.HTTPError):
        client.get("/sms")
    server.faults.drop_rate = 0.0
    assert client.get("/sms") == [SERVICE]
    assert server.stats.status_count(0) == 1


def test_malformed_json_fault(server: EmulatorServer, client: ovh.Client) -> None:
    server.faults.malformed_json_rate = 1.0
    with pytest.raises(ovh.exceptions.InvalidResponse):
        client.get(f"/sms/{SERVICE}/outgoing/{any_outgoing_id(server)}")


def test_ascii_only_json_escapes_every_non_ascii_character(server: EmulatorServer, client: ovh.Client) -> None:
    server.add_outgoing(SERVICE, outgoing_record(77, "2026-05-14T10:00:00+02:00", message="caf\u00e9 \U0001f600"))
    path = f"/sms/{SERVICE}/outgoing/77"
    plain = client.raw_call("GET", path)
    assert "caf\u00e9 \U0001f600".encode() in plain.content
    server.faults.json_ascii_only = True
    escaped = client.raw_call("GET", path)
    assert escaped.content.isascii() and b"caf\\u00e9 \\ud83d\\ude00" in escaped.content
    assert escaped.json() == plain.json()
    assert escaped.headers["X-Ovh-QueryId"] != plain.headers["X-Ovh-QueryId"]


def test_latency_fault(server: EmulatorServer, client: ovh.Client) -> None:
    client.get("/sms")
    server.faults.latency_seconds = 0.2
    started = time.monotonic()
    client.get("/sms")
    assert time.monotonic() - started >= 0.2


def test_fault_dice_are_reproducible_with_a_seed(server: EmulatorServer, client: ovh.Client) -> None:
    def outcomes(seed: int) -> list[int]:
        server.faults.seed = seed  # a changed seed restarts the sequence
        return [client.raw_call("GET", "/sms").status_code for _ in range(12)]

    server.faults.error_rate_500 = 0.5
    first = outcomes(42)
    other = outcomes(43)
    assert first == outcomes(42)
    assert first != other
    assert {200, 500} == set(first)


# --- stats, control route, lifecycle ---------------------------------------------------------------


def test_stats_count_routes_and_statuses(server: EmulatorServer, client: ovh.Client) -> None:
    sms_id = any_outgoing_id(server)
    client.get("/sms")  # also triggers GET /auth/time
    server.stats.reset()
    client.get(f"/sms/{SERVICE}/outgoing/{sms_id}")
    client.get(f"/sms/{SERVICE}/outgoing/{sms_id}")
    with pytest.raises(ovh.exceptions.ResourceNotFoundError):
        client.get(f"/sms/{SERVICE}/outgoing/1")
    client.raw_call("GET", f"/sms/{SERVICE}/outgoing/{sms_id},1", headers={"X-Ovh-Batch": ","})

    stats = server.stats
    assert stats.total == 4
    assert stats.count("GET", "/sms/{sn}/outgoing/{id}") == 3
    assert stats.count("GET", "/sms/{sn}/outgoing/{ids}") == 1
    assert stats.status_count(404) == 1
    remote = requests.get(server.url.removesuffix("/1.0") + "/_emulator/stats", timeout=5).json()
    assert remote == stats.snapshot()
    assert remote["by_route"]["GET /sms/{sn}/outgoing/{id}"] == 3
    reset = requests.post(server.url.removesuffix("/1.0") + "/_emulator/stats/reset", timeout=5)
    assert reset.status_code == 200
    assert stats.total == 0


def test_stop_cuts_keep_alive_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    server = EmulatorServer(**asdict(DEMO_CREDENTIALS), services={SERVICE: ServiceData()}).start()
    client = make_client(server, monkeypatch)
    assert client.get("/sms") == [SERVICE]
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(ovh.exceptions.HTTPError):
        client.get("/sms")


def test_only_loopback_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        EmulatorServer(**asdict(DEMO_CREDENTIALS), host="0.0.0.0")


def test_standalone_command_prints_url_and_stops_on_sigterm() -> None:
    command = [sys.executable, "-m", "archiver.emulator", "--outgoing", "5", "--incoming", "1", "--seed", "2"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = json.loads(process.stdout.readline())
            assert line["url"].startswith("http://127.0.0.1:")
            assert line["consumer_key"] == DEMO_CREDENTIALS.consumer_key
            stats = requests.get(line["url"].removesuffix("/1.0") + "/_emulator/stats", timeout=5)
            assert stats.json()["total"] == 0
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)


# --- sample data -----------------------------------------------------------------------------------


def test_sample_data_is_deterministic_and_realistic() -> None:
    data = generate_sample_data(services=("a", "b"), outgoing=300, incoming=50, seed=5, now=NOW)
    assert data == generate_sample_data(services=("a", "b"), outgoing=300, incoming=50, seed=5, now=NOW)
    outgoing = {**data["a"].outgoing, **data["b"].outgoing}
    incoming = {**data["a"].incoming, **data["b"].incoming}
    assert len(outgoing) == 300
    assert len(incoming) == 50
    records = [outgoing[sms_id] for sms_id in sorted(outgoing)]
    assert all(set(record) == OUTGOING_FIELDS for record in records)
    assert all(
        set(record) == {"id", "creationDatetime", "credits", "message", "sender", "tag"} for record in incoming.values()
    )

    created = [datetime.fromisoformat(record["creationDatetime"]) for record in records]
    assert created == sorted(created), "ids grow with time"
    assert all(NOW - timedelta(days=90) <= moment <= NOW for moment in created)
    assert all(moment.utcoffset() in (timedelta(hours=1), timedelta(hours=2)) for moment in created)

    recent = [r for r, moment in zip(records, created, strict=True) if moment > NOW - timedelta(hours=72)]
    assert any(r["ptt"] in (1, 2, 3) and r["deliveredAt"] is None for r in recent)
    assert all(r["deliveredAt"] is not None for r in records if r["ptt"] == 4)
    assert sum(r["ptt"] == 4 for r in records) > len(records) / 2
    messages = [r["message"] for r in records]
    assert any("\nSTOP 36184" in m for m in messages)
    assert any('"' in m for m in messages)
    assert any(";" in m for m in messages)
    assert any(m[0] in "=+" for m in messages)
    assert any(r["numberOfSms"] > 1 for r in records)
    assert any(r["tag"] == "" for r in records)
    assert any(r["batchID"] is None for r in records)
    assert all(isinstance(r["credits"], float) for r in records)
    assert all(r["receiver"].startswith("+33") and len(r["receiver"]) == 12 for r in records)


@pytest.mark.parametrize(
    ("message", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("é" * 160, 1),
        ("ê" * 70, 1),
        ("ê" * 71, 2),
        ("🎉" * 35, 1),
        ("€" * 81, 2),
    ],
)
def test_sms_parts(message: str, parts: int) -> None:
    assert sms_parts(message) == parts


@settings(max_examples=60, deadline=None)
@given(
    epochs=st.lists(st.integers(min_value=0, max_value=50), min_size=0, max_size=40),
    removals=st.lists(st.integers(min_value=0, max_value=39), max_size=10),
    low=st.integers(min_value=-1, max_value=51),
    high=st.integers(min_value=-1, max_value=51),
)
def test_collection_range_index_matches_a_scan(epochs: list[int], removals: list[int], low: int, high: int) -> None:
    collection = Collection()
    base = datetime(2026, 1, 1, tzinfo=PARIS)
    ids = list(range(len(epochs)))
    random.Random(len(epochs)).shuffle(ids)  # insertion order unrelated to time
    for sms_id in ids:
        created = format_api_datetime(base + timedelta(hours=epochs[sms_id]))
        collection.put({"id": sms_id, "creationDatetime": created})
    for sms_id in removals:
        if sms_id in collection.records:
            collection.remove(sms_id)
    low_epoch = (base + timedelta(hours=low)).timestamp()
    high_epoch = (base + timedelta(hours=high)).timestamp()
    expected = sorted((epochs[sms_id], sms_id) for sms_id in collection.records if low <= epochs[sms_id] <= high)
    assert collection.ids_between(low_epoch, high_epoch) == [sms_id for _, sms_id in expected]
