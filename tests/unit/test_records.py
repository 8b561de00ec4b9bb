from __future__ import annotations

import io
import zoneinfo
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.csvfile import encode_rows, read_rows
from archiver.errors import IntegrityError, MalformedRecordError
from archiver.records import (
    INCOMING_COLUMNS,
    OUTGOING_COLUMNS,
    Record,
    differing_columns,
    parse_api_record,
    record_from_row,
)

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def outgoing(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": 10_000_000_123,
        "creationDatetime": "2026-05-01T10:00:00+02:00",
        "sentAt": "2026-05-01T10:00:02+02:00",
        "deliveredAt": "2026-05-01T10:00:09+02:00",
        "sender": "MaBoutique",
        "receiver": "+33612345678",
        "message": 'Bonjour "Zoé" ; votre colis 📦 arrive\nSTOP 36184',
        "messageLength": 52,
        "numberOfSms": 1,
        "credits": 1,
        "ptt": 4,
        "deliveryReceipt": 1,
        "differedDelivery": 0,
        "tag": "",
        "tariffCode": "T1",
        "batchID": None,
        "messageID": "0b7c1c7e-9d4f-4c5e-9e55-5a3c9f0c2b11",
    }
    record.update(overrides)
    return record


def test_outgoing_row_columns_and_values() -> None:
    record = parse_api_record("outgoing", outgoing(), api_zone=PARIS)
    row = dict(zip(OUTGOING_COLUMNS, record.fields, strict=True))
    assert row["id"] == "10000000123"
    assert row["date"] == "2026-05-01T10:00:00+02:00"
    assert row["descriptionDlr"] == "Delivered"
    assert row["operatorCode"] == ""
    assert row["credits"] == "1.0"
    assert row["batchID"] == ""
    assert record.final


def test_naive_api_datetimes_get_the_api_zone() -> None:
    record = parse_api_record("outgoing", outgoing(creationDatetime="2026-01-15T08:30:00"), api_zone=PARIS)
    assert record.get("date") == "2026-01-15T08:30:00+01:00"


@pytest.mark.parametrize(
    ("overrides", "final"),
    [
        ({"ptt": 1, "deliveredAt": None}, False),
        ({"ptt": 3, "deliveredAt": None}, False),
        ({"ptt": 5}, True),
        *[({"ptt": ptt, "deliveredAt": None}, False) for ptt in (24, 25, 26)],  # temporary failures
        ({"ptt": 25, "deliveredAt": "2026-01-15T08:31:00+01:00"}, True),
        ({"ptt": 23, "deliveredAt": None}, True),
    ],
)
def test_final_status(overrides: dict[str, Any], final: bool) -> None:
    assert parse_api_record("outgoing", outgoing(**overrides), api_zone=PARIS).final is final


@pytest.mark.parametrize(
    "broken",
    [
        {"id": "12"},
        {"id": True},
        {"id": -4},
        {"ptt": None},
        {"creationDatetime": "yesterday"},
        {"creationDatetime": None},
        {"message": None},
        {"message": "bad \ud800 surrogate"},
        {"credits": "1"},
        {"numberOfSms": 1.5},
        {"sentAt": 17},
    ],
)
def test_malformed_outgoing_is_refused_whole(broken: dict[str, Any]) -> None:
    with pytest.raises(MalformedRecordError):
        parse_api_record("outgoing", outgoing(**broken), api_zone=PARIS)


def test_not_an_object() -> None:
    with pytest.raises(MalformedRecordError):
        parse_api_record("incoming", ["id", 1], api_zone=PARIS)


def test_incoming() -> None:
    raw = {
        "id": 7,
        "creationDatetime": "2026-05-01T10:00:00Z",
        "credits": 0.0,
        "message": "OK",
        "sender": "+33600000000",
        "tag": "",
    }
    record = parse_api_record("incoming", raw, api_zone=PARIS)
    assert dict(zip(INCOMING_COLUMNS, record.fields, strict=True))["date"] == "2026-05-01T10:00:00+00:00"
    assert record.final


# Any text a phone could carry, and more: every Unicode scalar value but surrogates.
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
nasty_text = st.one_of(
    any_text,
    st.sampled_from(["=1+2", "+33 6", "-", "@SUM(A1)", "a;b", '"', '""', "\r\n", "\r", "\n\n", " ", "\x00", "é\u0301"]),
)


@settings(max_examples=300, deadline=None)
@given(
    message=nasty_text,
    sender=nasty_text,
    tag=nasty_text,
    delimiter=st.sampled_from([";", ",", "\t", "|"]),
    compress=st.booleans(),
)
def test_any_message_round_trips_byte_for_byte(
    message: str, sender: str, tag: str, delimiter: str, compress: bool
) -> None:
    record = parse_api_record("outgoing", outgoing(message=message, sender=sender, tag=tag), api_zone=PARIS)
    part = encode_rows(OUTGOING_COLUMNS, [record.fields, record.fields], delimiter=delimiter, compress=compress)
    rows = list(read_rows(io.BytesIO(part.data), header=OUTGOING_COLUMNS, compressed=compress))
    assert part.rows == 2
    assert [tuple(row) for row in rows] == [record.fields, record.fields]
    again = record_from_row("outgoing", rows[0])
    assert again == record


def test_same_rows_same_bytes_even_gzipped() -> None:
    fields = parse_api_record("outgoing", outgoing(), api_zone=PARIS).fields
    assert encode_rows(OUTGOING_COLUMNS, [fields], compress=True) == encode_rows(
        OUTGOING_COLUMNS, [fields], compress=True
    )


@pytest.mark.parametrize(
    "data",
    [
        b"id;date\r\n1;2\r\n",  # wrong header
        "\n".join([";".join(OUTGOING_COLUMNS), "1;2"]).encode(),  # short row
        ";".join(OUTGOING_COLUMNS).encode() + b'\r\n"unterminated',
        b"\xff\xfe\x00garbage",
    ],
)
def test_unreadable_parts_raise_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        list(read_rows(io.BytesIO(data), header=OUTGOING_COLUMNS))


def archived_copy(live: Record, **columns: str) -> Record:
    fields = list(live.fields)
    for column, value in columns.items():
        fields[OUTGOING_COLUMNS.index(column)] = value
    return record_from_row("outgoing", fields)


@pytest.mark.parametrize(
    ("columns", "differing"),
    [
        ({}, []),
        ({"ptt": "1"}, ["ptt"]),
        ({"message": "autre"}, ["message"]),
        ({"operatorCode": "20815"}, []),  # only the CSV export carries it
        ({"descriptionDlr": "Success"}, []),  # the text of ptt, from another source
        ({"date": "2026-05-01T08:00:00+00:00"}, []),  # the same instant, another offset
        ({"date": "2026-05-01T10:00:00+00:00"}, ["date"]),
        ({"deliveredAt": ""}, ["deliveredAt"]),
        ({"credits": "", "messageID": ""}, ["credits", "messageID"]),  # an export copy lacks the API's fields
    ],
)
def test_differing_columns_compares_what_both_sources_carry(columns: dict[str, str], differing: list[str]) -> None:
    live = parse_api_record("outgoing", outgoing(), api_zone=PARIS)
    assert differing_columns(live, archived_copy(live, **columns)) == differing


@given(ptt=st.integers(0, 300), message=st.text(max_size=40), credits=st.floats(0, 100))
def test_a_record_equals_its_own_archived_row(ptt: int, message: str, credits: float) -> None:
    live = parse_api_record("outgoing", outgoing(ptt=ptt, message=message, credits=credits), api_zone=PARIS)
    assert differing_columns(live, record_from_row("outgoing", live.fields)) == []
