"""The route table and the handlers, called directly with a request (no HTTP)."""

from __future__ import annotations

import dataclasses
import json
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

import pytest

from archiver.emulator.data import PARIS, ServiceData
from archiver.emulator.faults import Dice, Faults
from archiver.emulator.memory_store import MemoryStore
from archiver.emulator.protocol import ApiError, Reply, Request
from archiver.emulator.routes import (
    ROUTES,
    Context,
    answer,
    create_document,
    download,
    get_document,
    get_record,
    is_batch,
    list_records,
    match_route,
)

SERVICE = "sms-unit-1"
NOW = 1_780_000_000.0


def record(sms_id: int, created: str, **fields: Any) -> dict[str, Any]:
    return {"id": sms_id, "creationDatetime": created, "sender": "S", "message": f"m{sms_id}", **fields}


def context(faults: Faults | None = None) -> Context:
    outgoing = {
        1: record(1, "2026-03-01T10:00:00+01:00", tag="a", ptt=4, receiver="+33600000001"),
        2: record(2, "2026-03-02T10:00:00+01:00", tag="b", ptt=5, receiver="+33600000002"),
        3: record(3, "2026-03-03T10:00:00+01:00", tag="a", ptt=4, receiver="+33600000003"),
    }
    store = MemoryStore({SERVICE: ServiceData(outgoing=outgoing, incoming={})})
    return Context(store, faults or Faults(), Dice(1), lambda: NOW, "http://127.0.0.1:1")


def request(path: str, query: str = "", method: str = "GET", batch: str | None = None) -> Request:
    headers = Message()
    if batch is not None:
        headers["X-Ovh-Batch"] = batch
    segments = tuple(path.strip("/").split("/"))
    target = "/1.0" + path + (f"?{query}" if query else "")
    return Request(method, target, segments, parse_qs(query, keep_blank_values=True), headers, b"")


def call(ctx: Context, method: str, path: str, query: str = "", batch: str | None = None) -> Reply:
    matched = match_route(method, tuple(path.strip("/").split("/")))
    assert matched is not None, path
    route, params = matched
    return answer(route, ctx, request(path, query, method, batch), params)


def body(reply: Reply) -> Any:
    return json.loads(reply.body)


# -- the table -----------------------------------------------------------------------------------------


def test_every_route_is_distinct_and_only_auth_time_is_unsigned() -> None:
    keys = [(route.method, route.template) for route in ROUTES]
    assert len(keys) == len(set(keys))
    assert [route.template for route in ROUTES if not route.signed] == ["/auth/time"]


def test_a_literal_segment_wins_over_a_placeholder() -> None:
    ptts = match_route("GET", ("sms", "ptts"))
    assert ptts is not None and ptts[0].template == "/sms/ptts" and ptts[1] == {}
    account = match_route("GET", ("sms", "sms-x-1"))
    assert account is not None and account[1] == {"sn": "sms-x-1"}


@pytest.mark.parametrize(
    ("method", "segments"),
    [("POST", ("sms",)), ("GET", ("sms", "s", "sideways")), ("GET", ()), ("PUT", ("me", "document", "x"))],
)
def test_what_no_route_serves_is_unmatched(method: str, segments: tuple[str, ...]) -> None:
    assert match_route(method, segments) is None


def test_placeholders_take_their_segment() -> None:
    matched = match_route("DELETE", ("sms", "svc", "incoming", "42"))
    assert matched is not None
    assert (matched[0].template, matched[1]) == ("/sms/{sn}/incoming/{id}", {"sn": "svc", "id": "42"})


# -- handlers -------------------------------------------------------------------------------------------


def test_an_unknown_service_is_a_404_naming_it() -> None:
    reply = call(context(), "GET", "/sms/sms-nobody-1/outgoing")
    assert reply.status == 404 and "sms-nobody-1" in body(reply)["message"]


def test_listing_filters_by_date_and_fields() -> None:
    ctx = context()
    assert sorted(body(call(ctx, "GET", f"/sms/{SERVICE}/outgoing"))) == [1, 2, 3]
    assert sorted(body(call(ctx, "GET", f"/sms/{SERVICE}/outgoing", "tag=a"))) == [1, 3]
    assert sorted(body(call(ctx, "GET", f"/sms/{SERVICE}/outgoing", "ptt=5"))) == [2]
    # Both date bounds are inclusive; a zone-less date is Paris time.
    dates = "creationDatetime.from=2026-03-02T10:00:00&creationDatetime.to=2026-03-03T10:00:00"
    assert sorted(body(call(ctx, "GET", f"/sms/{SERVICE}/outgoing", dates))) == [2, 3]


@pytest.mark.parametrize(
    ("query", "named"),
    [("ptt=four", "[ptt]"), ("creationDatetime.from=yesterday", "[creationDatetime.from]")],
)
def test_a_bad_listing_parameter_is_a_400_naming_it(query: str, named: str) -> None:
    reply = call(context(), "GET", f"/sms/{SERVICE}/outgoing", query)
    assert reply.status == 400 and named in body(reply)["message"]


def test_a_capped_listing_is_cut_after_the_filters() -> None:
    ctx = context(Faults(listing_cap=1))
    assert body(call(ctx, "GET", f"/sms/{SERVICE}/outgoing", "tag=a")) == [3]


def test_one_record_and_a_corrupt_one() -> None:
    ctx = context()
    assert body(call(ctx, "GET", f"/sms/{SERVICE}/outgoing/2"))["tag"] == "b"
    ctx.store.services[SERVICE]["outgoing"].corrupt[2] = ["not", "a", "record"]
    assert body(call(ctx, "GET", f"/sms/{SERVICE}/outgoing/2")) == ["not", "a", "record"]
    assert call(ctx, "GET", f"/sms/{SERVICE}/outgoing/9").status == 404
    assert call(ctx, "GET", f"/sms/{SERVICE}/outgoing/x").status == 400


