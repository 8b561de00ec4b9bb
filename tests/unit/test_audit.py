"""The audit trail: append-only events, read back in time order, numbers only as keyed hashes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from archiver.audit import actor_name, number_digest, read_events, record_event
from archiver.errors import StorageError
from archiver.store import LocalStore
from archiver.store.layout import AUDIT_PREFIX


def test_events_are_written_once_each_and_read_back_in_time_order(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    times = [dt.datetime(2026, 1, 31, 23, 59, tzinfo=dt.UTC), dt.datetime(2026, 2, 1, 0, 1, tzinfo=dt.UTC)]
    first = record_event(store, "hold_placed", actor="alice", why="case 42", what={"hold": "h1"}, now=times[1])
    second = record_event(store, "erasure", actor="bob", why="art. 17", counts={"erased": 3}, now=times[0])
    third = record_event(store, "erasure", actor="bob", why="art. 17", counts={"erased": 0}, now=times[1])
    events = list(read_events(store))
    assert events[0].id == second.id
    assert {event.id for event in events} == {first.id, second.id, third.id}
    assert [event.id for event in read_events(store, since=dt.date(2026, 2, 1))] == [event.id for event in events[1:]]
    assert events[0].counts == {"erased": 3} and events[0].actor == "bob"
    assert len(list(store.list(AUDIT_PREFIX))) == 3  # one object per event: none rewritten


def test_an_unreadable_event_is_an_error_not_a_silent_gap(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put(f"{AUDIT_PREFIX}year=2026/month=01/20260101T000000.000000Z-abc-erasure.json", b"[1, 2")
    with pytest.raises(StorageError, match="unreadable"):
        list(read_events(store))


def test_the_actor_is_the_setting_else_user_at_host() -> None:
    assert actor_name("dpo@example.org") == "dpo@example.org"
    assert "@" in actor_name(None)


def test_a_number_is_named_by_a_keyed_hash_that_matches_again_without_the_number() -> None:
    digest = number_digest("a-key-of-sixteen!", "+33612345678")
    assert "33612345678" not in digest
    assert digest == number_digest("a-key-of-sixteen!", "+33612345678")
    assert digest != number_digest("another-key-16chr", "+33612345678")
    assert digest != number_digest("a-key-of-sixteen!", "+33612345679")
