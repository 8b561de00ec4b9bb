"""The lease as a fence (archiver/store/lease.py), and the cursor state it guards, on every kind of store.

Stores: a local directory (file locks), moto's S3 server (real conditional writes), and moto
behind a proxy that ignores ``If-None-Match``/``If-Match`` (the archiver must emulate them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from archiver.errors import LeaseHeldError
from archiver.store import LocalStore, S3Store, Store
from archiver.store.layout import lease_key, state_key
from archiver.store.lease import Lease, LeaseInfo, current_pid_namespace, is_stale, read_lease
from archiver.store.state import CursorState, load_state, save_state
from tests.unit.store.test_backends import s3_store

if TYPE_CHECKING:
    from tests.conftest import S3Target

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)

SERVICE = "sms-ab12345-1"
TTL = 900
T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
HOST = socket.gethostname()
OUR_NAMESPACE = current_pid_namespace()
DEAD_PID = 2**22 + 12345  # beyond pid_max on Linux: no process can have it


class Clock:
    """A wall clock the test moves by hand (the lease reads the time through it)."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture(params=["local", "s3", "s3-ignoring-conditions"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Build independent store objects on one archive, as separate instances would have."""
    if request.param == "local":
        return lambda: LocalStore(tmp_path / "archive")
    fixture = "s3_bucket" if request.param == "s3" else "s3_ignoring_conditions"
    target: S3Target = request.getfixturevalue(fixture)

    def build() -> Store:
        store = s3_store(target)
        store.emulated_settle_seconds = 0.05  # the settle only narrows a race; nothing here relies on it
        return store

    return build


def lease(store: Store, clock: Clock) -> Lease:
    return Lease(store, SERVICE, ttl_seconds=TTL, clock=clock)


def held_by(owner: str, *, pid: int = DEAD_PID, namespace: str = OUR_NAMESPACE, expires_in: float = 600) -> LeaseInfo:
    return LeaseInfo(owner, HOST, pid, "", T0, T0 + dt.timedelta(seconds=expires_in), pid_namespace=namespace)


# ---------------------------------------------------------------------------------------------
# is_stale: who may take a lease over


LIVE = 600.0
EXPIRED = -1.0


NO_NAMESPACE = pytest.mark.skipif(not OUR_NAMESPACE, reason="this system does not tell its PID namespace")
IS_STALE_TABLE: list[tuple[str, LeaseInfo | None, str, bool]] = [
    ("no lease object readable", None, OUR_NAMESPACE, True),
    ("expired, holder alive", held_by("x", pid=os.getpid(), expires_in=EXPIRED), OUR_NAMESPACE, True),
    ("expires exactly now", held_by("x", pid=os.getpid(), expires_in=0), OUR_NAMESPACE, True),
    ("released by its holder", dataclasses.replace(held_by("x", pid=os.getpid()), released=True), "", True),
    ("live, holder alive here", held_by("x", pid=os.getpid()), OUR_NAMESPACE, False),
    ("live, holder dead, same host and namespace", held_by("x"), OUR_NAMESPACE, True),
    ("live, holder dead, another host", dataclasses.replace(held_by("x"), host="elsewhere"), OUR_NAMESPACE, False),
    ("live, dead pid in another PID namespace", held_by("x", namespace="boot/pid:[1]"), OUR_NAMESPACE, False),
    ("live, holder's namespace unknown (old lease)", held_by("x", namespace=""), OUR_NAMESPACE, False),
    ("live, our namespace unknown", held_by("x"), "", False),
]


@NO_NAMESPACE
@pytest.mark.parametrize(
    ("case", "info", "our_namespace", "stale"), [pytest.param(*row, id=row[0]) for row in IS_STALE_TABLE]
)
def test_is_stale(case: str, info: LeaseInfo | None, our_namespace: str, stale: bool) -> None:
    assert is_stale(info, T0, host=HOST, pid_namespace=our_namespace) is stale, case


@NO_NAMESPACE
def test_is_stale_a_reused_pid_is_not_its_holder() -> None:
    info = dataclasses.replace(held_by("x", pid=os.getpid()), pid_started="1")  # this pid, started at another time
    assert is_stale(info, T0, host=HOST, pid_namespace=OUR_NAMESPACE) is True


