"""The erasure's pure rules: which numbers are accepted, which rows hold the number (every written form)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.actions.erase import _Number, erasure_number
from archiver.errors import ConfigError
from archiver.records import COLUMNS, record_from_row

NUMBER = "+33612345678"


def outgoing(sender: str, receiver: str) -> object:
    fields = dict.fromkeys(COLUMNS["outgoing"], "")
    fields.update(id="1", date="2026-05-01T00:00:00+00:00", ptt="4", sender=sender, receiver=receiver)
    return record_from_row("outgoing", [fields[column] for column in COLUMNS["outgoing"]])


def incoming(sender: str) -> object:
    fields = dict.fromkeys(COLUMNS["incoming"], "")
    fields.update(id="2", date="2026-05-01T00:00:00+00:00", sender=sender)
    return record_from_row("incoming", [fields[column] for column in COLUMNS["incoming"]])


def written(digits: str, separators: list[str], international: bool) -> str:
    """``+digits`` as a person or OVH may write it: ``00`` for ``+``, separators between the digits."""
    text = ("+" if international else "00") + digits[0]
    for digit, separator in zip(digits[1:], separators, strict=False):
        text += separator + digit
    return text + digits[len(separators) + 1 :]


separators = st.lists(st.sampled_from(["", " ", ".", "-"]), max_size=11)


@given(separators=separators, international=st.booleans())
def test_every_written_form_of_the_number_is_found_in_both_directions(
    separators: list[str], international: bool
) -> None:
    form = written(NUMBER[1:], separators, international)
    assert erasure_number(form) == NUMBER
    wanted = _Number(erasure_number(NUMBER))
    assert wanted.in_record(outgoing("MyShop", form))  # type: ignore[arg-type]
    assert wanted.in_record(outgoing(form, "+33700000000"))  # type: ignore[arg-type]
    assert wanted.in_record(incoming(form))  # type: ignore[arg-type]


@given(other=st.from_regex(r"\+[0-9]{6,15}", fullmatch=True))
def test_another_number_is_never_found(other: str) -> None:
    wanted = _Number(NUMBER)
    if other == NUMBER:
        return
    assert not wanted.in_record(outgoing(other, other))  # type: ignore[arg-type]
    assert not wanted.in_record(incoming(other))  # type: ignore[arg-type]
    assert not wanted.in_record(outgoing("", "not a number at all"))  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["MyShop", "", "  ", "+33 6 12 34 56 78 ext 4", "12", "☎ 0612345678"])
def test_anything_but_a_phone_number_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--number"):
        erasure_number(text)
