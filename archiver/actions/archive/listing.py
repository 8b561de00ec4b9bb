"""What the listing proof knows of each listed id: its creation second, kept compact.

The proof that a listing is whole (``direction.py``, ``prove_whole``) needs the creation time of the
ids at the edges of a window; a cycle over a long history may list millions of ids, so they are kept
as sorted arrays rather than a dict of objects (docs/ovh-api.md, "Listings").
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable

import structlog

__all__ = ["CreationTimes"]

log = structlog.get_logger()


class CreationTimes:
    """The creation instants of the records of listings being proven whole, as they are fetched.

    Compact on purpose (a first run lists every id of the history): each listing's ids sorted, with
    an array of instants beside them (unix seconds; NaN until fetched).
    """

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self.groups: list[tuple[list[int], array[float]]] = []
        self.track(ids)

    def track(self, ids: Iterable[int]) -> None:
        ordered = sorted(set(ids))
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