@given(
    host=st.sampled_from([HOST, "other-host"]),
    holder_namespace=st.sampled_from(["", OUR_NAMESPACE, "boot/pid:[4026532000]"]),
    our_namespace=st.sampled_from(["", OUR_NAMESPACE, "boot/pid:[4026532001]"]),
    pid=st.sampled_from([os.getpid(), DEAD_PID, 1]),
    expires_in=st.integers(min_value=-(10**6), max_value=10**6),
)
def test_is_stale_by_pid_only_inside_one_pid_namespace(
    host: str, holder_namespace: str, our_namespace: str, pid: int, expires_in: int
) -> None:
    info = dataclasses.replace(held_by("x", pid=pid, namespace=holder_namespace, expires_in=expires_in), host=host)
    stale = is_stale(info, T0, host=HOST, pid_namespace=our_namespace)
    if expires_in <= 0:
        assert stale  # expiry alone always frees a lease
    elif not (host == HOST and holder_namespace and holder_namespace == our_namespace):
        assert not stale  # a pid from another PID space says nothing about the holder
    elif pid == os.getpid():
        assert not stale  # that is us, alive
    elif pid == DEAD_PID:
        assert stale  # a holder of our PID space that no longer runs: no need to wait for its expiry


def test_current_pid_namespace_names_boot_and_namespace() -> None:
    if not Path("/proc/self/ns/pid").exists():
        pytest.skip("no /proc here")
    namespace = current_pid_namespace()
    assert namespace.endswith(os.readlink("/proc/self/ns/pid"))
    assert Path("/proc/sys/kernel/random/boot_id").read_text().strip() in namespace


@given(
    namespace=st.sampled_from(["", "b/pid:[4026531836]"]),
    fence=st.integers(min_value=0, max_value=2**53),
    released=st.booleans(),
)
def test_lease_info_round_trips(namespace: str, fence: int, released: bool) -> None:
    info = dataclasses.replace(held_by("owner", namespace=namespace), fence=fence, released=released)
    assert LeaseInfo.from_json(info.to_json()) == info


def test_a_lease_written_by_an_older_version_reads_as_unknown_namespace() -> None:
    old = {
        "owner": "o",
        "host": HOST,
        "pid": DEAD_PID,
        "pid_started": "",
        "acquired": T0.isoformat(),
        "expires": (T0 + dt.timedelta(minutes=10)).isoformat(),
    }
    info = LeaseInfo.from_json(json.dumps(old).encode())
    assert info is not None
    assert (info.pid_namespace, info.fence, info.released) == ("", 0, False)
    assert is_stale(info, T0, host=HOST, pid_namespace=OUR_NAMESPACE) is False  # expiry only


# ---------------------------------------------------------------------------------------------
# The lease on every store


def test_a_live_lease_keeps_a_second_instance_out(store_factory: Callable[[], Store]) -> None:
    clock = Clock()
    first = lease(store_factory(), clock).acquire()
    with pytest.raises(LeaseHeldError, match="being archived by another instance"):
        lease(store_factory(), clock).acquire()
    first.renew()  # still ours


def test_a_taken_over_holder_learns_it_before_it_writes(store_factory: Callable[[], Store]) -> None:
    clock = Clock()
    first = lease(store_factory(), clock).acquire()
    first_store = first.store
    save_state(first_store, SERVICE, "outgoing", CursorState(cursor=T0), lease=first)

    clock.advance(TTL + 1)  # the first instance stalled past its expiry
    second_store = store_factory()
    with capture_logs() as logs:
        second = lease(second_store, clock).acquire()
    assert [entry["event"] for entry in logs if entry["event"] == "lease_taken_over"] == ["lease_taken_over"]
    assert second.fence > first.fence
    save_state(second_store, SERVICE, "outgoing", CursorState(cursor=T0 + dt.timedelta(hours=1)), lease=second)

    with pytest.raises(LeaseHeldError):
        first.renew()
    with pytest.raises(LeaseHeldError):
        first.renew_if_due()
    with pytest.raises(LeaseHeldError):
        save_state(first_store, SERVICE, "outgoing", CursorState(cursor=T0 + dt.timedelta(hours=2)), lease=first)
    assert load_state(second_store, SERVICE, "outgoing").cursor == T0 + dt.timedelta(hours=1)
    second.renew()  # the new holder is undisturbed


def test_a_stale_holder_whose_lease_write_landed_last_is_stopped_by_the_fencing_token(
    store_factory: Callable[[], Store],
) -> None:
    """On a store without real conditions two takeovers can both 'win'; the state keeps the newer one."""
    clock = Clock()
    first = lease(store_factory(), clock).acquire()
    clock.advance(TTL + 1)
    second = lease(store_factory(), clock).acquire()
    store = second.store
    save_state(store, SERVICE, "outgoing", CursorState(cursor=T0 + dt.timedelta(hours=1)), lease=second)
    # The race's outcome: the first holder's lease document is the one the store kept.
    assert first.info is not None
    store.put(lease_key(SERVICE), first.info.to_json())
    first.etag = cast("Any", store.head(lease_key(SERVICE))).etag

    with pytest.raises(LeaseHeldError, match="fencing token"):
        save_state(first.store, SERVICE, "outgoing", CursorState(cursor=T0), lease=first)
    assert load_state(store, SERVICE, "outgoing").cursor == T0 + dt.timedelta(hours=1)


