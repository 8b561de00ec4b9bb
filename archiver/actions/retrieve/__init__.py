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
from dataclasses import dataclass, field
from typing import BinaryIO

from archiver.errors import ConfigError
from archiver.naming import Direction
from archiver.reader import ArchiveParts, copy_part_body, day_chunks, day_clusters, day_rows, iter_day_records
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
    """Write the months' records as one CSV to ``output``; return the number of data rows."""
    columns = COLUMNS[direction]
    unknown = [column for column in fmt.filters if column not in columns]
    if unknown:
        raise ConfigError(f"{direction} records have no {', '.join(unknown)} column to filter on")
    raw: BinaryIO = gzip.GzipFile(fileobj=output, mode="wb", mtime=0) if fmt.gzip else output  # type: ignore[assignment]
    text = io.TextIOWrapper(raw, encoding="utf-8-sig" if fmt.excel else "utf-8", newline="", write_through=False)
    writer = csv.writer(text, delimiter=fmt.delimiter, quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(columns)
    # Rows that need no change (no filter, no formula rewrite) may be copied as stored bytes.
    verbatim = not fmt.filters and not fmt.neutralize_formulas
    count = 0
    index = ArchiveParts(store, service, direction)
    # Groups of overlapping parts inside one day are resolved as that day is read (read once, not twice).
    resolution = index.resolution(months, defer_days=True)
    for year, month in months:
        for _day, day_parts in index.days(year, month):
            # The day as stored bytes, sorted without a per-row step, when its rows can be relied on.
            if verbatim and (found := day_chunks(store, day_parts, direction, resolution, delimiter=fmt.delimiter)):
                text.flush()
                chunks, rows_found = found
                for chunk in chunks:
                    raw.write(chunk)
                count += rows_found
                continue
            resolution.settle(store, day_parts, direction)  # before ``whole`` speaks of these parts
            for parts in day_clusters(day_parts):
                # A part that holds only newest versions, alone in its span, is copied as it is.
                rows = parts[0].rows if len(parts) == 1 and resolution.whole(parts[0]) else None
                if verbatim and rows is not None:
                    text.flush()  # what the writer buffered goes out before the copied bytes
                    if copy_part_body(store, parts[0], raw, delimiter=fmt.delimiter):
                        count += rows
                        continue
                # Overlapping parts: sorted as stored bytes when they fit in memory, else merged as records.
                if verbatim and (merged := day_rows(store, parts, direction, resolution, delimiter=fmt.delimiter)):
                    text.flush()
                    raw.write(b"".join(merged))
                    count += len(merged)
                    continue
                for record in iter_day_records(store, parts, direction, resolution):
                    if fmt.filters and not _matches(record, fmt.filters):
                        continue
                    fields = record.fields
                    writer.writerow(map(safe_for_spreadsheets, fields) if fmt.neutralize_formulas else fields)
                    count += 1
    text.flush()
    text.detach()
    if fmt.gzip:
        raw.close()  # writes the gzip trailer; the caller's stream stays open
    output.flush()
    return count