def test_a_batch_answers_each_key() -> None:
    reply = call(context(), "GET", f"/sms/{SERVICE}/outgoing/1,9,x", batch=",")
    elements = body(reply)
    assert [element["key"] for element in elements] == ["1", "9", "x"]
    assert elements[0]["value"]["id"] == 1 and elements[0]["error"] is None
    assert (elements[1]["value"], elements[1]["error"]) == (None, "Not found")
    assert (elements[2]["value"], elements[2]["error"]) == (None, "Invalid parameter id")


def test_a_batch_null_fault_answers_null_with_no_error_for_a_record_that_exists() -> None:
    elements = body(call(context(Faults(batch_null_rate=1.0)), "GET", f"/sms/{SERVICE}/outgoing/1,2", batch=","))
    assert elements == [{"key": "1", "value": None}, {"key": "2", "value": None}]


def test_a_batch_over_500_ids_is_refused() -> None:
    ids = ",".join(str(n) for n in range(501))
    assert call(context(), "GET", f"/sms/{SERVICE}/outgoing/{ids}", batch=",").status == 400
    ids = ",".join(str(n) for n in range(500))
    assert call(context(), "GET", f"/sms/{SERVICE}/outgoing/{ids}", batch=",").status == 200


def test_without_batch_support_a_single_id_is_served_and_several_are_refused() -> None:
    faults = Faults(batch_supported=False)
    one = request(f"/sms/{SERVICE}/outgoing/1", batch=",")
    assert not is_batch(one, "1", faults)
    assert is_batch(one, "1,2", faults)
    assert is_batch(one, "1", Faults())
    ctx = context(faults)
    assert body(get_record(ctx, one, {"sn": SERVICE, "id": "1"}))["id"] == 1
    with pytest.raises(ApiError) as refused:
        get_record(ctx, one, {"sn": SERVICE, "id": "1,2"})
    assert refused.value.status == 400


def test_a_delete_is_remembered_and_the_record_is_gone() -> None:
    ctx = context()
    assert call(ctx, "DELETE", f"/sms/{SERVICE}/outgoing/2").status == 200
    assert ctx.store.deleted == [(SERVICE, "outgoing", 2)]
    assert sorted(body(list_records(ctx, request(f"/sms/{SERVICE}/outgoing"), {"sn": SERVICE}))) == [1, 3]
    assert call(ctx, "DELETE", f"/sms/{SERVICE}/outgoing/2").status == 404


def test_ptt_details() -> None:
    ctx = context()
    assert body(call(ctx, "GET", "/sms/ptts", "ptt=4"))["description"] == "Delivered"
    assert call(ctx, "GET", "/sms/ptts", "ptt=7").status == 404
    assert call(ctx, "GET", "/sms/ptts").status == 400


def test_auth_time_is_the_servers_clock() -> None:
    assert body(call(context(), "GET", "/auth/time")) == int(NOW)


# -- export documents -----------------------------------------------------------------------------------


def test_an_export_document_is_empty_at_first_poll_then_downloadable() -> None:
    ctx = context()
    query = "wayType=outgoing&tag=a&creationDatetime.from=2026-01-01&creationDatetime.to=2026-06-01"
    document_id = body(call(ctx, "GET", f"/sms/{SERVICE}/document", query))
    first = body(get_document(ctx, request(f"/me/document/{document_id}"), {"id": document_id}))
    second = body(get_document(ctx, request(f"/me/document/{document_id}"), {"id": document_id}))
    assert first["size"] == 0 < second["size"]
    assert second["getUrl"] == f"http://127.0.0.1:1/_download/{document_id}.csv"
    csv = download(ctx.store, f"{document_id}.csv", "GET")
    assert (csv.status, csv.is_json, len(csv.body)) == (200, False, second["size"])
    assert csv.body.count(b"\n") == 3  # the header and records 1 and 3 (tag a)
    assert download(ctx.store, f"{document_id}.csv", "DELETE").status == 404
    assert call(ctx, "DELETE", f"/me/document/{document_id}").status == 200
    assert download(ctx.store, f"{document_id}.csv", "GET").status == 404


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("wayType=sideways", 400),
        ("wayType=outgoing&creationDatetime.from=2025-01-01&creationDatetime.to=2026-01-03", 400),
        ("wayType=incoming&creationDatetime.from=2025-01-01&creationDatetime.to=2026-01-01", 200),
    ],
)
def test_export_parameters(query: str, status: int) -> None:
    assert call(context(), "GET", f"/sms/{SERVICE}/document", query).status == status


def export_lines(ctx: Context) -> int:
    document_id = body(create_document(ctx, request(f"/sms/{SERVICE}/document", "wayType=outgoing"), {"sn": SERVICE}))
    document = ctx.store.documents[document_id]
    assert document.created.tzinfo == PARIS
    return document.content.count(b"\n")


def test_an_export_without_dates_covers_the_last_year_of_the_servers_clock() -> None:
    assert export_lines(context()) == 4  # NOW is 2026-05-28: the header and the three records of 2026-03
    a_year_later = dataclasses.replace(context(), now=lambda: NOW + 366 * 86400)
    assert export_lines(a_year_later) == 1  # the header only


def test_without_export_support_the_route_is_an_invalid_url() -> None:
    reply = call(context(Faults(export_supported=False)), "GET", f"/sms/{SERVICE}/document", "wayType=outgoing")
    assert reply.status == 404 and body(reply) == {"message": "Got an invalid (or empty) URL"}
