"""Retrieved records as an Excel workbook (``retrieve --format xlsx``), for people who open them in a spreadsheet.

A CSV opened in Excel or LibreOffice loses what matters: ``+33612345678`` becomes the number
33612345678, a message starting with ``=`` runs as a formula (``Err:509``), dates stay text. A
workbook says what each cell is, so nothing is guessed:

- phone numbers, ids, tags and messages are text cells (``write_string``: never a formula, a number
  or a link, whatever they start with), in columns formatted as text;
- dates are real date-times in the archive's time zone, named in the header (``date (Europe/Paris)``):
  spreadsheets have no time zones, so the cell holds the local wall-clock time;
- counts and credits are numbers;
- the header row is frozen and has filters; columns have sensible widths.

XlsxWriter's constant-memory mode writes each row to a temporary file as it comes, so memory stays
flat whatever the number of rows. A sheet holds at most 1,048,576 rows (the header included): a
longer retrieval continues on further sheets, each with its header.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import tempfile
import zoneinfo
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final

import xlsxwriter

from archiver.naming import Direction
from archiver.records import COLUMNS, Record, parse_instant

__all__ = ["DATE_COLUMNS", "MAX_ROWS_PER_SHEET", "NUMBER_COLUMNS", "naive_local", "write_workbook"]

# Excel's limit (and LibreOffice's since 7.4): 2**20 rows a sheet, the header included.
MAX_ROWS_PER_SHEET: Final = 1_048_576
DATE_COLUMNS: Final = frozenset({"date", "sentAt", "deliveredAt"})
NUMBER_COLUMNS: Final = frozenset(
    {"ptt", "credits", "messageLength", "numberOfSms", "deliveryReceipt", "differedDelivery"}
)
# Characters wide; anything not listed gets the default.
_WIDTHS: Final[Mapping[str, float]] = {
    "id": 14,
    "date": 20,
    "sentAt": 20,
    "deliveredAt": 20,
    "sender": 16,
    "receiver": 16,
    "ptt": 5,
    "descriptionDlr": 24,
    "tag": 14,
    "message": 60,
    "batchID": 38,
    "messageID": 14,
}
_DEFAULT_WIDTH: Final = 12
_DATE_FORMAT: Final = "yyyy-mm-dd hh:mm:ss"
_LINE_HEIGHT: Final = 15  # points, the default row height of one line


def _lines(text: str, width: float) -> int:
    """About how many lines ``text`` takes wrapped in a column ``width`` characters wide."""
    return sum(max(1, math.ceil(len(line) / (width - 2))) for line in text.splitlines() or [""])


def _header(column: str, zone: zoneinfo.ZoneInfo) -> str:
    return f"{column} ({zone.key})" if column in DATE_COLUMNS else column


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None  # no NaN, no infinity


class _Sheets:
    """Worksheets of one workbook, a new one (with its header) each time one is full."""

    def __init__(self, workbook: Any, direction: Direction, zone: zoneinfo.ZoneInfo) -> None:
        self.workbook, self.direction, self.zone = workbook, direction, zone
        self.columns = COLUMNS[direction]
        self.header_format = workbook.add_format({"bold": True})
        self.text_format = workbook.add_format({"num_format": "@"})
        self.date_format = workbook.add_format({"num_format": _DATE_FORMAT})
        # Messages wrap inside their column: a long or multi-line one makes its row taller, not the page wider.
        self.message_format = workbook.add_format({"num_format": "@", "text_wrap": True})
        self.sheet: Any = None
        self.row = 0
        self.count = 0

    def _new_sheet(self) -> None:
        self._close_sheet()
        self.count += 1
        name = self.direction if self.count == 1 else f"{self.direction} {self.count}"
        self.sheet = self.workbook.add_worksheet(name)
        for index, column in enumerate(self.columns):
            # Column formats apply to cells a user types later, too: a number typed there stays text.
            fmt = None if column in DATE_COLUMNS | NUMBER_COLUMNS else self._text_format(column)
            self.sheet.set_column(index, index, _WIDTHS.get(column, _DEFAULT_WIDTH), fmt)
        for index, column in enumerate(self.columns):
            self.sheet.write_string(0, index, _header(column, self.zone), self.header_format)
        self.sheet.freeze_panes(1, 0)
        self.row = 0

    def _close_sheet(self) -> None:
        if self.sheet is not None:
            # The filter spans the rows written; set last, when their number is known.
            self.sheet.autofilter(0, 0, max(self.row, 1), len(self.columns) - 1)

    def write(self, record: Record) -> None:
        if self.sheet is None or self.row + 1 >= MAX_ROWS_PER_SHEET:
            self._new_sheet()
        self.row += 1
        lines = _lines(record.get("message"), _WIDTHS["message"])
        if lines > 1:
            # Spreadsheets do not size rows on opening a file: a wrapped message would overlap the next row.
            self.sheet.set_row(self.row, _LINE_HEIGHT * lines)
        for index, (column, value) in enumerate(zip(self.columns, record.fields, strict=True)):
            self._cell(self.row, index, column, value)
        # Writing this row's first cell flushed the previous row to the temporary file; XlsxWriter still
        # keeps that row's height (set_row) in two dicts that would grow by one entry per tall row (about
        # 300 MB for a million): drop it. Where a later XlsxWriter keeps no such dicts, nothing to do.
        for kept in (getattr(self.sheet, "row_info", None), getattr(self.sheet, "row_sizes", None)):
            if isinstance(kept, dict):
                kept.pop(self.row - 1, None)

    def _cell(self, row: int, index: int, column: str, value: str) -> None:
        if value == "":
            return  # an empty cell, not an empty string: filters and formulas treat it as blank
        if column in DATE_COLUMNS:
            try:
                instant = parse_instant(value, self.zone)
            except ValueError:
                pass
            else:
                self.sheet.write_datetime(row, index, naive_local(instant, self.zone), self.date_format)
                return
        elif column in NUMBER_COLUMNS:
            number = _number(value)
            if number is not None:
                self.sheet.write_number(row, index, number)
                return
        self.sheet.write_string(row, index, value, self._text_format(column))

    def _text_format(self, column: str) -> Any:
        return self.message_format if column == "message" else self.text_format

    def close(self) -> None:
        if self.sheet is None:
            self._new_sheet()  # no record: a sheet with its header only
        self._close_sheet()


def write_workbook(
    records: Iterable[Record], direction: Direction, output: BinaryIO, *, zone: zoneinfo.ZoneInfo
) -> int:
    """Write ``records`` as an .xlsx workbook to ``output``; return the number of data rows.

    The workbook is assembled in a temporary directory (a zip needs its parts' sizes), then copied.
    """
    with tempfile.TemporaryDirectory(prefix="sms-archiver-xlsx-") as scratch:
        path = Path(scratch) / "retrieved.xlsx"
        workbook = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "tmpdir": scratch,
                # Never guess: a string is a string (no formula, number or link made of it).
                "strings_to_formulas": False,
                "strings_to_numbers": False,
                "strings_to_urls": False,
                "use_zip64": True,
            },
        )
        sheets = _Sheets(workbook, direction, zone)
        written = 0
        try:
            for record in records:
                sheets.write(record)
                written += 1
            sheets.close()
        finally:
            workbook.close()
        with path.open("rb") as built:
            shutil.copyfileobj(built, output, 1 << 20)
    output.flush()
    return written


def naive_local(instant: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The wall-clock time of ``instant`` in ``zone``, as a spreadsheet stores it (no zone)."""
    return instant.astimezone(zone).replace(tzinfo=None)
