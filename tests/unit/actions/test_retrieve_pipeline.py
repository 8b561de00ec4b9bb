"""Retrieve's three stages at once (parts read ahead, a day sorted, the previous day written): the
same bytes as one after the other, bounded memory, and a failure anywhere that stops everything
without a hole in the output and without a thread left behind.

The adversaries: an output that fails mid-month or is slow, a store that fails or loses a part
while it is being read ahead, a reader that stops early.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import threading
from pathlib import Path
from typing import Any

import pytest

from archiver.actions.retrieve import OutputFormat, run_retrieve
from archiver.actions.retrieve.write_behind import WriteBehind
from archiver.config import ArchiveSettings
from archiver.errors import StorageError
from archiver.manifest import record_parts
from archiver.reader import ArchiveParts, iter_records
from archiver.reader.prefetch import days_ahead
from archiver.records import COLUMNS, Record, format_instant
from archiver.store import LocalStore
from archiver.writer import write_parts

SERVICE = "sms-pipe-1"
WAIT = 10.0  # seconds: the bound of every wait below (none is reached when the code is right)


class SlowOutput(io.BytesIO):
    """An output whose writes wait until the test lets them through."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write(self, data: Any) -> int:
        self.entered.set()
        assert self.gate.wait(WAIT), "the test never opened the gate"
        return super().write(data)


class FailingOutput(io.BytesIO):
    """An output that fails (a full disk) once ``limit`` bytes are written."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.limit:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_pieces_are_written_in_the_order_given() -> None:
    output = io.BytesIO()
    with WriteBehind(output) as out:
        for index in range(200):
            out.write_all([f"{index}:".encode(), memoryview(b"abc")[index % 3 :]])
            out.write(b";")
    assert output.getvalue() == b"".join(f"{index}:".encode() + b"abc"[index % 3 :] + b";" for index in range(200))


def test_the_output_error_is_raised_in_the_caller_and_nothing_is_written_past_it() -> None:
    output = FailingOutput(limit=10)
    out = WriteBehind(output)
    with pytest.raises(OSError, match="No space left"):
        out.write(b"12345")
        out.write(b"678901")  # the thread fails on this one
        for _ in range(1000):  # bounded: the error surfaces at a write once the thread met it, or at close
            out.write_all([b"z"])
        out.close()
    out.abandon()
    assert output.getvalue() == b"12345"  # "z" fits, but never after the hole


def test_memory_is_bounded_a_writer_waits_when_depth_pieces_wait() -> None:
    output = SlowOutput()
    out = WriteBehind(output, depth=2)
    out.write(b"a")  # taken by the thread, which then waits at the gate
    assert output.entered.wait(WAIT)
    out.write(b"b")
    out.write(b"c")  # two waiting: the queue is full
    blocked = threading.Thread(target=out.write, args=(b"d",))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive(), "a third piece was taken while two were waiting: memory would not be bounded"
    output.gate.set()
    blocked.join(WAIT)
    out.close()
    assert output.getvalue() == b"abcd"


def test_leaving_on_an_error_ends_the_thread_and_the_output_is_a_prefix() -> None:
    output = SlowOutput()
    with pytest.raises(RuntimeError, match="the caller failed"), WriteBehind(output, depth=2) as out:
        out.write(b"first")
        assert output.entered.wait(WAIT)
        for _ in range(2):  # as many as may wait (``depth``): a third would wait for the gate
            out.write(b"-next")
        output.gate.set()
        raise RuntimeError("the caller failed")
    assert output.getvalue() in [b"first" + b"-next" * count for count in range(3)]
    assert not [thread for thread in threading.enumerate() if thread.name == "write-behind"]


class CountingStore(LocalStore):
    """A local store that counts the objects read, may fail to read one, and is read ahead as S3 is."""

    parallel_reads = 4

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []
        self.lock = threading.Lock()
        self.fail: str | None = None  # a part whose read fails (the store went away)

    def get(self, key: str) -> bytes:
        with self.lock:
            self.reads.append(key)
        if key == self.fail:
            raise StorageError(f"cannot get {key}: connection reset")
        return super().get(key)


def _month(store: LocalStore, *, days: int = 6, writes: int = 3, per_write: int = 40) -> None:
    """A month of ``days`` days, each with ``writes`` interleaved parts (they overlap: the sorted path)."""
    archive = ArchiveSettings(timezone="UTC")
    start = dt.datetime(2025, 3, 1, 6, 0, tzinfo=dt.UTC)
    for write in range(writes):
        records = []
        for index in range(write, days * per_write, writes):
            created = start + dt.timedelta(days=index // per_write, minutes=index % per_write)
            sms_id = 10_000 + index
            fields = (str(sms_id), format_instant(created), "+33600000001", "", f"message {index}", "1.0")
            records.append(Record("incoming", sms_id, created, fields, True))
        record_parts(store, SERVICE, "incoming", write_parts(store, archive, SERVICE, "incoming", records))


def _expected(store: LocalStore) -> bytes:
    """The month written row by row from the record readers (no byte shortcut, no thread)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
    writer.writerow(COLUMNS["incoming"])
    for record in iter_records(store, SERVICE, "incoming", 2025, 3):
        writer.writerow(record.fields)
    return text.getvalue().encode()


