"""The writer: records become one part per day of the archive's zone, named after their content.

Written into a local store and read back with the reader, so the two halves of the object layout
(docs/architecture.md, Object layout) are checked against each other.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.config import ArchiveSettings
from archiver.csvfile import read_rows
from archiver.manifest import parse_row_key
from archiver.reader import check_part, list_parts
from archiver.records import COLUMNS, Record, format_instant
from archiver.store import LocalStore
from archiver.store.layout import parse_part_key
from archiver.writer import write_parts

SERVICE = "sms-writer-1"
PARIS = ArchiveSettings(timezone="Europe/Paris")


def incoming(sms_id: int, created: dt.datetime, text: str = "") -> Record:
    fields = (str(sms_id), format_instant(created), "+33600000001", "", text or f"message {sms_id}", "1.0")
    return Record("incoming", sms_id, created, fields, True)


def stored_rows(store: LocalStore, key: str, compressed: bool = False) -> list[list[str]]:
    with store.open(key) as stream:
        return [list(row) for row in read_rows(stream, header=COLUMNS["incoming"], compressed=compressed, source=key)]


def test_parts_follow_the_day_in_the_archive_zone_not_utc(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    # 22:30 UTC on 31 March is already 1 April in Paris (UTC+2 in summer time).
    late = dt.datetime(2025, 3, 31, 22, 30, tzinfo=dt.UTC)
    early = dt.datetime(2025, 3, 31, 21, 30, tzinfo=dt.UTC)
    entries = write_parts(store, PARIS, SERVICE, "incoming", [incoming(2, late), incoming(1, early)])
    days = sorted(parsed.day for entry in entries if (parsed := parse_part_key(entry.key)) is not None)
    assert days == [dt.date(2025, 3, 31), dt.date(2025, 4, 1)]
    assert [entry.rows for entry in entries] == [1, 1]


def test_a_part_is_sorted_and_its_entry_describes_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    base = dt.datetime(2025, 5, 2, 8, 0, tzinfo=dt.UTC)
    records = [incoming(30, base + dt.timedelta(minutes=5)), incoming(10, base), incoming(20, base)]
    [entry] = write_parts(store, PARIS, SERVICE, "incoming", records)
    rows = stored_rows(store, entry.key)
    assert [row[0] for row in rows] == ["10", "20", "30"]  # by (creation instant, id)
    assert (entry.first_id, entry.last_id, entry.rows) == (10, 30, 3)
    assert parse_row_key(entry.first_row) == (base, 10)
    assert parse_row_key(entry.last_row) == (base + dt.timedelta(minutes=5), 30)
    info = store.head(entry.key)
    assert info is not None and info.size == entry.size
    assert check_part(store, entry.key, "incoming", entry)[2] is None  # what verify would say


def test_the_same_rows_make_the_same_key_and_other_rows_another(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    created = dt.datetime(2025, 5, 2, 8, 0, tzinfo=dt.UTC)
    [first] = write_parts(store, PARIS, SERVICE, "incoming", [incoming(1, created)])
    [again] = write_parts(store, PARIS, SERVICE, "incoming", [incoming(1, created)])
    [changed] = write_parts(store, PARIS, SERVICE, "incoming", [incoming(1, created, "another text")])
    assert first.key == again.key and first.sha256 == again.sha256
    assert changed.key != first.key
    assert len(list_parts(store, SERVICE, "incoming")) == 2


def test_gzip_setting_writes_compressed_parts_the_reader_opens(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    created = dt.datetime(2025, 5, 2, 8, 0, tzinfo=dt.UTC)
    [entry] = write_parts(
        store, ArchiveSettings(timezone="UTC", gzip=True), SERVICE, "incoming", [incoming(7, created)]
    )
    assert entry.key.endswith(".csv.gz")
    assert gzip.decompress(store.get(entry.key)).startswith(b"id;")
    assert stored_rows(store, entry.key, compressed=True)[0][0] == "7"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=6 * 86400), min_size=1, max_size=30, unique=True),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York"]),
)
def test_every_record_lands_once_in_the_part_of_its_local_day(tmp_path_factory, offsets: list[int], zone: str) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(tmp_path_factory.mktemp("writer"))
    base = dt.datetime(2025, 10, 24, 0, 0, tzinfo=dt.UTC)  # spans the end of summer time in Europe
    records = [incoming(index + 1, base + dt.timedelta(seconds=offset)) for index, offset in enumerate(offsets)]
    archive = ArchiveSettings(timezone=zone)
    entries = write_parts(store, archive, SERVICE, "incoming", records)
    seen: dict[int, dt.date] = {}
    for entry in entries:
        parsed = parse_part_key(entry.key)
        assert parsed is not None
        for row in stored_rows(store, entry.key):
            assert int(row[0]) not in seen
            seen[int(row[0])] = parsed.day
    assert seen == {record.id: record.created.astimezone(archive.zone).date() for record in records}
