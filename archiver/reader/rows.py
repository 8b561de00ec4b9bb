"""A part's rows found in its bytes without a CSV parse, for the readers that need no more than that.

Parts are written in one dialect (``csvfile.py``): ``\\r\\n`` line ends, quotes only around a field
that needs them, the id first and the creation instant second, neither of them ever quoted. So
every row starts with ``\\r\\n{id}{delimiter}{instant}{delimiter}``, and that pattern is found at
the start of every row. It may also be found inside a quoted message (a message can hold anything),
but never in place of a row's start: the matches number the rows plus such look-alikes. Hence the
rule of this module: **the matches are the rows only when they number exactly the rows the manifest
recorded** at write time; otherwise the caller falls back to a real CSV parse.

Retrieve's fast path (``split_rows``, ``RowShape``) adds two refusals on top of that rule: a part is cut
into rows at every ``\r\n`` only when the pieces number the rows recorded (no message holds one), and
its rows are ordered by their bytes only when every row's id has one width and every instant one
precision and one offset (one pattern matches each row's start, as many times as there are rows).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

__all__ = ["RowShape", "row_shape", "scanned_ids", "shaped_ids", "split_rows", "stored_rows"]


def scanned_ids(data: bytes, first_column: str, expected: int | None) -> list[int] | None:
    """The ids of a part's rows, in order; None if not ``expected`` in number (or no header)."""
    header = first_column.encode()
    if expected is None or not data.startswith(header) or len(data) <= len(header):
        return None
    delimiter = re.escape(data[len(header) : len(header) + 1])
    ids = re.findall(rb"\r\n([0-9]+)" + delimiter + rb'[^"\r\n' + delimiter + rb"]*" + delimiter, data)
    return [int(sms_id) for sms_id in ids] if len(ids) == expected else None


def stored_rows(
    data: bytes, columns: Sequence[str], delimiter: str, expected: int | None
) -> list[tuple[dt.datetime, int, bytes]] | None:
    """``(creation instant, id, the row's bytes with its line end)`` of every row, in order.

    None when the part's header is not ``columns`` joined by ``delimiter``, or when the rows found do
    not number ``expected`` (None: the manifest has no count, so nothing can be relied on).
    """
    header = delimiter.join(columns).encode() + b"\r\n"
    if expected is None or not data.startswith(header):
        return None
    sep = re.escape(delimiter.encode())
    starts = list(re.finditer(rb"\r\n([0-9]+)" + sep + rb'([^"\r\n' + sep + rb"]*)" + sep, data))
    if len(starts) != expected:
        return None
    instant = dt.datetime.fromisoformat
    ends = [match.start() + 2 for match in starts[1:]] + [len(data)]
    return [
        (instant(match[2].decode()), int(match[1]), data[match.start() + 2 : end])
        for match, end in zip(starts, ends, strict=True)
    ]


# An instant as ``format_instant`` writes it, up to its fraction and offset (fixed width).
_INSTANT = rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"


def split_rows(data: bytes, header: bytes, expected: int | None) -> list[bytes] | None:
    """The part's rows, each without its line end, split at every ``\\r\\n``; None unless exactly ``expected``.

    A row ends with ``\\r\\n``; a message may hold one too (quoted), and then the pieces outnumber
    the rows the manifest recorded: refused. ``header`` is the header line without its line end.
    """
    if expected is None:
        return None
    rows = data.split(b"\r\n")
    if len(rows) != expected + 2 or rows[0] != header or rows[-1]:
        return None
    del rows[0]
    rows.pop()
    return rows


@dataclass(frozen=True, slots=True)
class RowShape:
    """Rows whose id and creation instant have one fixed width: ``(instant, id)`` order is byte order.

    The instants share one offset and one precision (``format_instant`` writes seconds, or
    microseconds when there are some), and the ids one number of digits, so comparing the bytes of
    the instant, then of the id, orders rows as ``(creation instant, id)`` does, with no parse.
    """

    id_digits: int
    instant_width: int
    pattern: re.Pattern[bytes]  # the start of every row of this shape; group 1: the id

    def sort(self, rows: list[bytes]) -> None:
        """Sort rows of this shape by ``(instant, id)``, each id given once: by id (a row starts with
        its id, of fixed width, and ids differ), then stably by instant (a fixed slice of every row).

        Two C-level sorts: no key object per row but one slice, and no Python per row.
        """
        rows.sort()
        start = self.id_digits + 1
        rows.sort(key=itemgetter(slice(start, start + self.instant_width)))


def row_shape(first_row: bytes, delimiter: bytes) -> RowShape | None:
    """The shape of ``first_row`` (without its line end); None if its id or instant is not in the fixed form."""
    sep = re.escape(delimiter)
    match = re.match(rb"([0-9]+)" + sep + b"(" + _INSTANT + rb"(\.[0-9]{6})?([+-][0-9]{2}:[0-9]{2}))" + sep, first_row)
    if match is None:
        return None
    fraction = rb"\.[0-9]{6}" if match[3] else b""
    pattern = re.compile(
        rb"\r\n([0-9]{" + str(len(match[1])).encode() + b"})" + sep + _INSTANT + fraction + re.escape(match[4]) + sep
    )
    return RowShape(len(match[1]), len(match[2]), pattern)


def shaped_ids(data: bytes, shape: RowShape, expected: int) -> list[bytes] | None:
    """The ids of a part's rows, in order, as their digits (all of one width: ``int`` when needed); None
    unless every row starts in ``shape``.

    For a part whose rows ``split_rows`` found (no line end inside a row), a match can only sit at a
    row's start, and each row has one: the matches number the rows exactly when every row is of the shape.
    """
    ids: list[bytes] = shape.pattern.findall(data)
    return ids if len(ids) == expected else None
