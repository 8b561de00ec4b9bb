from __future__ import annotations

import datetime as dt

import pytest

from archiver.store.layout import (
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


def test_day_clusters_group_only_overlapping_spans() -> None:
    from archiver.reader import StoredPart, day_clusters
    from archiver.store import ObjectInfo

    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

    def part(name: str, first: tuple[int, int] | None, last: tuple[int, int] | None) -> StoredPart:
        parsed = parse_part_key(f"s-1/outgoing/year=2026/month=03/day=01/{name}-1-abcdef12.csv")
        assert parsed is not None
        span = None
        if first and last:
            span = ((t0 + dt.timedelta(seconds=first[0]), first[1]), (t0 + dt.timedelta(seconds=last[0]), last[1]))
        return StoredPart(ObjectInfo(parsed.key, 1, t0), parsed, t0, 1, span)

    a, b, c = part("1", (0, 1), (10, 5)), part("2", (10, 5), (20, 9)), part("3", (21, 10), (30, 12))
    # b starts on a's last row (the same SMS, another version): they must be merged; c is apart.
    assert [[p.part.name for p in cluster] for cluster in day_clusters([c, b, a])] == [
        ["1-1-abcdef12", "2-1-abcdef12"],
        ["3-1-abcdef12"],
    ]
    # A part without a recorded span (older manifest): the whole day is merged.
    assert len(day_clusters([a, part("4", None, None), c])) == 1
