"""The reader's one rule: one row per id, its newest version, in the month and day of its own date.

Layouts are built straight into a local store (no API): an id may have versions in several parts,
days and months, and a version may carry another creation instant than the others (the export's
zone-less ``date`` read in another zone, or the send time taken for the creation time). A plain
dict is the oracle: the version of the part written last wins, and it is the only row of that id.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.actions.compact import run_compact
from archiver.actions.retrieve import OutputFormat, run_retrieve
from archiver.config import ArchiveSettings, OvhSettings, Settings
from archiver.csvfile import encode_rows
from archiver.manifest import PartEntry, record_parts
from archiver.reader import iter_records, list_parts, resolved_copies, summarize_months, verify_month
from archiver.records import COLUMNS, Record, format_instant
from archiver.store import LocalStore
from archiver.writer import put_part

SERVICE = "sms-reader-1"
# Instants around two month ends (UTC is the archive zone here): a moved version may change day or month.
BASE = dt.datetime(2025, 1, 30, 22, 0, tzinfo=dt.UTC)
INSTANTS = [BASE + dt.timedelta(hours=hours) for hours in (0, 1, 2, 3, 26, 27, 50, 51)] + [
    dt.datetime(2025, 2, 28, 23, 30, tzinfo=dt.UTC),
    dt.datetime(2025, 3, 1, 0, 30, tzinfo=dt.UTC),
]
WRITTEN = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
ARCHIVE_SETTINGS = Settings.model_construct(
    archive=ArchiveSettings(timezone="UTC", settle_seconds=0, lookback_hours=0),
    ovh=OvhSettings.model_construct(services=[SERVICE]),
)


def incoming(sms_id: int, created: dt.datetime, write: int) -> Record:
    fields = (str(sms_id), format_instant(created), "+33600000001", "", f"id {sms_id} write {write}", "1.0")
    return Record("incoming", sms_id, created, fields, True)


def write(store: LocalStore, records: list[Record], written: dt.datetime) -> list[PartEntry]:
    """Write records as one part per day (as the archiver does), stamped as written at ``written``."""
    by_day: dict[dt.date, list[Record]] = {}
    for record in records:
        by_day.setdefault(record.created.date(), []).append(record)
    entries = []
    for day, day_records in sorted(by_day.items()):
        day_records.sort(key=lambda record: (record.created, record.id))
        encoded = encode_rows(COLUMNS["incoming"], (record.fields for record in day_records))
        ids = [record.id for record in day_records]
        entry = put_part(
            store, ARCHIVE_SETTINGS.archive, SERVICE, "incoming", day, encoded, ids, (day_records[0], day_records[-1])
        )
        entries.append(dataclasses.replace(entry, written_at=written.isoformat(timespec="microseconds")))
    record_parts(store, SERVICE, "incoming", entries)
    return entries


# A layout: a list of writes, each a list of (id, instant index) with distinct ids.
writes_strategy = st.lists(
    st.dictionaries(st.integers(1, 14), st.integers(0, len(INSTANTS) - 1), min_size=1, max_size=8),
    min_size=1,
    max_size=6,
)


def build(store: LocalStore, writes: list[dict[int, int]]) -> dict[int, Record]:
    """Write the layout; return the oracle: each id's newest version."""
    newest: dict[int, Record] = {}
    for index, versions in enumerate(writes):
        records = [incoming(sms_id, INSTANTS[instant], index) for sms_id, instant in versions.items()]
        write(store, records, WRITTEN + dt.timedelta(seconds=index))
        newest.update((record.id, record) for record in records)
    return newest


def months_of(store: LocalStore) -> list[tuple[int, int]]:
    return sorted({(stored.part.day.year, stored.part.day.month) for stored in list_parts(store, SERVICE, "incoming")})


def retrieved(store: LocalStore, year: int, month: int) -> list[list[str]]:
    output = io.BytesIO()
    run_retrieve(store, SERVICE, "incoming", [(year, month)], output, OutputFormat())
    return list(csv.reader(io.StringIO(output.getvalue().decode(), newline=""), delimiter=";"))[1:]


