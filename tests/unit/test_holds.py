"""Legal holds: the scope rule (hypothesis against a plain oracle), numbers in one form, storage."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.errors import StorageError
from archiver.holds import HoldScope, held_by, lift_hold, load_holds, normalize_number, place_hold
from archiver.records import COLUMNS, Record
from archiver.store import LocalStore
from archiver.store.layout import hold_key

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NUMBERS = ["+33612345678", "+33699999999", "+447700900123"]


def outgoing(sender: str, receiver: str, tag: str, created: dt.datetime, sms_id: int = 1) -> Record:
    values = dict.fromkeys(COLUMNS["outgoing"], "")
    values.update(id=str(sms_id), date=created.isoformat(), sender=sender, receiver=receiver, tag=tag, ptt="4")
    return Record("outgoing", sms_id, created, tuple(values[name] for name in COLUMNS["outgoing"]), True)


def incoming(sender: str, created: dt.datetime, sms_id: int = 2) -> Record:
    values = dict.fromkeys(COLUMNS["incoming"], "")
    values.update(id=str(sms_id), date=created.isoformat(), sender=sender)
    return Record("incoming", sms_id, created, tuple(values[name] for name in COLUMNS["incoming"]), True)


@pytest.mark.parametrize(
    "text", ["+33612345678", "0033612345678", "+33 6 12 34 56 78", "+33.6.12.34.56.78", " 0033 (6) 12-34-56-78 "]
)
def test_one_number_in_every_common_spelling_has_one_form(text: str) -> None:
    assert normalize_number(text) == "+33612345678"


def test_an_alphanumeric_sender_is_kept_without_case_and_garbage_is_refused() -> None:
    assert normalize_number("MyShop") == normalize_number("MYSHOP")
    with pytest.raises(ValueError, match="not a phone number"):
        normalize_number("+33 6; DROP TABLE")


days = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2026, 12, 31))


@given(
    sender=st.sampled_from(NUMBERS),
    receiver=st.sampled_from(NUMBERS),
    tag=st.sampled_from(["", "promo", "invoice"]),
    day=days,
    hour=st.integers(0, 23),
    scope_sender=st.none() | st.sampled_from(NUMBERS),
    scope_receiver=st.none() | st.sampled_from(NUMBERS),
    scope_number=st.none() | st.sampled_from(NUMBERS),
    scope_tag=st.none() | st.sampled_from(["promo", "invoice"]),
    scope_service=st.none() | st.sampled_from(["sms-a", "sms-b"]),
    scope_from=st.none() | days,
    scope_to=st.none() | days,
)
def test_a_hold_covers_exactly_what_every_criterion_set_allows(
    sender: str,
    receiver: str,
    tag: str,
    day: dt.date,
    hour: int,
    scope_sender: str | None,
    scope_receiver: str | None,
    scope_number: str | None,
    scope_tag: str | None,
    scope_service: str | None,
    scope_from: dt.date | None,
    scope_to: dt.date | None,
) -> None:
    created = dt.datetime.combine(day, dt.time(hour), PARIS).astimezone(dt.UTC)
    record = outgoing(sender, receiver, tag, created)
    scope = HoldScope(
        service=scope_service,
        sender=scope_sender,
        receiver=scope_receiver,
        number=scope_number,
        tag=scope_tag,
        date_from=scope_from,
        date_to=scope_to,
    )
    expected = (
        scope_service in (None, "sms-a")
        and scope_sender in (None, sender)
        and scope_receiver in (None, receiver)
        and scope_number in (None, sender, receiver)
        and scope_tag in (None, tag)
        and (scope_from is None or day >= scope_from)  # the day in the archive's zone, not UTC
        and (scope_to is None or day <= scope_to)
    )
    assert scope.covers("sms-a", "outgoing", record, PARIS) is expected


def test_an_incoming_sms_is_held_by_its_sender_and_never_by_a_receiver() -> None:
    created = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    record = incoming("0033612345678", created)
    assert HoldScope(number="+33612345678").covers("sms-a", "incoming", record, PARIS)
    assert HoldScope(sender="+33612345678").covers("sms-a", "incoming", record, PARIS)
    assert not HoldScope(receiver="+33612345678").covers("sms-a", "incoming", record, PARIS)
    assert not HoldScope(direction="outgoing").covers("sms-a", "incoming", record, PARIS)


def test_holds_are_placed_listed_and_lifted_and_a_lifted_one_holds_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    record = outgoing("ACME", "+33612345678", "", dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    first = place_hold(store, HoldScope(receiver="+33612345678"), reason="case 42", actor="alice@host")
    second = place_hold(store, HoldScope(tag="promo"), reason="audit", actor="bob@host")
    assert {hold.id for hold in load_holds(store)} == {first.id, second.id}
    assert held_by(load_holds(store), "sms-a", "outgoing", record, PARIS) == first
    lifted = lift_hold(store, first.id, reason="case closed", actor="carol@host")
    assert lifted.lifted_by == "carol@host" and not lifted.active
    assert [hold.id for hold in load_holds(store)] == [second.id]
    assert held_by(load_holds(store), "sms-a", "outgoing", record, PARIS) is None
    # The lift is kept, not deleted: the hold's history stays readable.
    kept = {hold.id: hold for hold in load_holds(store, include_lifted=True)}
    assert kept[first.id].lift_reason == "case closed" and kept[first.id].reason == "case 42"
    with pytest.raises(ValueError, match="lifted already"):
        lift_hold(store, first.id, reason="again", actor="carol@host")
    with pytest.raises(KeyError):
        lift_hold(store, "hold-20260101-abcdef", reason="none", actor="carol@host")


def test_an_unreadable_hold_stops_whoever_reads_the_holds(tmp_path: Path) -> None:
    # A hold that cannot be read must not be taken for "no hold": whatever deletes has to stop.
    store = LocalStore(tmp_path)
    store.put(hold_key("hold-20260101-abcdef"), b"{not json")
    with pytest.raises(StorageError, match="unreadable"):
        load_holds(store)