@pytest.mark.parametrize("read_ahead", [False, True])
def test_the_pipeline_gives_the_bytes_of_the_record_readers(tmp_path: Path, read_ahead: bool) -> None:
    store = CountingStore(tmp_path) if read_ahead else LocalStore(tmp_path)
    _month(store)
    output = io.BytesIO()
    assert run_retrieve(store, SERVICE, "incoming", [(2025, 3)], output, OutputFormat()) == 6 * 40
    assert output.getvalue() == _expected(store)
    zipped = io.BytesIO()
    run_retrieve(store, SERVICE, "incoming", [(2025, 3)], zipped, OutputFormat(gzip=True))
    assert gzip.decompress(zipped.getvalue()) == _expected(store)


def test_reading_ahead_is_bounded_and_in_order(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    _month(store, days=8)
    index = ArchiveParts(store, SERVICE, "incoming")
    days = index.days(2025, 3)
    sizes = [sum(stored.info.size for stored in parts) for _day, parts in days]
    ahead_bytes = sizes[0] + 1  # room for about one day ahead
    seen = []
    reader = days_ahead(store, days, wanted=lambda _parts: True, ahead_bytes=ahead_bytes, threads=2)
    for ahead in reader:
        for future in list(ahead.reads.values()):
            future.result(WAIT)  # let every read under way end before counting
        read_days = {key.split("/day=")[1][:2] for key in store.reads if "/day=" in key}
        # Read so far: the days given before, this one, and the next (the limit leaves room for one).
        assert len(read_days) <= len(seen) + 2, read_days
        seen.append(ahead.day)
        assert all(ahead.read(stored) == LocalStore.get(store, stored.info.key) for stored in ahead.parts)
    assert seen == [day for day, _parts in days]
    part_reads = [key for key in store.reads if "/day=" in key]
    assert len(part_reads) == sum(len(parts) for _day, parts in days)  # each part read ahead once


def test_a_reader_that_stops_early_leaves_no_thread(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    _month(store)
    index = ArchiveParts(store, SERVICE, "incoming")
    reader = days_ahead(store, index.days(2025, 3), wanted=lambda _parts: True, ahead_bytes=10**9, threads=4)
    next(reader)
    reader.close()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("read-ahead")]


def test_a_part_that_fails_while_read_ahead_fails_the_retrieve_with_no_thread_left(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    _month(store)
    parts = ArchiveParts(store, SERVICE, "incoming").parts(2025, 3)
    store.fail = parts[len(parts) // 2].info.key
    with pytest.raises(StorageError, match="connection reset"):
        run_retrieve(store, SERVICE, "incoming", [(2025, 3)], io.BytesIO(), OutputFormat())
    leftover = [thread.name for thread in threading.enumerate() if thread.name.startswith(("read-ahead", "write-"))]
    assert not leftover


def test_a_full_disk_mid_month_is_raised_and_stops_the_retrieve(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    _month(store, days=10)
    output = FailingOutput(limit=len(_expected(store)) // 3)
    with pytest.raises(OSError, match="No space left"):
        run_retrieve(store, SERVICE, "incoming", [(2025, 3)], output, OutputFormat())
    assert _expected(store).startswith(output.getvalue())  # what was written is a prefix: no hole
    assert not [thread for thread in threading.enumerate() if thread.name.startswith(("read-ahead", "write-"))]
