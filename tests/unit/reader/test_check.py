"""A part re-read against what its manifest recorded at write time: the verify rule, and retention's proof."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from archiver.config import ArchiveSettings
from archiver.csvfile import encode_rows
from archiver.manifest import PartEntry, record_parts
from archiver.reader import check_part, verify_month
from archiver.records import COLUMNS, Record, format_instant
from archiver.store import LocalStore
from archiver.store.layout import month_prefix
from archiver.writer import write_parts

SERVICE = "sms-check-1"
DAY = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)


def incoming(sms_id: int, created: dt.datetime) -> Record:
    fields = (str(sms_id), format_instant(created), "+33600000001", "", f"message {sms_id}", "1.0")
    return Record("incoming", sms_id, created, fields, True)


@pytest.fixture
def archive(tmp_path: Path) -> tuple[LocalStore, list[PartEntry]]:
    """Two days of March 2025, each one part, recorded in the month's manifest."""
    store = LocalStore(tmp_path)
    records = [incoming(1, DAY), incoming(2, DAY), incoming(3, DAY + dt.timedelta(days=1))]
    entries = write_parts(store, ArchiveSettings(timezone="UTC"), SERVICE, "incoming", records)
    record_parts(store, SERVICE, "incoming", entries)
    return store, entries


def problems(store: LocalStore) -> list[tuple[str, str]]:
    return [(problem.kind, problem.key) for problem in verify_month(store, SERVICE, "incoming", 2025, 3).problems]


def test_an_intact_month_verifies_and_counts_its_sms(archive: tuple[LocalStore, list[PartEntry]]) -> None:
    store, entries = archive
    check = verify_month(store, SERVICE, "incoming", 2025, 3)
    assert (check.problems, check.parts, check.rows) == ([], 2, 3)
    assert check.bytes == sum(entry.size for entry in entries)
    assert all(check_part(store, entry.key, "incoming", entry) == (entry.rows, entry.size, None) for entry in entries)


def test_changed_bytes_that_still_parse_are_corrupt(archive: tuple[LocalStore, list[PartEntry]]) -> None:
    store, entries = archive
    other = encode_rows(COLUMNS["incoming"], [incoming(1, DAY).fields, (*incoming(2, DAY).fields[:4], "edited", "1.0")])
    store.put(entries[0].key, other.data)
    assert problems(store) == [("corrupt", entries[0].key)]


def test_bytes_that_do_not_parse_are_reported_not_raised(archive: tuple[LocalStore, list[PartEntry]]) -> None:
    store, entries = archive
    store.put(entries[1].key, b"id;creationDatetime\r\nbroken")
    assert problems(store) == [("corrupt", entries[1].key)]  # the hash differs too: corrupt wins
    rows, _size, problem = check_part(store, entries[1].key, "incoming", None)
    assert problem is not None and problem.kind == "unreadable" and rows == 0


def test_a_recorded_part_gone_from_the_store_is_missing(archive: tuple[LocalStore, list[PartEntry]]) -> None:
    store, entries = archive
    store.delete(entries[0].key)
    assert problems(store) == [("missing", entries[0].key)]


def test_unrecorded_parts_and_foreign_files_are_extra(archive: tuple[LocalStore, list[PartEntry]]) -> None:
    store, _entries = archive
    [unrecorded] = write_parts(
        store, ArchiveSettings(timezone="UTC"), SERVICE, "incoming", [incoming(9, DAY + dt.timedelta(days=2))]
    )
    foreign = month_prefix(SERVICE, "incoming", 2025, 3) + "day=10/notes.txt"
    store.put(foreign, b"hello")
    assert sorted(problems(store)) == [("extra", foreign), ("extra", unrecorded.key)]
