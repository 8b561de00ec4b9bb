"""The one reading of cursors and leases, shared by ``status`` and ``state show``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from archiver.actions.status import read_states, run_state_show, run_status
from archiver.config import ArchiveSettings, OvhSettings, Settings
from archiver.naming import DIRECTIONS
from archiver.store import LocalStore, Store
from archiver.store.layout import lease_key
from archiver.store.lease import LeaseInfo
from archiver.store.state import CursorState, save_state

FIRST, SECOND = "sms-ab11111-1", "sms-cd22222-1"
CURSOR = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)


class CountingStore:
    """A store that counts the reads of each key."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.reads: dict[str, int] = {}

    def get(self, key: str) -> bytes:
        self.reads[key] = self.reads.get(key, 0) + 1
        return self.inner.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _archive(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "archive")
    save_state(store, FIRST, "outgoing", CursorState(cursor=CURSOR, retry={7, 3}))
    save_state(store, SECOND, "incoming", CursorState(cursor=CURSOR - dt.timedelta(days=1)))
    lease = LeaseInfo("owner-1", "host-a", 4242, "", CURSOR, CURSOR + dt.timedelta(minutes=5), fence=3)
    store.put(lease_key(FIRST), lease.to_json())
    return store


def _settings(*services: str) -> Settings:
    return cast(Settings, SimpleNamespace(ovh=OvhSettings(services=list(services)), archive=ArchiveSettings()))


def test_each_lease_is_read_once_and_shared_by_its_directions(tmp_path: Path) -> None:
    store = CountingStore(_archive(tmp_path))
    entries = read_states(cast(Store, store), [FIRST, SECOND], DIRECTIONS)
    assert [(entry.service, entry.direction) for entry in entries] == [
        (service, direction) for service in (FIRST, SECOND) for direction in DIRECTIONS
    ]
    assert store.reads[lease_key(FIRST)] == 1 and store.reads[lease_key(SECOND)] == 1
    held = [entry.lease.pid if entry.lease else None for entry in entries]
    assert held == [4242, 4242, None, None]
    assert entries[0].state.cursor == CURSOR and entries[0].state.retry == {3, 7}


def test_status_and_state_show_agree_on_every_cursor_and_lease(tmp_path: Path) -> None:
    store = _archive(tmp_path)
    settings = _settings()  # no service configured: both commands show those the archive holds
    status = run_status(settings, store)["services"]
    shown = run_state_show(settings, store)
    assert [(e["service"], e["direction"], e["cursor"], e["lease"]) for e in status] == [
        (e["service"], e["direction"], e["cursor"], e["lease"]) for e in shown
    ]
    assert {e["service"] for e in shown} == {FIRST, SECOND}
    assert shown[0]["cursor"] == CURSOR.isoformat() and "pid 4242 on host-a" in shown[0]["lease"]
    assert shown[0]["retry_ids"] == [3, 7]


def test_state_show_of_one_service(tmp_path: Path) -> None:
    store = _archive(tmp_path)
    shown = run_state_show(_settings(), store, service=SECOND)
    assert [(e["service"], e["direction"]) for e in shown] == [(SECOND, direction) for direction in DIRECTIONS]
    assert [e["lease"] for e in shown] == [None, None]
