"""A part's rows found in its bytes without a CSV parse, for the readers that need no more than that.

Parts are written in one dialect (``csvfile.py``): ``\\r\\n`` line ends, quotes only around a field
that needs them, the id first and the creation instant second, neither of them ever quoted. So
every row starts with ``\\r\\n{id}{delimiter}{instant}{delimiter}``, and that pattern is found at
the start of every row. It may also be found inside a quoted message (a message can hold anything),
but never in place of a row's start: the matches number the rows plus such look-alikes. Hence the
rule of this module: **the matches are the rows only when they number exactly the rows the manifest
recorded** at write time; otherwise the caller falls back to a real CSV parse.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

__all__ = ["scanned_ids", "stored_rows"]


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
