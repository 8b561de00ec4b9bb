"""Listed ids kept compact, and what the listing proof knows of each: its creation second.

A first cycle over a long history lists every id OVH holds: a million ids are 40 MB as a list of
Python ints and 32 MB more for each set made of them, but 8 MB as a sorted array of 8-byte integers.
So a cycle keeps its listing, and the ids it has to fetch, as sorted arrays (``IdArray``) and walks
them in order, rather than building sets. The proof that a listing is whole (``direction.py``,
``prove_whole``) needs the creation time of the ids at the edges of a window; they are kept beside
the sorted ids in an array too (docs/ovh-api.md, "Listings").
"""

from __future__ import annotations

import bisect
import heapq
import math
from array import array
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeAlias

import structlog

from archiver.errors import SourceError
from archiver.store.state import CursorState

__all__ = ["CreationTimes", "IdArray", "ids_to_fetch", "sorted_ids", "union_sorted"]

log = structlog.get_logger()

IdArray: TypeAlias = "array[int]"  # typecode "q": sorted, each id once


def _is_sorted_ids(ids: IdArray) -> bool:
    return ids.typecode == "q" and all(low < high for low, high in zip(ids, islice(ids, 1, None), strict=False))


def _unique(ordered: Iterable[int]) -> Iterator[int]:
    previous: int | None = None
    for sms_id in ordered:
        if sms_id != previous:
            yield sms_id
            previous = sms_id


def sorted_ids(ids: Iterable[int]) -> IdArray:
    """``ids`` sorted, each once, as an array of 8-byte integers (an array that already is one is kept).

    An id beyond 64 bits is no OVH id: ``SourceError``, before anything is fetched or written.
    """
    if isinstance(ids, array) and _is_sorted_ids(ids):
        return ids
    try:
        return array("q", _unique(sorted(ids)))
    except OverflowError:
        raise SourceError("the API listed an SMS id beyond 64 bits: not an OVH id") from None


def union_sorted(*ordered: Iterable[int]) -> IdArray:
    """The ids of one or several ascending sequences, each once, ascending, as an array (no list on the way)."""
    return array("q", _unique(heapq.merge(*ordered)))


class CreationTimes:
    """The creation instants of the records of listings being proven whole, as they are fetched.

    Compact on purpose (a first run lists every id of the history): each listing's ids sorted, with
    an array of instants beside them (unix seconds; NaN until fetched).
    """

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self.groups: list[tuple[IdArray, array[float]]] = []
        self.track(ids)

    def track(self, ids: Iterable[int]) -> None:
        """Track these ids too (a sorted ``IdArray`` is shared, not copied)."""
        ordered = sorted_ids(ids)
        self.groups.append((ordered, array("d", [math.nan]) * len(ordered)))

    def _find(self, sms_id: int) -> tuple[array[float], int] | None:
        for ordered, instants in self.groups:
            index = bisect.bisect_left(ordered, sms_id)
            if index < len(ordered) and ordered[index] == sms_id:
                return instants, index
        return None

    def __contains__(self, sms_id: object) -> bool:
        return isinstance(sms_id, int) and self._find(sms_id) is not None

    def note(self, sms_id: int, created: float) -> None:
        found = self._find(sms_id)
        if found is not None:
            found[0][found[1]] = created

    def get(self, sms_id: int) -> float | None:
        found = self._find(sms_id)
        if found is None or math.isnan(found[0][found[1]]):
            return None
        return found[0][found[1]]


def ids_to_fetch(listed: IdArray, state: CursorState, lookback_floor: float) -> tuple[IdArray, int]:
    """The ids a cycle fetches, ascending, and how many of them are re-checks.

    New ids (listed, unknown to the cursor), ids that failed to parse before, and known ids whose
    status is not final yet (re-checks, within the lookback); less what an interrupted cycle already
    made durable. One sorted array, built by walking the listing in order: a first cycle lists every
    id of the history, and a set of a million ids would cost 32 MB or more (see the module's docstring).
    """
    known = state.known
    if not known and not state.retry and not state.partial_done:
        # A first cycle fetches its whole listing: the listing itself, not a copy (8 MB a million ids).
        return listed, 0
    recheck = {sms_id for sms_id, seen in known.items() if not seen.final and seen.created >= lookback_floor}
    todo = union_sorted((sms_id for sms_id in listed if sms_id not in known), sorted(state.retry | recheck))
    if state.partial_done:
        # An interrupted cycle resumed: what it made durable is not fetched again.
        done = state.partial_done.covered(todo)
        todo = union_sorted(sms_id for sms_id in todo if sms_id not in done)
        recheck -= done
    return todo, len(recheck)
