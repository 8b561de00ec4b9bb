from __future__ import annotations

import datetime as dt

import pytest

from archiver.layout import (
    check_service_name,
    lease_key,
    manifest_key,
    parse_part_key,
    part_key,
    part_name,
    state_key,
)


def test_part_keys_round_trip() -> None:
    name = part_name(12, 340, "ab" * 32)
    key = part_key("sms-ab12345-1", "outgoing", dt.date(2026, 3, 9), name, compressed=True)
    assert key == "sms-ab12345-1/outgoing/year=2026/month=03/day=09/12-340-abababababababab.csv.gz"
    parsed = parse_part_key(key)
    assert parsed is not None
    assert (parsed.service, parsed.direction, parsed.day, parsed.compressed) == (
        "sms-ab12345-1",
        "outgoing",
        dt.date(2026, 3, 9),
        True,
    )
    assert parsed.key == key


@pytest.mark.parametrize(
    "key",
    [
        "sms-1/outgoing/year=2026/month=03/_manifest.json",
        "sms-1/outgoing/year=2026/month=02/day=30/1-2-abcdefab.csv",
        "sms-1/sideways/year=2026/month=03/day=09/1-2-abcdefab.csv",
        "sms-1/outgoing/year=2026/month=03/day=09/notes.txt",
        "_state/sms-1/outgoing.json",
    ],
)
def test_other_keys_are_not_parts(key: str) -> None:
    assert parse_part_key(key) is None


def test_state_keys() -> None:
    assert state_key("sms-1", "incoming") == "_state/sms-1/incoming.json"
    assert lease_key("sms-1") == "_state/sms-1/lease.json"
    assert manifest_key("sms-1", "outgoing", 2026, 1) == "sms-1/outgoing/year=2026/month=01/_manifest.json"


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "_state", ".hidden", "x" * 200])
def test_unsafe_service_names(bad: str) -> None:
    with pytest.raises(ValueError):
        check_service_name(bad)
