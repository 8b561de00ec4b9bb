"""The cursor state (archiver/store/state.py): the progress of an interrupted cycle, as id ranges."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given
from hypothesis import strategies as st

from archiver.store.state import CursorState, DoneRanges

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


# -- the progress of an interrupted cycle, as id ranges ---------------------------------------------


@given(
    todo=st.lists(st.integers(1, 10**6), unique=True, max_size=200).map(sorted),
    size=st.integers(1, 30),
    chunks_done=st.integers(0, 20),
)
def test_done_ranges_cover_exactly_the_chunks_made_durable(todo: list[int], size: int, chunks_done: int) -> None:
    done = DoneRanges()
    chunks = [todo[start : start + size] for start in range(0, len(todo), size)]
    for chunk in chunks[:chunks_done]:
        done.add(chunk)
    durable = {sms_id for chunk in chunks[:chunks_done] for sms_id in chunk}
    assert done.covered(todo) == durable
    assert len(done) == len(durable)
    assert len(done.ranges) <= 1  # consecutive chunks of sorted ids merge: O(1) bytes per checkpoint
    again = CursorState.from_json(CursorState(partial_until=NOW, partial_done=done).to_json(), source="t")
    assert again.partial_done.covered(todo) == durable


@given(
    todo=st.lists(st.integers(1, 10**6), unique=True, min_size=2, max_size=100).map(sorted),
    late=st.integers(1, 10**6),
)
def test_an_id_shown_late_inside_a_done_range_is_never_taken_as_done(todo: list[int], late: int) -> None:
    done = DoneRanges()
    done.add(todo)
    candidates = set(todo) | {late}
    covered = done.covered(candidates)
    assert late in todo or late not in covered
    if todo[0] < late < todo[-1] and late not in todo:
        assert covered == set()  # the whole range is fetched again: a duplicate version, never a gap


def test_states_written_with_a_list_of_done_ids_still_resume() -> None:
    old = json.dumps(
        {"version": 1, "cursor": None, "known": {}, "retry": [], "partial": {"until": NOW.isoformat(), "done": [5, 9]}}
    ).encode()
    state = CursorState.from_json(old, source="old")
    assert state.partial_done.covered([5, 7, 9]) == {5, 9}