def assert_one_row_per_id(store: LocalStore, newest: dict[int, Record]) -> None:
    seen: dict[int, list[str]] = {}
    for year, month in months_of(store):
        rows = retrieved(store, year, month)
        records = list(iter_records(store, SERVICE, "incoming", year, month))
        assert [list(record.fields) for record in records] == rows, "retrieve and the reader disagree"
        for row in rows:
            sms_id = int(row[0])
            assert sms_id not in seen, f"id {sms_id} comes out twice"
            seen[sms_id] = row
            assert dt.datetime.fromisoformat(row[1]).astimezone(dt.UTC).timetuple()[:2] == (year, month)
        keys = [(dt.datetime.fromisoformat(row[1]), int(row[0])) for row in rows]
        assert keys == sorted(keys), "rows not in (date, id) order"
    assert seen == {sms_id: list(record.fields) for sms_id, record in newest.items()}


@contextlib.contextmanager
def fresh_store() -> Iterator[LocalStore]:
    with tempfile.TemporaryDirectory(prefix="reader-test-") as name:
        yield LocalStore(Path(name))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writes=writes_strategy)
def test_every_reader_gives_each_id_once_newest_in_its_own_month(writes: list[dict[int, int]]) -> None:
    with fresh_store() as store:
        newest = build(store, writes)
        assert_one_row_per_id(store, newest)
        # Retention's view: the newest copy of each wanted id, from the part that holds it.
        wanted = set(newest) | {99}
        copies = {record.id: (record, stored) for record, stored in resolved_copies(store, SERVICE, "incoming", wanted)}
        assert {sms_id: record.fields for sms_id, (record, _) in copies.items()} == {
            sms_id: record.fields for sms_id, record in newest.items()
        }
        for record, stored in copies.values():
            # The part named is the one that holds that very row (the written-last version).
            assert stored.part.day == record.created.date()
            assert ";".join(record.fields) in store.get(stored.info.key).decode()
        # Verify counts SMS (one per id) and finds nothing wrong with a moved duplicate.
        checks = [verify_month(store, SERVICE, "incoming", year, month) for year, month in months_of(store)]
        assert all(not check.problems for check in checks)
        assert sum(check.rows for check in checks) == len(newest)
        # ``months`` keeps counting rows stored (an id stored twice counts twice).
        stored_rows = sum(len(versions) for versions in writes)
        assert sum(summary.rows for summary in summarize_months(store, SERVICE, "incoming")) == stored_rows
        # Compaction keeps every winner, resurrects no loser, and the archive resolves the same.
        run_compact(ARCHIVE_SETTINGS, store, now=dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
        assert_one_row_per_id(store, newest)
        days = [stored.part.day for stored in list_parts(store, SERVICE, "incoming")]
        assert len(days) == len(set(days)), "a settled day still has several parts"


def test_a_version_whose_date_moved_to_another_month_is_given_once() -> None:
    """The export read in the wrong zone put id 7 on 1 March; the API's version says 28 February."""
    with fresh_store() as store:
        export_version = incoming(7, dt.datetime(2025, 3, 1, 0, 30, tzinfo=dt.UTC), 0)
        api_version = incoming(7, dt.datetime(2025, 2, 28, 23, 30, tzinfo=dt.UTC), 1)
        write(store, [export_version, incoming(8, dt.datetime(2025, 3, 1, 5, tzinfo=dt.UTC), 0)], WRITTEN)
        write(store, [api_version], WRITTEN + dt.timedelta(seconds=1))
        assert retrieved(store, 2025, 2) == [list(api_version.fields)]
        assert [row[0] for row in retrieved(store, 2025, 3)] == ["8"]


nasty_text = st.text(alphabet=st.sampled_from(['"', ";", "\t", "\r", "\n", "1", "2", "a", "é", "😊", " "]), max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(nasty_text, min_size=1, max_size=12),
    delimiter=st.sampled_from([";", ",", "\t", "|"]),
)
def test_ids_scanned_without_a_csv_parse_equal_the_parsed_ones(messages: list[str], delimiter: str) -> None:
    """Messages with quotes, line breaks, delimiters and digits after a line break do not fool the scan."""
    from archiver.reader.rows import scanned_ids

    rows = [
        (str(1000 + index), "2025-01-30T22:00:00+00:00", message, "", message, "1.0")
        for index, message in enumerate(messages)
    ]
    encoded = encode_rows(COLUMNS["incoming"], rows, delimiter=delimiter)
    parsed = list(csv.reader(io.StringIO(encoded.data.decode(), newline=""), delimiter=delimiter))[1:]
    assert [row[2] for row in parsed] == messages
    ids = scanned_ids(encoded.data, "id", len(rows))
    # None sends the reader to a real parse: allowed only when a message looks like a row's start.
    assert ids == [int(row[0]) for row in parsed] or (ids is None and any("\r\n" in m for m in messages))
