"""The cursor state (archiver/store/state.py): the progress of an interrupted cycle, as id ranges; its JSON."""

from __future__ import annotations

import datetime as dt
import json
import random
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from archiver.store.state import _KNOWN_BATCH, CursorState, DoneRanges, Known

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


# -- the state's JSON, written piece by piece (issue 12: the first backfill's peak of memory) --------


def _document_as_before(state: CursorState) -> bytes:
    """``CursorState.to_json`` as it was before it streamed: the whole document, dumped at once."""
    document = {
        "version": 1,
        "cursor": state.cursor.isoformat() if state.cursor else None,
        "known": {str(key): [value.created, value.final, value.digest] for key, value in state.known.items()},
        "retry": sorted(state.retry),
        "partial": (
            {
                "until": state.partial_until.isoformat(),
                "done_ranges": [list(item) for item in state.partial_done.ranges],
            }
            if state.partial_until
            else None
        ),
        "last_cycle": state.last_cycle,
        "largest_listing": state.largest_listing,
        "listing_cap_seen": state.listing_cap_seen,
        "fence": state.fence,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


# Text that JSON must escape: quotes, backslashes, control characters, non-ASCII, lone surrogates.
_tricky_text = st.text(alphabet=st.sampled_from('"\\/\n\t\x00\x1f\u00e9\u2028\U0001f600\ud800ab0:,{}[]'), max_size=12)
_any_text = st.one_of(st.text(max_size=12), _tricky_text)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_any_text, inner, max_size=4),
    max_leaves=12,
)
_instants = st.datetimes(timezones=st.just(dt.UTC)) | st.datetimes(
    timezones=st.sampled_from([dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))])
)


@st.composite
def _states(draw: st.DrawFn, *, finite: bool = True) -> CursorState:
    # Ids of every length and sign: their order as strings ("10" before "9") is not their order as numbers.
    ids = st.integers(-(10**12), 10**20) | st.integers(0, 200)
    created = st.floats(allow_nan=not finite, allow_infinity=not finite)
    known = draw(st.dictionaries(ids, st.builds(Known, created, st.booleans(), _any_text), max_size=40))
    done = DoneRanges()
    for low, count in draw(st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 5)), max_size=3)):
        done.ranges.append((low, low + count, count))
    partial_until = draw(st.none() | _instants)
    return CursorState(
        cursor=draw(st.none() | _instants),
        known=known,
        retry=draw(st.sets(ids, max_size=10)),
        partial_until=partial_until,
        partial_done=done if partial_until else DoneRanges(),
        last_cycle=draw(st.dictionaries(_any_text, _json_values, max_size=5)),
        largest_listing=draw(st.integers(0, 10**7)),
        listing_cap_seen=draw(st.integers(0, 10**7)),
        fence=draw(st.integers(0, 10**6)),
    )


def _objects_with_sorted_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _value in pairs]
    assert keys == sorted(keys)
    return dict(pairs)


@given(_states(finite=False))
def test_the_state_is_written_byte_for_byte_as_the_whole_document_was(state: CursorState) -> None:
    # Same bytes: every reader of the old states reads the new ones, and the object's digest is unchanged.
    assert state.to_json() == _document_as_before(state)


@given(_states())
def test_the_state_reads_back_as_written_with_every_key_sorted(state: CursorState) -> None:
    data = state.to_json()
    json.loads(data, object_pairs_hook=_objects_with_sorted_keys)  # valid JSON, keys sorted at every level
    assert data.isascii()  # non-ASCII text is escaped, as before
    assert CursorState.from_json(data, source="t") == state


@given(_states())
def test_a_state_written_before_the_streaming_is_read_the_same(state: CursorState) -> None:
    assert CursorState.from_json(_document_as_before(state), source="old") == state


def test_a_first_backfills_final_state_crosses_many_batches_in_string_order() -> None:
    # More remembered records than one batch holds, ids of several lengths: batches must follow string order.
    rng = random.Random(7)
    known = {
        rng.choice([rng.randint(1, 999), rng.randint(10**10, 10**11)]): Known(
            rng.randint(1_700_000_000, 1_800_000_000) + rng.random(), rng.random() < 0.9, f"{rng.getrandbits(64):016x}"
        )
        for _ in range(2 * _KNOWN_BATCH + 77)
    }
    state = CursorState(cursor=NOW, known=known, retry={3, 1}, last_cycle={"note": 'a "quoted" \\ é'})
    data = state.to_json()
    assert data == _document_as_before(state)
    assert list(json.loads(data)["known"]) == sorted(str(sms_id) for sms_id in known)
    assert CursorState.from_json(data, source="t") == state


def test_a_state_document_of_the_previous_version_is_read_and_written_again_unchanged() -> None:
    # Written by the code before this change (a state of a finished cycle, then of an interrupted one).
    old = (
        b'{"cursor":"2026-06-01T00:00:00+00:00","fence":4,"known":{"10000000017":[1780000000.0,true,'
        b'"0123456789abcdef"],"9":[1780000001.5,false,"\\"q\\\\\\u00e9"]},"largest_listing":12,'
        b'"last_cycle":{"a":[1,"\\u2028"],"b":null},"listing_cap_seen":0,'
        b'"partial":{"done_ranges":[[5,9,3]],"until":"2026-06-02T00:00:00+02:00"},"retry":[7,11],"version":1}'
    )
    state = CursorState.from_json(old, source="old")
    assert state.known[9] == Known(1780000001.5, False, '"q\\é')
    assert state.partial_done.ranges == [(5, 9, 3)]
    assert state.to_json() == old


def test_writing_a_large_state_costs_about_its_own_size_in_memory() -> None:
    # The whole document built at once (a dict of lists, the text, its bytes) cost six times the output.
    state = CursorState(
        cursor=NOW,
        known={10**10 + 37 * index: Known(1_780_000_000.0 + index, True, f"{index:016x}") for index in range(20_000)},
    )
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        data = state.to_json()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * len(data)
