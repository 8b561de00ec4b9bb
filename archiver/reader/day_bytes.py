"""A day of the archive as its stored bytes: what ``retrieve`` writes, with no CSV parse and no record.

The same rule and order as the record readers (``newest.py``: one row per id, its newest version, by
(creation instant, id)), on the rows' bytes: parts are written in one CSV dialect, so a stored row is
the bytes ``retrieve`` would write for it. Each reader here answers None, having written nothing, when
its shortcut cannot be relied on, and the caller falls back to the record readers.

- ``day_chunks``: a whole day in pieces, nothing per row in Python (the fast path);
- ``day_rows``: the rows of overlapping parts sorted as bytes (a day too odd for ``day_chunks``);
- ``part_bytes``: a part's bytes, decompressed;
- ``Lines``, ``write_piece``: rows given unjoined (their join left to the thread that writes them), and
  how any piece ``day_chunks`` gives is written.
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from archiver.errors import IntegrityError
from archiver.naming import Direction
from archiver.reader.newest import Resolution
from archiver.reader.parts import StoredPart, day_clusters
from archiver.reader.rows import RowShape, row_shape, shaped_ids, split_rows, stored_rows
from archiver.records import COLUMNS
from archiver.store import Store

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "CHUNK_DAY_BELOW",
    "SORT_DAY_BELOW",
    "Lines",
    "Piece",
    "day_chunks",
    "day_rows",
    "fits_day_chunks",
    "part_bytes",
    "write_piece",
]


# A day whose parts hold less than this is sorted in memory (``day_rows``); a larger one is merged
# part by part (``iter_day_sources``), which holds one row per part whatever the day's size.
SORT_DAY_BELOW = 32 * 1024 * 1024


def day_rows(
    store: Store, parts: list[StoredPart], direction: Direction, resolution: Resolution, *, delimiter: str
) -> list[bytes] | None:
    """What ``iter_day_records`` gives, as the rows' stored bytes (each with its line end), parsed no further.

    The same rule and order: one row per id, its newest version, by (creation instant, id). Parts are
    written in one CSV dialect, so a stored row is the bytes ``retrieve`` would write for it. None,
    having read nothing or little, when that cannot be relied on: a day too large to hold, a part
    written with another delimiter, or rows that do not count up to what the manifest recorded.
    """
    if sum(stored.info.size for stored in parts) >= SORT_DAY_BELOW:
        return None
    resolution.settle(store, parts, direction)
    ranked = sorted(parts, key=lambda stored: stored.version, reverse=True)  # rank 0: the newest part
    keyed: list[tuple[dt.datetime, int, int, bytes]] = []
    for rank, stored in enumerate(ranked):
        rows = stored_rows(part_bytes(store, stored), COLUMNS[direction], delimiter, stored.rows)
        if rows is None:
            return None
        keyed += [(created, sms_id, rank, row) for created, sms_id, row in rows]
    # Timsort merges the parts' sorted runs; (instant, id, rank) is unique, so rows are never compared.
    keyed.sort()
    # ``Resolution.keeps`` inlined: this loop runs once per row of the day.
    winners = resolution.winners
    keys = [stored.info.key for stored in ranked]
    kept: list[bytes] = []
    last_id: int | None = None
    for _created, sms_id, rank, row in keyed:
        if sms_id == last_id:
            continue  # an older version of the row just kept
        winner = winners.get(sms_id)
        if winner is not None and winner != keys[rank]:
            continue  # a newer version of this id is stored elsewhere, maybe in another day or month
        last_id = sms_id
        kept.append(row)
    return kept


# A day read by ``day_chunks`` is held up to about three times (bytes, rows, a cluster joined): a larger
# one goes to ``day_rows`` and the record merge, which hold less per byte.
CHUNK_DAY_BELOW = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Lines:
    """Rows without their line ends, each to be written followed by ``\\r\\n``.

    Left unjoined for the thread that writes them: ``bytes.join`` of a MB or more lets other threads
    run, so there the join overlaps the work on the next day instead of adding to it.
    """

    rows: list[bytes]


Piece: TypeAlias = bytes | memoryview | Lines  # what ``day_chunks`` gives: bytes as they are, or rows


def write_piece(output: SupportsWrite[bytes | memoryview], piece: Piece) -> None:
    if isinstance(piece, Lines):
        output.write(b"\r\n".join(piece.rows))
        output.write(b"\r\n")
    else:
        output.write(piece)


def fits_day_chunks(parts: list[StoredPart]) -> bool:
    """Whether ``day_chunks`` may take this day: small enough to hold, and every part's rows counted
    (nothing could be checked without the counts)."""
    return bool(parts) and sum(s.info.size for s in parts) < CHUNK_DAY_BELOW and all(s.rows is not None for s in parts)


def day_chunks(
    store: Store,
    parts: list[StoredPart],
    direction: Direction,
    resolution: Resolution,
    *,
    delimiter: str,
    read: Callable[[StoredPart], bytes] | None = None,
) -> tuple[list[Piece], int] | None:
    """A whole day as ``retrieve`` writes it (one row per id, newest version, by (instant, id)): its
    bytes in pieces, and its rows. Nothing per row runs in Python; None, having written nothing, when
    that cannot be relied on (the caller then reads the day cluster by cluster).

    Each part is read once. A part alone in its span (``day_clusters``) that holds only newest
    versions is given as stored. The others are split at their line ends (``rows.split_rows``:
    refused when a message holds one) and their ids read by one pattern that fixes the width of ids
    and instants (``rows.RowShape``: refused otherwise); those ids settle the deferred groups of the
    day (``Resolution.settle``), rows of older versions are dropped, and the rows of parts whose spans
    overlap are sorted by their ``(instant, id)`` bytes.

    ``read``: a part's bytes, decompressed (default ``part_bytes``; ``prefetch.DaysAhead`` gives them
    read ahead). It raises ``KeyError`` for a part deleted since the listing.
    """
    if not fits_day_chunks(parts):
        return None
    header = delimiter.join(COLUMNS[direction]).encode()
    data: dict[str, bytes] = {}
    for stored in parts:
        try:
            data[stored.info.key] = read(stored) if read is not None else part_bytes(store, stored)
        except KeyError:
            return None  # deleted since the listing (compaction): the record readers know what to do
        if not data[stored.info.key].startswith(header + b"\r\n"):
            return None  # another delimiter or header: re-encoded by the record readers
    clusters = day_clusters(parts)
    merged = {stored.info.key for cluster in clusters if len(cluster) > 1 for stored in cluster}
    rows: dict[str, list[bytes]] = {}
    digits: dict[str, list[bytes]] = {}  # each part's ids as their digits: ``int`` only when needed
    shape: RowShape | None = None
    for stored in parts:
        key = stored.info.key
        if key not in merged and key not in resolution.deferred and key not in resolution.losing:
            continue  # copied as stored: its rows need not be found
        found = split_rows(data[key], header, stored.rows)
        if found is None:
            return None
        if shape is None and found:
            shape = row_shape(found[0], delimiter.encode())
        part_ids = shaped_ids(data[key], shape, len(found)) if shape is not None else [] if not found else None
        if part_ids is None:
            return None  # another shape of row: the record readers decide
        rows[key], digits[key] = found, part_ids
        if key in merged:
            del data[key]  # its rows are copies: memory holds the day about twice, not three times
    # Ids have one width, so equal digits are equal ids. The usual day holds no id twice: one set says so.
    if len(set().union(*digits.values())) == sum(map(len, digits.values())):
        resolution.settle(store, parts, direction, distinct=digits.keys())
    elif any(len(set(part_ids)) != len(part_ids) for part_ids in digits.values()):
        return None  # an id twice in one part: the record readers decide
    else:
        ids = {key: list(map(int, part_ids)) for key, part_ids in digits.items()}
        resolution.settle(store, parts, direction, ids)
    chunks: list[Piece] = []
    count = 0
    start = len(header) + 2
    for cluster in clusters:
        if len(cluster) == 1 and resolution.whole(cluster[0]):
            chunks.append(memoryview(data[cluster[0].info.key])[start:])
            count += cluster[0].rows or 0
            continue
        kept: list[bytes] = []
        for stored in cluster:
            key = stored.info.key
            if key in resolution.losing:
                winners = resolution.winners
                kept += itertools.compress(
                    rows.pop(key), [winners.get(int(sms_id), key) == key for sms_id in digits[key]]
                )
            else:
                kept += rows.pop(key)
        if len(cluster) > 1 and shape is not None:
            shape.sort(kept)  # each id is left once: the order is (instant, id) and nothing else
        if kept:
            chunks.append(Lines(kept))
            count += len(kept)
    return chunks, count


def part_bytes(store: Store, stored: StoredPart) -> bytes:
    """A part's bytes, decompressed; ``IntegrityError`` if they do not decompress, ``KeyError`` if gone."""
    data = store.get(stored.info.key)
    if stored.part.compressed:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise IntegrityError(f"{stored.info.key}: unreadable ({error})") from None
    return data
