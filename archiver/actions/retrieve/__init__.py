"""Retrieve: past months back out of the archive as one clean CSV.

Each id appears once (its newest archived version, in the month of its own date: see the reader's
rule), rows are sorted by date then id, and the output is streamed: memory does not grow with the
number of rows.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import BinaryIO

from archiver.actions.retrieve.write_behind import WriteBehind
from archiver.errors import ConfigError
from archiver.naming import Direction
from archiver.reader import (
    ArchiveParts,
    Resolution,
    StoredPart,
    copy_part_body,
    day_chunks,
    day_clusters,
    day_rows,
    iter_day_records,
)
from archiver.reader.day_bytes import fits_day_chunks
from archiver.reader.prefetch import AheadDay, days_ahead
from archiver.records import COLUMNS, Record
from archiver.store import Store

__all__ = ["OutputFormat", "month_range", "parse_month", "run_retrieve", "safe_for_spreadsheets"]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
# Characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse_month(text: str, *, option: str = "--month") -> tuple[int, int]:
    """Read ``YYYY-MM``; raise ``ConfigError`` (exit status 2) otherwise."""
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise ConfigError(f"{option}: expected a month as YYYY-MM (e.g. 2024-03), got {text!r}")
    return int(match[1]), int(match[2])


def month_range(first: tuple[int, int], last: tuple[int, int]) -> list[tuple[int, int]]:
    if last < first:
        raise ConfigError("--until-month must not be before --month")
    months = []
    year, month = first
    while (year, month) <= last:
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def safe_for_spreadsheets(value: str) -> str:
    """Prefix a value that a spreadsheet would run as a formula with a quote, so it shows as text."""
    return "'" + value if value.startswith(_FORMULA_START) else value


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """How the retrieved CSV is written."""

    delimiter: str = ";"
    gzip: bool = False
    excel: bool = False  # UTF-8 BOM, so Excel reads accents right on a double click
    neutralize_formulas: bool = False
    filters: Mapping[str, str] = field(default_factory=dict)


def _matches(record: Record, filters: Mapping[str, str]) -> bool:
    return all(record.get(column) == wanted for column, wanted in filters.items())


def run_retrieve(
    store: Store,
    service: str,
    direction: Direction,
    months: list[tuple[int, int]],
    output: BinaryIO,
    fmt: OutputFormat,
) -> int:
    """Write the months' records as one CSV to ``output``; return the number of data rows.

    Three things at once (``days_ahead``, ``WriteBehind``): the next days' parts are read, the current
    day is sorted, the previous one is written. Memory holds a few days, whatever the months' size.
    """
    columns = COLUMNS[direction]
    unknown = [column for column in fmt.filters if column not in columns]
    if unknown:
        raise ConfigError(f"{direction} records have no {', '.join(unknown)} column to filter on")
    raw: BinaryIO = gzip.GzipFile(fileobj=output, mode="wb", mtime=0) if fmt.gzip else output  # type: ignore[assignment]
    with WriteBehind(raw) as out:
        count = _MonthsWriter(store, service, direction, out, fmt).write(months)
    if fmt.gzip:
        raw.close()  # writes the gzip trailer; the caller's stream stays open
    output.flush()
    return count


# Parts read ahead (stored bytes; the next day's at least): many small days read in parallel hide
# the store's latency; a large day needs no more than itself ahead, and each MB here is held in memory.
READ_AHEAD_BYTES = 8 * 1024 * 1024
# The rows the CSV writer encodes are handed to the output every so many (memory: one such batch).
_ROWS_PER_HANDOVER = 4096


class _MonthsWriter:
    """Writes the days of the months read, in order, as pieces for ``WriteBehind``."""

    def __init__(self, store: Store, service: str, direction: Direction, out: WriteBehind, fmt: OutputFormat) -> None:
        self.store, self.direction, self.out, self.fmt = store, direction, out, fmt
        self.index = ArchiveParts(store, service, direction)
        # Rows that need no change (no filter, no formula rewrite) may be copied as stored bytes.
        self.verbatim = not fmt.filters and not fmt.neutralize_formulas
        # What the CSV writer encodes is buffered here, and handed over in order with the copied bytes.
        self.encoded = io.BytesIO()
        self.text = io.TextIOWrapper(
            self.encoded, encoding="utf-8-sig" if fmt.excel else "utf-8", newline="", write_through=False
        )
        self.writer = csv.writer(
            self.text, delimiter=fmt.delimiter, quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n"
        )
        self.count = 0

    def write(self, months: list[tuple[int, int]]) -> int:
        """Write the header and every row of ``months``; return the number of rows."""
        self.writer.writerow(COLUMNS[self.direction])
        self._hand_over()
        # Groups of overlapping parts inside one day are resolved as that day is read (read once, not twice).
        resolution = self.index.resolution(months, defer_days=True)
        days = (day for year, month in months for day in self.index.days(year, month))
        wanted = fits_day_chunks if self.verbatim else _never
        threads = self.store.parallel_reads
        with closing(
            days_ahead(self.store, days, wanted=wanted, ahead_bytes=READ_AHEAD_BYTES, threads=threads)
        ) as read_ahead:
            for ahead in read_ahead:
                self._write_day(ahead, resolution)
        return self.count

    def _write_day(self, ahead: AheadDay, resolution: Resolution) -> None:
        store, direction, delimiter = self.store, self.direction, self.fmt.delimiter
        # The day as stored bytes, sorted without a per-row step, when its rows can be relied on.
        if self.verbatim and (
            found := day_chunks(store, ahead.parts, direction, resolution, delimiter=delimiter, read=ahead.read)
        ):
            chunks, rows_found = found
            self.out.write_all(chunks)
            self.count += rows_found
            return
        resolution.settle(store, ahead.parts, direction)  # before ``whole`` speaks of these parts
        for parts in day_clusters(ahead.parts):
            # A part that holds only newest versions, alone in its span, is copied as it is.
            rows = parts[0].rows if len(parts) == 1 and resolution.whole(parts[0]) else None
            if self.verbatim and rows is not None and copy_part_body(store, parts[0], self.out, delimiter=delimiter):
                self.count += rows
                continue
            # Overlapping parts: sorted as stored bytes when they fit in memory, else merged as records.
            if self.verbatim and (merged := day_rows(store, parts, direction, resolution, delimiter=delimiter)):
                self.out.write(b"".join(merged))
                self.count += len(merged)
                continue
            for record in iter_day_records(store, parts, direction, resolution):
                if self.fmt.filters and not _matches(record, self.fmt.filters):
                    continue
                fields = record.fields
                self.writer.writerow(map(safe_for_spreadsheets, fields) if self.fmt.neutralize_formulas else fields)
                self.count += 1
                if self.count % _ROWS_PER_HANDOVER == 0:
                    self._hand_over()
            self._hand_over()

    def _hand_over(self) -> None:
        """What the CSV writer encoded goes out, after everything given before it."""
        self.text.flush()
        if self.encoded.tell():
            self.out.write(self.encoded.getvalue())
            self.encoded.seek(0)
            self.encoded.truncate()


def _never(_parts: list[StoredPart]) -> bool:
    return False
