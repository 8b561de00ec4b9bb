"""``/export.csv``: the current filters as one CSV, the bytes ``sms-archiver retrieve`` writes.

When the filters are ones ``retrieve`` knows (one service and direction, whole months, exact
sender, receiver or tag), the download IS ``retrieve``'s output. Other filters (a day range inside
a month, a status, words) select rows from the index, which holds the reader's own rows, and write
them in the same dialect (columns, delimiter, RFC 4180 minimal quoting, CRLF, optional BOM), sorted
the same way: by date, then id.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import tempfile
import zoneinfo
from dataclasses import replace
from typing import IO

from archiver.actions.retrieve import OutputFormat, run_retrieve
from archiver.naming import Direction
from archiver.reader import ArchiveParts
from archiver.records import COLUMNS
from archiver.store import Store
from archiver.web.query import BadParameter, Filters, where_clause

__all__ = ["export_csv", "export_name"]

_SPOOL_BYTES = 8 * 1024 * 1024  # kept in memory up to this, then in a temporary file


def _whole_months(filters: Filters) -> bool:
    return all(day is None or day.day == 1 for day in (filters.since, filters.until))


def _months(filters: Filters, archived: list[tuple[int, int]]) -> list[tuple[int, int]]:
    first = (filters.since.year, filters.since.month) if filters.since else None
    end = (filters.until.year, filters.until.month) if filters.until else None
    return [month for month in archived if (first is None or month >= first) and (end is None or month < end)]


def export_name(service: str, direction: Direction, filters: Filters) -> str:
    span = "-".join(day.isoformat() for day in (filters.since, filters.until) if day) or "all"
    return f"{service}-{direction}-{span}.csv"


def export_csv(
    store: Store,
    db: sqlite3.Connection,
    service: str,
    direction: Direction,
    filters: Filters,
    *,
    zone: zoneinfo.ZoneInfo,
    delimiter: str,
    excel: bool,
) -> tuple[IO[bytes], int]:
    """The CSV (rewound, to be streamed) and its number of data rows."""
    if filters.receiver is not None and direction == "incoming":
        raise BadParameter("receiver", "received SMS have no receiver column (use direction=outgoing)")
    output = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - returned to be streamed
    exact = {name: getattr(filters, name) for name in ("sender", "receiver", "tag") if getattr(filters, name)}
    if filters.ptt is None and not filters.q and _whole_months(filters):
        months = _months(filters, ArchiveParts(store, service, direction).months())
        fmt = OutputFormat(delimiter=delimiter, excel=excel, filters=exact)
        count = run_retrieve(store, service, direction, months, output, fmt)  # type: ignore[arg-type]
    else:
        count = _write_indexed(db, output, service, direction, filters, zone, delimiter=delimiter, excel=excel)
    output.seek(0)
    return output, count


def _write_indexed(
    db: sqlite3.Connection,
    output: IO[bytes],
    service: str,
    direction: Direction,
    filters: Filters,
    zone: zoneinfo.ZoneInfo,
    *,
    delimiter: str,
    excel: bool,
) -> int:
    text = io.TextIOWrapper(output, encoding="utf-8-sig" if excel else "utf-8", newline="", write_through=False)
    writer = csv.writer(text, delimiter=delimiter, quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(COLUMNS[direction])
    clauses, args = where_clause(replace(filters, service=service, direction=direction, after=None), zone)
    cursor = db.execute(f"SELECT fields FROM sms WHERE {' AND '.join(clauses)} ORDER BY ts, id", args)  # noqa: S608 - clauses are ours, values bound
    count = 0
    while rows := cursor.fetchmany(2000):
        for (fields,) in rows:
            writer.writerow(json.loads(fields))
            count += 1
    text.flush()
    text.detach()
    return count
