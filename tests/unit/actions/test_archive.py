"""The rule that proves a listing whole, against every way OVH could cut one (hypothesis).

A listing source stands in for OVH here: it answers ids created in [since, until] (both inclusive, to the
second), cut at ``cap`` ids keeping the newest or the oldest. The integration tests give the same answers
over HTTP (tests/integration/test_data_safety.py).
"""

from __future__ import annotations

import datetime as dt
import random
import tracemalloc
from array import array
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.actions.archive import CreationTimes, DirectionReport
from archiver.actions.archive.direction import DirectionRun
from archiver.actions.archive.listing import ids_to_fetch, sorted_ids, union_sorted
from archiver.errors import ListingCutError, SourceError
from archiver.store.state import CursorState, DoneRanges, Known

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass
class CappedListings:
    """Answers id listings like OVH might: the ids of a window, oldest first, cut at ``cap``."""

    created: dict[int, int]  # id -> seconds after START
    cap: int | None
    keep: str
    calls: int = 0
    asked: list[tuple[int | None, int]] = field(default_factory=list)

    def list_ids(self, service: str, direction: str, *, since: dt.datetime | None, until: dt.datetime) -> list[int]:
        self.calls += 1
        low = None if since is None else int((since - START).total_seconds())
        high = int((until - START).total_seconds())
        self.asked.append((low, high))
        ids = sorted(
            (second, sms_id)
            for sms_id, second in self.created.items()
            if (low is None or second >= low) and second <= high
        )
        if self.cap is not None and len(ids) > self.cap:
            ids = ids[-self.cap :] if self.keep == "newest" else ids[: self.cap]
        return [sms_id for _second, sms_id in ids]


def new_run(source: CappedListings) -> DirectionRun:
    run = DirectionRun.__new__(DirectionRun)
    run.source = source  # type: ignore[assignment]
    run.service, run.direction = "sms-x-1", "outgoing"
    run.times = None
    run.report = DirectionReport("sms-x-1", "outgoing")
    return run


def archive_window(source: CappedListings, until: int, state: CursorState) -> set[int]:
    """What one cycle would fetch for the window [START, until]: the listing, then what proves it whole."""
    run = new_run(source)
    fetched: set[int] = set()

    def fetch(ids: list[int]) -> None:
        for sms_id in ids:
            fetched.add(sms_id)
            if run.times is not None:
                run.times.note(sms_id, (START + dt.timedelta(seconds=source.created[sms_id])).timestamp())

    window_end = START + dt.timedelta(seconds=until)
    listed = run.list_ids(START, window_end, state)
    if run.may_be_cut(listed, state):
        run.times = CreationTimes(listed)
    fetch(listed)
    run.prove_whole((START, window_end), listed, state, fetch)
    return fetched


records = st.dictionaries(st.integers(1, 10_000), st.integers(0, 600), min_size=0, max_size=120)


def biggest_burst(created: dict[int, int]) -> int:
    seconds = list(created.values())
    return max((seconds.count(second) for second in set(seconds)), default=0)


@settings(max_examples=1500, deadline=None)
@given(created=records, cap_margin=st.integers(1, 40), keep=st.sampled_from(["newest", "oldest"]))
def test_any_cap_larger_than_the_biggest_burst_loses_nothing(
    created: dict[int, int], cap_margin: int, keep: str
) -> None:
    source = CappedListings(created, cap=max(biggest_burst(created), 1) + cap_margin, keep=keep)
    assert archive_window(source, 600, CursorState()) == set(created)


@settings(max_examples=1500, deadline=None)
@given(created=records, keep=st.sampled_from(["newest", "oldest"]), cap=st.integers(2, 30))
def test_whatever_the_cap_a_listing_is_whole_or_the_cycle_fails(created: dict[int, int], keep: str, cap: int) -> None:
    """Even below a burst: every SMS is fetched, or the cycle fails loudly, but for the one case
    listings cannot tell (a burst as long as the cap, and OVH never seen cutting anything else)."""
    source = CappedListings(created, cap=cap, keep=keep)
    state = CursorState()
    try:
        fetched = archive_window(source, 600, state)
    except ListingCutError:
        assert cap <= biggest_burst(created), "a loud failure where every burst fits"
        return
    if fetched != set(created):
        assert cap <= biggest_burst(created) and state.listing_cap_seen == 0, "a silent gap OVH's answers showed"


@settings(max_examples=100, deadline=None)
@given(created=records)
def test_uncut_listings_cost_at_most_two_more_calls_or_four_around_a_burst(created: dict[int, int]) -> None:
    source = CappedListings(created, cap=None, keep="newest")
    assert archive_window(source, 600, CursorState()) == set(created)
    # The listing, behind and ahead; and beyond each edge second where a listing came back full.
    assert source.calls <= 3 + 2


def test_a_listing_shorter_than_the_longest_seen_costs_nothing_more() -> None:
    source = CappedListings({sms_id: sms_id for sms_id in range(1, 50)}, cap=None, keep="newest")
    state = CursorState(largest_listing=100)
    assert archive_window(source, 600, state) == set(range(1, 50))
    assert source.calls == 1


@pytest.mark.parametrize("keep", ["newest", "oldest"])
def test_a_burst_beyond_the_cap_names_its_second(keep: str) -> None:
    created = {sms_id: 300 for sms_id in range(1, 7)} | {100 + sms_id: sms_id for sms_id in range(1, 20)}
    source = CappedListings(created, cap=4, keep=keep)
    with pytest.raises(ListingCutError, match="2026-01-01T00:05:00"):
        archive_window(source, 600, CursorState())


