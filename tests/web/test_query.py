"""The filters as query parameters: pure rules, checked on any input (hypothesis)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.web.query import MAX_LIMIT, BadParameter, Cursor, Filters, parse_filters

SERVICES = ["sms-a-1", "sms-b-1"]
NAMES = ["service", "direction", "from", "to", "sender", "receiver", "tag", "ptt", "q", "order", "limit", "after", "x"]

texts = st.text(max_size=30)
filters = st.builds(
    Filters,
    service=st.none() | st.sampled_from(SERVICES),
    direction=st.none() | st.sampled_from(["outgoing", "incoming"]),
    since=st.none() | st.dates(dt.date(2000, 1, 1), dt.date(2040, 1, 1)),
    until=st.none(),
    sender=st.none() | texts.filter(bool),
    receiver=st.none() | texts.filter(bool),
    tag=st.none() | texts.filter(bool),
    ptt=st.none() | st.integers(0, 9999),
    q=st.none() | texts.filter(bool),
    order=st.sampled_from(["desc", "asc"]),
    limit=st.integers(1, MAX_LIMIT),
    after=st.none()
    | st.builds(
        Cursor,
        st.integers(-(2**62), 2**62),
        st.integers(0, 2**62),
        st.sampled_from(SERVICES),
        st.sampled_from(["outgoing", "incoming"]),
    ),
)


@given(filters)
def test_the_url_of_filters_gives_the_same_filters(chosen: Filters) -> None:
    """What a page links to (and a user bookmarks) is exactly the query it shows."""
    assert parse_filters(chosen.params(), SERVICES) == chosen


@given(st.dictionaries(st.sampled_from(NAMES), st.text(max_size=60)))
def test_any_parameters_give_filters_or_a_bad_parameter_naming_one(params: dict[str, str]) -> None:
    try:
        parse_filters(params, SERVICES)
    except BadParameter as error:
        assert error.name in params
        assert str(error).startswith(error.name + ": ")


@given(st.text(max_size=80))
def test_any_cursor_text_is_a_cursor_or_a_bad_after(token: str) -> None:
    try:
        cursor = Cursor.parse(token)
    except BadParameter as error:
        assert error.name == "after"
    else:
        assert Cursor.parse(cursor.token()) == cursor


def test_limits_and_days() -> None:
    assert parse_filters({}, SERVICES).limit == 100
    assert parse_filters({"limit": "1000"}, SERVICES).limit == 1000
    for bad in ("0", "1001", "-1", "1e3", " 5"):
        with pytest.raises(BadParameter, match=r"^limit: "):
            parse_filters({"limit": bad}, SERVICES)
    with pytest.raises(BadParameter, match=r"^to: "):
        parse_filters({"from": "2024-03-01", "to": "2024-03-01"}, SERVICES)
