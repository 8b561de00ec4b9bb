"""Checking parts: each re-read against the SHA-256 and row count its manifest recorded at write time.

The rule "delete only what verifies" (retention) and "verify" itself both use ``verify_month``; compaction
checks the part it has just written with ``check_part`` before it deletes the parts it merged.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from archiver.csvfile import read_rows
from archiver.errors import IntegrityError, MalformedRecordError, StorageError
from archiver.manifest import PartEntry, load_manifest
from archiver.naming import Direction
from archiver.reader.newest import ArchiveParts, Resolution
from archiver.reader.parts import StoredPart
from archiver.records import COLUMNS, Record, record_from_row
from archiver.store import Store
from archiver.store.layout import month_prefix, parse_part_key

__all__ = ["MonthCheck", "Problem", "check_part", "read_checked", "verify_month"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the archive."""

    kind: str  # missing | extra | corrupt | unreadable
    key: str
    detail: str


@dataclass(slots=True)
class MonthCheck:
    """The verification of one month of one service and direction."""

    service: str
    direction: Direction
    year: int
    month: int
    parts: int = 0
    rows: int = 0  # SMS: one per id, its newest version (an id stored in several parts counts once)
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    stored_rows: int = 0  # rows across the month's parts, each version of an id counted

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


class _HashingReader(io.RawIOBase):
    """Pass reads through while hashing and counting them, so one pass both hashes and parses."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        self.hash.update(data)
        self.size += len(data)
        return len(data)

    def drain(self) -> None:
        """Hash what the parser did not pull (e.g. after a parse error), straight from the source."""
        while data := self.inner.read(1 << 20):
            self.hash.update(data)
            self.size += len(data)


def check_part(
    store: Store,
    key: str,
    direction: Direction,
    entry: PartEntry | None,
    on_row: Callable[[list[str]], None] | None = None,
) -> tuple[int, int, Problem | None]:
    """Re-read one part: return (rows, bytes, problem or None). ``entry=None``: parse only.

    ``on_row`` sees each parsed row as it goes by, so a reader that needs the rows too reads the part once.
    """
    part = parse_part_key(key)
    compressed = part.compressed if part else key.endswith(".gz")
    reader = _HashingReader(store.open(key))
    rows = 0
    try:
        stream = io.BufferedReader(reader)
        for row in read_rows(stream, header=COLUMNS[direction], compressed=compressed, source=key):
            rows += 1
            if on_row is not None:
                on_row(row)
        reader.drain()
    except IntegrityError as error:
        reader.drain()
        if entry is not None and reader.hash.hexdigest() != entry.sha256:
            return rows, reader.size, Problem("corrupt", key, f"SHA-256 differs from the one recorded; {error}")
        return rows, reader.size, Problem("unreadable", key, str(error))
    finally:
        reader.inner.close()
    if entry is None:
        return rows, reader.size, None
    if reader.hash.hexdigest() != entry.sha256:
        detail = f"SHA-256 differs from the one recorded at write time ({entry.sha256[:16]}...)"
        return rows, reader.size, Problem("corrupt", key, detail)
    if rows != entry.rows:
        return rows, reader.size, Problem("corrupt", key, f"{rows} rows, {entry.rows} recorded at write time")
    return rows, reader.size, None


def verify_month(
    store: Store, service: str, direction: Direction, year: int, month: int, resolution: Resolution | None = None
) -> MonthCheck:
    """Check every part of a month against its manifest; count its SMS (``resolution``: of its months)."""
    if resolution is None:
        resolution = ArchiveParts(store, service, direction).resolution([(year, month)], strict=False)
    result = MonthCheck(service, direction, year, month)
    manifest = load_manifest(store, service, direction, year, month)
    listed = {info.key for info in store.list(month_prefix(service, direction, year, month))}
    for key in sorted(listed):
        if key == manifest.key:
            continue
        entry = manifest.parts.get(key)
        if entry is None and key in manifest.superseded:
            continue  # merged into a compacted part; its deletion is pending
        if parse_part_key(key) is None:
            result.problems.append(Problem("extra", key, "not an archive part (foreign file)"))
            continue
        try:
            rows, size, problem = check_part(store, key, direction, entry)
        except (KeyError, StorageError) as error:
            result.problems.append(Problem("unreadable", key, f"cannot be read: {error}"))
            continue
        result.parts += 1
        result.stored_rows += rows
        result.rows += rows - resolution.losing.get(key, 0)
        result.bytes += size
        if entry is None:
            result.problems.append(Problem("extra", key, "part not recorded in the month's manifest"))
        if problem is not None:
            result.problems.append(problem)
    for key in sorted(manifest.parts.keys() - listed):
        result.problems.append(Problem("missing", key, "recorded in the manifest, absent from the store"))
    return result


def read_checked(
    store: Store, stored: StoredPart, direction: Direction, wanted: Container[int]
) -> tuple[list[Record], Problem | None]:
    """Read a part once: the records of ``wanted`` ids it holds, and what is wrong with it (None: nothing).

    The part is checked against its manifest entry as ``verify`` checks it; a part the manifest does not
    record is a problem (``extra``) too: nothing vouches for its bytes.
    """
    found: list[Record] = []

    def keep_wanted(row: list[str]) -> None:
        if row[0].isdigit() and int(row[0]) in wanted:
            found.append(record_from_row(direction, row))

    try:
        _rows, _size, problem = check_part(store, stored.info.key, direction, stored.entry, keep_wanted)
    except (KeyError, StorageError, MalformedRecordError) as error:
        return [], Problem("unreadable", stored.info.key, f"cannot be read: {error}")
    if problem is None and stored.entry is None:
        problem = Problem("extra", stored.info.key, "part not recorded in the month's manifest")
    return found, problem