@given(ids=st.lists(st.integers(0, 10**12), max_size=60), noted=st.data())
def test_creation_times_remember_what_was_noted_and_nothing_else(ids: list[int], noted: st.DataObject) -> None:
    times = CreationTimes(ids)
    chosen = noted.draw(st.lists(st.sampled_from(ids), unique=True) if ids else st.just([]))
    for position, sms_id in enumerate(chosen):
        times.note(sms_id, float(position))
    times.note(-1, 5.0)  # not tracked: ignored
    assert all(sms_id in times for sms_id in ids) and -1 not in times
    assert {sms_id: times.get(sms_id) for sms_id in chosen} == {sms_id: float(i) for i, sms_id in enumerate(chosen)}
    assert all(times.get(sms_id) is None for sms_id in set(ids) - set(chosen))


@given(ids=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=80))
def test_sorted_ids_are_the_set_of_ids_in_order_as_8_byte_integers(ids: list[int]) -> None:
    ordered = sorted_ids(ids)
    assert ordered.typecode == "q"
    assert list(ordered) == sorted(set(ids))
    assert sorted_ids(ordered) is ordered  # already sorted: shared, not copied


@given(ids=st.lists(st.integers(0, 10**12), min_size=2, max_size=40))
def test_an_unsorted_array_is_sorted_not_trusted(ids: list[int]) -> None:
    assert list(sorted_ids(array("q", ids))) == sorted(set(ids))


@given(parts=st.lists(st.lists(st.integers(0, 10**12), max_size=40), max_size=4))
def test_union_sorted_is_the_union_in_order(parts: list[list[int]]) -> None:
    merged = union_sorted(*(sorted(set(part)) for part in parts))
    assert list(merged) == sorted(set().union(*parts))


@pytest.mark.parametrize("huge", [2**63, -(2**63) - 1, 10**30])
def test_an_id_beyond_64_bits_is_a_clear_source_error(huge: int) -> None:
    with pytest.raises(SourceError, match="64 bits"):
        sorted_ids([1, huge, 2])


@dataclass
class OneListing:
    """Answers every listing with the same ids, as a first cycle over a long history sees them."""

    ids: list[int]

    def list_ids(self, service: str, direction: str, *, since: dt.datetime | None, until: dt.datetime) -> list[int]:
        return self.ids


def test_a_first_cycle_keeps_its_listing_and_its_ids_to_fetch_in_a_few_bytes_per_id() -> None:
    """A million listed ids must not become sets of Python ints (32 bytes and more per id, each).

    Python's own allocations are counted (tracemalloc: deterministic, no timing): the listing kept
    sorted, the creation times of the listing proof, and the ids to fetch, from the API's answer
    (allocated before, as the client's JSON) to the array the fetch walks.
    """
    count = 200_000
    answer = list(range(10**10, 10**10 + 3 * count, 3))
    random.Random(1).shuffle(answer)
    answer[10:20] = answer[:10]  # a listing may repeat an id: fetched once
    run = new_run(OneListing(answer))  # type: ignore[arg-type]
    state = CursorState(known={answer[5]: Known(0.0, True, "digest")}, retry={7})
    tracemalloc.start()
    try:
        listed = run.list_ids(None, START, state)
        run.times = CreationTimes(listed)
        todo, rechecks = ids_to_fetch(listed, state, lookback_floor=0.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert list(todo) == sorted({7, *answer} - {answer[5]})
    assert rechecks == 0
    assert peak / count < 48, f"{peak / count:.0f} bytes per listed id"


def test_a_first_cycle_fetches_its_listing_itself_not_a_copy() -> None:
    """With nothing known, retried or done, every listed id is fetched: the listing's own array (8 MB a million)."""
    listed = sorted_ids([9, 3, 5, 3])
    todo, rechecks = ids_to_fetch(listed, CursorState(), lookback_floor=0.0)
    assert todo is listed
    assert rechecks == 0
    # Anything the cursor knows, retries or already made durable, and the ids are chosen one by one again.
    done = DoneRanges()
    done.add([3])
    for state, expected in (
        (CursorState(known={5: Known(0.0, True, "d")}), [3, 9]),
        (CursorState(retry={7}), [3, 5, 7, 9]),
        (CursorState(partial_done=done), [5, 9]),
    ):
        todo, _rechecks = ids_to_fetch(listed, state, lookback_floor=0.0)
        assert todo is not listed
        assert list(todo) == expected


@settings(max_examples=300, deadline=None)
@given(
    listed=st.lists(st.integers(1, 300), max_size=80),
    known=st.dictionaries(st.integers(1, 300), st.tuples(st.booleans(), st.integers(0, 10)), max_size=40),
    retry=st.sets(st.integers(1, 300), max_size=5),
    done_chunks=st.lists(st.lists(st.integers(1, 300), min_size=1, max_size=10), max_size=4),
)
def test_the_ids_to_fetch_are_what_the_set_rule_says(
    listed: list[int], known: dict[int, tuple[bool, int]], retry: set[int], done_chunks: list[list[int]]
) -> None:
    """New, retried and re-checked ids, less what an interrupted cycle made durable: as the sets said."""
    done = DoneRanges()
    for chunk in sorted(done_chunks, key=min):
        done.add(chunk)
    state = CursorState(
        known={sms_id: Known(float(created), final, "d") for sms_id, (final, created) in known.items()},
        retry=set(retry),
        partial_done=done,
    )
    floor = 5.0
    new = set(listed) - state.known.keys() | state.retry
    recheck = {i for i, seen in state.known.items() if not seen.final and seen.created >= floor}
    durable = done.covered(new | recheck)
    todo, rechecks = ids_to_fetch(sorted_ids(listed), state, floor)
    assert list(todo) == sorted((new | recheck) - durable)
    assert rechecks == len(recheck - durable)
