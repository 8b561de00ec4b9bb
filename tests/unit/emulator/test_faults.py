"""The fault knobs on their own: dice, the rate limit, the fault order, what a spoiled reply looks like."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.emulator.faults import (
    Dice,
    Faults,
    Injection,
    TokenBucket,
    ascii_only,
    cap_listing,
    inject,
    too_many_requests,
    truncate_success,
    truncated,
)
from archiver.emulator.protocol import Reply, json_reply

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- dice ---------------------------------------------------------------------------------------------


def test_the_same_seed_rolls_the_same_sequence() -> None:
    first, second = Dice(7), Dice(7)
    assert [first.roll(0.5, 7) for _ in range(64)] == [second.roll(0.5, 7) for _ in range(64)]


def test_a_zero_probability_draws_nothing() -> None:
    """Knobs left at 0 must not shift the dice of the others: a run stays reproducible."""
    plain, interleaved = Dice(3), Dice(3)
    expected = [plain.roll(0.5, 3) for _ in range(32)]
    got = []
    for _ in range(32):
        assert interleaved.roll(0.0, 3) is False
        got.append(interleaved.roll(0.5, 3))
    assert got == expected


def test_a_new_seed_restarts_the_sequence_and_the_same_seed_does_not() -> None:
    dice = Dice(1)
    start = [dice.roll(0.5, 1) for _ in range(32)]
    fresh = Dice(2)
    assert [dice.roll(0.5, 2) for _ in range(32)] == [fresh.roll(0.5, 2) for _ in range(32)]
    assert [dice.roll(0.5, 1) for _ in range(32)] == start  # back to seed 1: restarted
    assert [dice.roll(0.5, 1) for _ in range(32)] != start  # seed 1 again: continues


def test_certain_and_impossible_rolls() -> None:
    dice = Dice(None)
    assert all(dice.roll(1.0, None) for _ in range(50))
    assert not any(dice.roll(0.0, None) for _ in range(50))


# -- rate limit ---------------------------------------------------------------------------------------


def test_the_bucket_grants_its_capacity_then_says_how_long_to_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock)
    assert [bucket.take(3.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(3.0) == pytest.approx(1 / 3)
    clock.now += 1 / 3
    assert bucket.take(3.0) == 0.0
    assert bucket.take(3.0) > 0


def test_a_slow_rate_still_grants_one_request() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) == pytest.approx(2.0)
    clock.now += 2.0
    assert bucket.take(0.5) == 0.0


def test_a_changed_rate_starts_with_a_full_bucket() -> None:
    bucket = TokenBucket(FakeClock())
    while bucket.take(2.0) == 0.0:
        pass
    assert [bucket.take(5.0) for _ in range(5)] == [0.0] * 5


def test_a_zero_rate_never_grants() -> None:
    assert math.isinf(TokenBucket(FakeClock()).take(0.0))


# -- the order of faults before a route ----------------------------------------------------------------


def status(injection: Injection) -> int | None:
    return None if injection.reply is None else injection.reply.status


def test_no_faults_inject_nothing() -> None:
    assert inject(Faults(), Dice(1), TokenBucket(FakeClock())) == Injection()


def test_a_drop_comes_before_every_error() -> None:
    faults = Faults(drop_rate=1.0, error_rate_429=1.0, error_rate_500=1.0, rate_limit_per_second=0.0)
    assert inject(faults, Dice(1), TokenBucket(FakeClock())) == Injection(drop=True)


def test_the_rate_limit_answers_429_with_the_wait_rounded_up() -> None:
    faults = Faults(rate_limit_per_second=0.25, error_rate_500=1.0)
    bucket = TokenBucket(FakeClock())
    assert status(inject(faults, Dice(1), bucket)) == 500  # the one token is granted, then the 500 die
    refused = inject(faults, Dice(1), bucket)
    assert refused.reply is not None and refused.reply.status == 429
    assert dict(refused.reply.headers)["Retry-After"] == "4"


def test_a_zero_rate_limit_answers_the_configured_retry_after() -> None:
    faults = Faults(rate_limit_per_second=0.0, retry_after_seconds=2.5)
    injection = inject(faults, Dice(1), TokenBucket(FakeClock()))
    assert injection.reply is not None and dict(injection.reply.headers)["Retry-After"] == "3"


def test_429_comes_before_500_and_500_before_malformed() -> None:
    bucket = TokenBucket(FakeClock())
    assert status(inject(Faults(error_rate_429=1.0, error_rate_500=1.0), Dice(1), bucket)) == 429
    assert status(inject(Faults(error_rate_500=1.0, malformed_json_rate=1.0), Dice(1), bucket)) == 500
    assert inject(Faults(malformed_json_rate=1.0), Dice(1), bucket) == Injection(malformed=True)


@pytest.mark.parametrize(("seconds", "header"), [(0.0, "0"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (-3.0, "0")])
def test_retry_after_is_whole_seconds_never_negative(seconds: float, header: str) -> None:
    reply = too_many_requests(seconds)
    assert (reply.status, dict(reply.headers)["Retry-After"]) == (429, header)


# -- spoiled replies ------------------------------------------------------------------------------------


@given(json_values)
def test_a_truncated_body_never_parses(value: object) -> None:
    body = json_reply(200, value).body
    with pytest.raises(ValueError):
        json.loads(truncated(body))


def test_only_successful_json_replies_are_truncated() -> None:
    ok = json_reply(200, {"id": 12345, "message": "hello"})
    assert truncate_success(ok).body == truncated(ok.body) != ok.body
    error = json_reply(404, {"message": "not found"})
    assert truncate_success(error) == error
    csv = Reply(200, b"id;date\n1;2026\n", content_type="text/csv", is_json=False)
    assert truncate_success(csv) == csv


@given(json_values)
def test_ascii_only_keeps_the_value_and_escapes_the_rest(value: object) -> None:
    reply = json_reply(200, value, (("X-A", "b"),))
    escaped = ascii_only(reply)
    assert escaped.body.isascii()
    assert json.loads(escaped.body) == json.loads(reply.body)
    assert (escaped.status, escaped.headers, escaped.content_type) == (reply.status, reply.headers, reply.content_type)


def test_ascii_only_escapes_non_ascii_text() -> None:
    assert ascii_only(json_reply(200, {"m": "caf\u00e9 \U0001f600"})).body == b'{"m":"caf\\u00e9 \\ud83d\\ude00"}'


def test_ascii_only_leaves_csv_and_cut_bodies_alone() -> None:
    csv = Reply(200, "caf\u00e9".encode(), content_type="text/csv", is_json=False)
    assert ascii_only(csv) == csv
    cut = Reply(200, '{"m":"caf\u00e9'.encode())
    assert ascii_only(cut) == cut


# -- listing caps ---------------------------------------------------------------------------------------


def test_a_listing_under_its_cap_is_whole() -> None:
    assert cap_listing([1, 2, 3], Faults(listing_cap=3)) == [1, 2, 3]
    assert cap_listing([1, 2, 3], Faults()) == [1, 2, 3]


def test_a_capped_listing_keeps_the_newest_or_the_oldest() -> None:
    oldest_first = [10, 11, 12, 13, 14]
    assert cap_listing(oldest_first, Faults(listing_cap=2)) == [13, 14]
    assert cap_listing(oldest_first, Faults(listing_cap=2, listing_cap_keep="oldest")) == [10, 11]


@pytest.mark.parametrize("keep", ["newest", "oldest"])
def test_a_cap_of_zero_keeps_no_id(keep: str) -> None:
    """``ids[-0:]`` is the whole list: a cap of 0 used to serve every id when keeping the newest."""
    assert cap_listing([10, 11, 12], Faults(listing_cap=0, listing_cap_keep=keep)) == []
