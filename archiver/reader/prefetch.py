"""The parts of the days ahead, read in background threads while the current day is worked on.

``retrieve`` reads a month day by day, and a day can be sorted only once all its parts are read: a
GET each on S3, then a gunzip. Reading the next days' parts meanwhile hides the store's latency and
the decompression (both let other threads run) behind the work on the current day, instead of
adding them to it. Memory holds at most ``ahead_bytes`` of stored bytes read ahead (at least the
next day), besides the day being worked on.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from archiver.memory import share_one_arena
from archiver.reader.day_bytes import part_bytes
from archiver.reader.parts import StoredPart
from archiver.store import Store

__all__ = ["AheadDay", "days_ahead"]


@dataclass(slots=True)
class AheadDay:
    """One day's parts, and how to get their bytes: read ahead when they were, else read now."""

    day: dt.date
    parts: list[StoredPart]
    store: Store
    reads: dict[str, Future[bytes]]  # part key -> its bytes being read (empty: nothing read ahead)

    def read(self, stored: StoredPart) -> bytes:
        """A part's bytes, decompressed (``part_bytes``): ``KeyError`` if deleted since the listing."""
        future = self.reads.pop(stored.info.key, None)  # popped: the day's reader keeps what it needs
        return future.result() if future is not None else part_bytes(self.store, stored)


def days_ahead(
    store: Store,
    days: Iterable[tuple[dt.date, list[StoredPart]]],
    *,
    wanted: Callable[[list[StoredPart]], bool],
    ahead_bytes: int,
    threads: int,
) -> Generator[AheadDay, None, None]:
    """``days`` in order, each with its parts being read ahead if ``wanted`` (a day a reader of whole
    days will take); up to ``ahead_bytes`` of stored bytes ahead, and always the next wanted day.
    With ``threads`` 1 or less (``Store.parallel_reads``), nothing is read ahead: each part is read
    when asked for.

    Stopping early (an error, a closed generator) cancels what was not started and waits for the
    reads under way: no thread outlives the iteration.
    """
    if threads <= 1:
        yield from (AheadDay(day, parts, store, {}) for day, parts in days)
        return
    share_one_arena()  # parts read by these threads, freed by the caller's: see archiver/memory.py
    source = iter(days)
    queue: deque[AheadDay] = deque()
    pending = 0  # stored bytes of the days queued
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="read-ahead")
    try:
        exhausted = False
        while True:
            while not exhausted and (not queue or pending < ahead_bytes):
                following = next(source, None)
                if following is None:
                    exhausted = True
                    break
                day, parts = following
                reads = (
                    {stored.info.key: pool.submit(part_bytes, store, stored) for stored in parts}
                    if wanted(parts)
                    else {}
                )
                queue.append(AheadDay(day, parts, store, reads))
                pending += sum(stored.info.size for stored in parts) if reads else 0
            if not queue:
                return
            current = queue.popleft()
            pending -= sum(stored.info.size for stored in current.parts) if current.reads else 0
            yield current
            current.reads.clear()  # bytes the reader did not take are freed now, not at the end
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