def test_state_written_under_a_lease_carries_its_fencing_token(store_factory: Callable[[], Store]) -> None:
    store = store_factory()
    with lease(store, Clock()) as held:
        save_state(store, SERVICE, "incoming", CursorState(cursor=T0), lease=held)
        assert load_state(store, SERVICE, "incoming").fence == held.fence
        assert json.loads(store.get(state_key(SERVICE, "incoming")))["fence"] == held.fence
        # Without a lease (tools, tests) the token the state already carries is kept.
        save_state(store, SERVICE, "incoming", load_state(store, SERVICE, "incoming"))
        assert load_state(store, SERVICE, "incoming").fence == held.fence


def test_release_frees_the_lease_for_the_next_instance_at_once(store_factory: Callable[[], Store]) -> None:
    clock = Clock()
    first = lease(store_factory(), clock).acquire()
    first.release()
    assert read_lease(first.store, SERVICE) is None  # nobody holds it
    with capture_logs() as logs:
        second = lease(store_factory(), clock).acquire()  # no waiting for the expiry
    assert not [entry for entry in logs if entry["event"] == "lease_taken_over"]  # a free lease, not a takeover
    assert second.fence > first.fence


def test_release_leaves_a_lease_taken_over_meanwhile_alone(store_factory: Callable[[], Store]) -> None:
    clock = Clock()
    first = lease(store_factory(), clock).acquire()
    clock.advance(TTL + 1)
    second = lease(store_factory(), clock).acquire()
    with capture_logs() as logs:
        first.release()
    assert [entry["event"] for entry in logs if entry["event"] == "lease_release_lost"] == ["lease_release_lost"]
    holder = read_lease(second.store, SERVICE)
    assert holder is not None and holder.owner == second.owner
    second.renew()


def test_release_loses_cleanly_to_a_takeover_racing_it(s3_bucket: S3Target) -> None:
    """The takeover lands between the release's look at the lease and its write: it must survive."""
    clock = Clock()
    first = lease(s3_store(s3_bucket), clock).acquire()
    rival = lease(s3_store(s3_bucket), Clock(T0 + dt.timedelta(seconds=TTL + 1)))
    armed = True

    def take_over_first(event_name: str, **_: Any) -> None:
        nonlocal armed
        if armed:
            armed = False
            rival.acquire()

    client = cast("S3Store", first.store)._client
    client.meta.events.register("before-call.s3.PutObject", take_over_first)
    client.meta.events.register("before-call.s3.DeleteObject", take_over_first)
    first.release()
    assert not armed
    holder = read_lease(rival.store, SERVICE)
    assert holder is not None and holder.owner == rival.owner
    rival.renew()


def test_the_fence_never_goes_back_when_the_lease_object_is_deleted(store_factory: Callable[[], Store]) -> None:
    store = store_factory()
    with lease(store, Clock()) as first:
        save_state(store, SERVICE, "outgoing", CursorState(cursor=T0), lease=first)
    store.delete(lease_key(SERVICE))  # as an older version's release, or a person, would
    with lease(store, Clock()) as second:
        assert second.fence > first.fence
        save_state(store, SERVICE, "outgoing", CursorState(cursor=T0 + dt.timedelta(hours=1)), lease=second)


class CountingStore:
    """A real store that counts the calls made through it."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return counted


def test_renew_if_due_costs_nothing_until_a_third_of_the_ttl_is_gone(tmp_path: Path) -> None:
    store = CountingStore(LocalStore(tmp_path))
    clock = Clock()
    held = lease(cast("Store", store), clock).acquire()
    store.calls.clear()
    for _ in range(100):
        held.renew_if_due()
    clock.advance(TTL / 3 - 1)
    held.renew_if_due()
    assert store.calls == []
    clock.advance(2)  # now less than 2/3 of the TTL is left: a slow step must not outlast it
    held.renew_if_due()
    assert store.calls == ["put_if_match"]
    assert held.info is not None and held.info.expires == clock.now + dt.timedelta(seconds=TTL)


@NO_NAMESPACE
def test_a_dead_holder_in_another_pid_namespace_is_not_taken_over(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put(lease_key(SERVICE), held_by("container-b", namespace="other-boot/pid:[4026532999]").to_json())
    with pytest.raises(LeaseHeldError):
        lease(store, Clock()).acquire()
    store.put(lease_key(SERVICE), held_by("crashed-here").to_json())  # same PID namespace, pid gone
    with capture_logs() as logs:
        lease(store, Clock()).acquire()
    assert [entry["event"] for entry in logs if entry["event"] == "lease_taken_over"] == ["lease_taken_over"]
