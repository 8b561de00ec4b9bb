"""The in-memory records: what a record must have, replacing one, and the date index.

The index against a full scan, under random inserts and removals, is in tests/test_emulator.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from archiver.emulator.data import ServiceData
from archiver.emulator.memory_store import Collection, MemoryStore, parse_instant


def record(sms_id: Any, created: Any = "2026-03-01T10:00:00+01:00") -> dict[str, Any]:
    return {"id": sms_id, "creationDatetime": created}


@pytest.mark.parametrize(
    "bad",
    [record("7"), record(True), record(None), record(7, None), record(7, 1_780_000_000), record(7, "yesterday")],
)
def test_a_record_without_an_integer_id_and_a_date_is_refused_and_nothing_changes(bad: dict[str, Any]) -> None:
    collection = Collection()
    collection.put(record(1))
    with pytest.raises(ValueError):
        collection.put(bad)
    assert list(collection.records) == [1]
    assert collection.ids_between(None, None) == [1]


def test_a_replaced_record_moves_in_the_index() -> None:
    collection = Collection()
    collection.put(record(1, "2026-03-01T10:00:00+01:00"))
    collection.put(record(2, "2026-03-02T10:00:00+01:00"))
    collection.put(record(1, "2026-03-03T10:00:00+01:00"))
    assert collection.ids_between(None, None) == [2, 1]
    assert collection.ids_between(None, parse_instant("2026-03-02T12:00:00+01:00")) == [2]


def test_a_removed_record_leaves_records_index_and_corruption() -> None:
    collection = Collection()
    collection.put(record(1))
    collection.corrupt[1] = "garbage"
    assert collection.remove(1) == record(1)
    assert (collection.records, collection.corrupt, collection.ids_between(None, None)) == ({}, {}, [])
    with pytest.raises(KeyError):
        collection.remove(1)


def test_a_zone_less_instant_is_paris_time() -> None:
    assert parse_instant("2026-01-15T10:00:00") == parse_instant("2026-01-15T10:00:00+01:00")
    assert parse_instant("2026-07-15T10:00:00") == parse_instant("2026-07-15T10:00:00+02:00")
    assert parse_instant("2026-07-15") == parse_instant("2026-07-15T00:00:00+02:00")


def test_the_store_loads_each_direction_and_creates_services_once() -> None:
    store = MemoryStore(
        {"s": ServiceData(outgoing={1: record(1)}, incoming={2: record(2, "2026-03-02T10:00:00+01:00")})}
    )
    assert list(store.services["s"]["outgoing"].records) == [1]
    assert list(store.services["s"]["incoming"].records) == [2]
    same = store.ensure_service("s")
    assert same is store.services["s"]
    assert sorted(store.ensure_service("t")) == ["incoming", "outgoing"]
