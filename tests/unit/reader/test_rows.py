"""Rows found in a part's bytes without a CSV parse: right, or refused, never wrong.

The adversary is the message: it may hold quotes, line breaks, delimiters, and text made to look
like the start of a row. The rule under test (archiver/reader/rows.py): matches count as rows only
when they number what the manifest recorded; a look-alike makes them too many, and the reader parses.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from archiver.config import ArchiveSettings
from archiver.csvfile import encode_rows
from archiver.manifest import record_parts
from archiver.reader import ArchiveParts, day_chunks, day_rows, iter_day_records
from archiver.reader.day_bytes import write_piece
from archiver.reader.rows import stored_rows
from archiver.records import COLUMNS, Record, format_instant
from archiver.store import LocalStore
from archiver.writer import write_parts

CREATED = "2025-01-30T22:00:00+00:00"
LOOK_ALIKE = f"\r\n999;{CREATED};"
message_text = st.lists(
    st.sampled_from(['"', ";", ",", "\r", "\n", "1", "9", "a", "é", "😊", " ", LOOK_ALIKE]), max_size=30
).map("".join)


def incoming_rows(messages: list[str]) -> list[tuple[str, ...]]:
    return [(str(1000 + index), CREATED, "+33600000001", "", message, "1.0") for index, message in enumerate(messages)]


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(message_text, min_size=1, max_size=12), delimiter=st.sampled_from([";", ",", "\t"]))
def test_stored_rows_are_the_parsed_rows_or_none(messages: list[str], delimiter: str) -> None:
    rows = incoming_rows(messages)
    data = encode_rows(COLUMNS["incoming"], rows, delimiter=delimiter).data
    found = stored_rows(data, COLUMNS["incoming"], delimiter, len(rows))
    if found is None:
        assert any(delimiter == ";" and LOOK_ALIKE in message for message in messages)  # refused: a look-alike
        return
    assert [(sms_id, created) for created, sms_id, _row in found] == [
        (int(row[0]), dt.datetime.fromisoformat(row[1])) for row in rows
    ]
    assert b"".join(row for _created, _id, row in found) == data[data.index(b"\r\n") + 2 :]
    for (_created, _id, row), original in zip(found, rows, strict=True):
        [parsed] = list(csv.reader(io.StringIO(row.decode(), newline=""), delimiter=delimiter))
        assert tuple(parsed) == original


def test_a_look_alike_row_start_in_a_message_is_refused_not_taken_for_a_row() -> None:
    rows = incoming_rows(["hello", f"fake{LOOK_ALIKE}row", "bye"])
    data = encode_rows(COLUMNS["incoming"], rows).data
    assert stored_rows(data, COLUMNS["incoming"], ";", 3) is None
    assert stored_rows(data, COLUMNS["incoming"], ";", None) is None  # no count recorded: not relied on


def test_another_delimiter_or_header_is_refused() -> None:
    data = encode_rows(COLUMNS["incoming"], incoming_rows(["hello"]), delimiter=",").data
    assert stored_rows(data, COLUMNS["incoming"], ";", 1) is None
    assert stored_rows(data, COLUMNS["outgoing"], ",", 1) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=st.lists(
        st.lists(st.tuples(st.integers(1, 40), st.integers(0, 5), message_text), min_size=1, max_size=15),
        min_size=1,
        max_size=5,
    )
)
@example(writes=[[(1, 0, "first")], [(1, 3, "a later version, another instant")]])
def test_a_day_sorted_as_bytes_equals_the_day_merged_as_records(tmp_path_factory, writes) -> None:  # type: ignore[no-untyped-def]
    """Several writes of one day, ids repeated across them (late statuses): both readers agree, byte for byte."""
    store = LocalStore(tmp_path_factory.mktemp("rows"))
    base = dt.datetime(2025, 3, 10, 8, 0, tzinfo=dt.UTC)
    archive = ArchiveSettings(timezone="UTC")
    for write in writes:
        records = {}
        for sms_id, minute, message in write:
            created = base + dt.timedelta(minutes=minute)
            fields = (str(sms_id), format_instant(created), "+33600000001", "", message, "1.0")
            records[sms_id] = Record("incoming", sms_id, created, fields, True)
        record_parts(
            store, "sms-rows-1", "incoming", write_parts(store, archive, "sms-rows-1", "incoming", records.values())
        )
    index = ArchiveParts(store, "sms-rows-1", "incoming")
    resolution = index.resolution()
    [(_day, parts)] = index.days(2025, 3)
    merged = [record.fields for record in iter_day_records(store, parts, "incoming", resolution)]
    expected = encode_rows(COLUMNS["incoming"], merged).data.split(b"\r\n", 1)[1]
    sorted_rows = day_rows(store, parts, "incoming", resolution, delimiter=";")
    if sorted_rows is None:
        assert any(LOOK_ALIKE in message for write in writes for _i, _m, message in write)
        return
    assert b"".join(sorted_rows) == expected


# Instants of one day: whole seconds or microseconds, in UTC or at another offset; a version may
# move to the next day (another instant), so groups of overlapping parts span one day or two.
DAY = dt.datetime(2025, 3, 10, 8, 0, tzinfo=dt.UTC)
PARIS_WINTER = dt.timezone(dt.timedelta(hours=1))


@st.composite
def day_layouts(draw: st.DrawFn) -> list[list[tuple[int, dt.datetime, str]]]:
    """Writes of (id, created, message); the shape knobs decide whether the fast path may apply."""
    wide = draw(st.booleans())  # ids of one width (100..140) or of several (1..40)
    ids = st.integers(100, 140) if wide else st.integers(1, 40)
    precise = draw(st.sampled_from(["seconds", "microseconds", "mixed"]))
    zone = draw(st.sampled_from([dt.UTC, PARIS_WINTER, None]))  # None: each row its own offset
    clean = draw(st.booleans())  # messages without line breaks or look-alikes
    text = st.sampled_from(["hello", "a;b", 'say "hi"', "é😊"]) if clean else message_text

    def instant(minute: int, micro: int, moved: bool) -> dt.datetime:
        created = DAY + dt.timedelta(minutes=minute, days=1 if moved else 0)
        if precise == "microseconds" or (precise == "mixed" and micro % 2):
            created = created.replace(microsecond=micro or 1)
        row_zone = zone or (dt.UTC if minute % 2 else PARIS_WINTER)
        return created.astimezone(row_zone)

    entry = st.tuples(ids, st.integers(0, 5), st.integers(0, 999_999), st.integers(0, 9), text)
    writes = draw(st.lists(st.lists(entry, min_size=1, max_size=12), min_size=1, max_size=5))
    return [
        [(sms_id, instant(minute, micro, moved == 0), message) for sms_id, minute, micro, moved, message in write]
        for write in writes
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=day_layouts())
@example(writes=[[(101, DAY, "first")], [(101, DAY + dt.timedelta(minutes=3), "a later version, another instant")]])
@example(writes=[[(101, DAY, "old"), (102, DAY, "b")], [(101, DAY + dt.timedelta(days=1), "moved to the next day")]])
def test_a_day_read_as_chunks_equals_the_day_merged_as_records(tmp_path_factory, writes) -> None:  # type: ignore[no-untyped-def]
    """``day_chunks`` (retrieve's fast path, deferred groups settled from the ids it reads) gives the
    bytes and row count the record merge gives under a fully scanned resolution, or refuses; it does not
    refuse a day whose ids and instants have one width and whose messages hold no line break."""
    store = LocalStore(tmp_path_factory.mktemp("chunks"))
    archive = ArchiveSettings(timezone="UTC")
    for write in writes:
        records = {
            sms_id: Record(
                "incoming", sms_id, created, (str(sms_id), format_instant(created), "+336", "", text, "1"), True
            )
            for sms_id, created, text in write
        }
        record_parts(
            store, "sms-rows-1", "incoming", write_parts(store, archive, "sms-rows-1", "incoming", records.values())
        )
    index = ArchiveParts(store, "sms-rows-1", "incoming")
    scanned = index.resolution()
    deferred = index.resolution(defer_days=True)
    for _day, parts in index.days(2025, 3):
        merged = [record.fields for record in iter_day_records(store, parts, "incoming", scanned)]
        expected = encode_rows(COLUMNS["incoming"], merged).data.split(b"\r\n", 1)[1]
        found = day_chunks(store, parts, "incoming", deferred, delimiter=";")
        rows = [(sms_id, created) for write in writes for sms_id, created, _text in write]
        one_shape = (
            len({len(str(sms_id)) for sms_id, _created in rows}) == 1
            and len({len(format_instant(created)) for _id, created in rows}) == 1
            and len({created.utcoffset() for _id, created in rows}) == 1
        )
        no_break = not any("\r\n" in text for write in writes for _i, _c, text in write)
        if found is None:
            assert not (one_shape and no_break), "a day the fast path can read was refused"
            deferred.settle(store, parts, "incoming")
            continue
        chunks, count = found
        written = io.BytesIO()
        for piece in chunks:
            write_piece(written, piece)
        assert written.getvalue() == expected
        assert count == len(merged)
    # Settled day by day, the deferred resolution decides as the full scan did.
    assert (deferred.winners, deferred.losing, deferred.deferred) == (scanned.winners, scanned.losing, {})


def test_a_part_of_another_width_or_a_message_with_a_line_break_is_refused() -> None:
    from archiver.reader.rows import row_shape, shaped_ids, split_rows

    header = ";".join(COLUMNS["incoming"]).encode()
    clean = encode_rows(COLUMNS["incoming"], incoming_rows(["hello", "bye"])).data
    rows = split_rows(clean, header, 2)
    assert rows is not None and len(rows) == 2
    shape = row_shape(rows[0], b";")
    assert shape is not None and shaped_ids(clean, shape, 2) == [b"1000", b"1001"]
    broken = encode_rows(COLUMNS["incoming"], incoming_rows(["two\r\nlines", "bye"])).data
    assert split_rows(broken, header, 2) is None
    wider = encode_rows(COLUMNS["incoming"], [*incoming_rows(["a"]), ("99999", CREATED, "+336", "", "b", "1")]).data
    assert shaped_ids(wider, shape, 2) is None
    other_offset = encode_rows(
        COLUMNS["incoming"], [*incoming_rows(["a"]), ("1001", "2025-01-30T23:00:00+01:00", "+336", "", "b", "1")]
    ).data
    assert shaped_ids(other_offset, shape, 2) is None
    assert split_rows(clean, header, None) is None and split_rows(clean, header, 3) is None
