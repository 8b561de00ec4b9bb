"""The emulator's data, in memory: per service and direction the records with a date index, and export documents.

All of it sits behind one lock in ``MemoryStore``; stored records are never mutated in place (updates
replace the dict), so a reference taken under the lock can be serialised after releasing it.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from archiver.emulator.data import PARIS, ServiceData

DIRECTIONS: Final = ("outgoing", "incoming")


def parse_instant(text: str) -> float:
    """Parse an ISO 8601 datetime or a plain date into epoch seconds (ValueError if invalid).

    ASSUMPTION: a value without offset (including a plain date, read as midnight) is Paris local time.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PARIS)
    return moment.timestamp()


def _record_epoch(record: Mapping[str, Any]) -> float:
    created = record.get("creationDatetime")
    if not isinstance(created, str):
        raise ValueError("a record needs a creationDatetime string")
    return parse_instant(created)


def _record_id(record: Mapping[str, Any]) -> int:
    sms_id = record.get("id")
    if not isinstance(sms_id, int) or isinstance(sms_id, bool):
        raise ValueError("a record needs an integer id")
    return sms_id


class Collection:
    """The records of one service and direction, with an index sorted by creation instant.

    The index is sorted lazily: inserts append, and the next range query re-sorts (timsort is
    linear on the mostly-sorted lists this produces), so bulk loads stay fast.
    """

    def __init__(self) -> None:
        self.records: dict[int, dict[str, Any]] = {}
        self.epochs: dict[int, float] = {}
        # What GET by id and batches serve instead of the record (``EmulatorServer.corrupt_record``).
        self.corrupt: dict[int, object] = {}
        self._index: list[tuple[float, int]] = []
        self._sorted = True

    def put(self, record: Mapping[str, Any]) -> None:
        """Insert or replace a record (by its id); ValueError if it has no integer id or creation date."""
        sms_id = _record_id(record)
        epoch = _record_epoch(record)
        if sms_id in self.records:
            self._unindex(sms_id)
        self.records[sms_id] = dict(record)
        self.epochs[sms_id] = epoch
        entry = (epoch, sms_id)
        if self._index and entry < self._index[-1]:
            self._sorted = False
        self._index.append(entry)

    def remove(self, sms_id: int) -> dict[str, Any]:
        """Remove a record and return it; KeyError if absent."""
        self._unindex(sms_id)
        del self.epochs[sms_id]
        self.corrupt.pop(sms_id, None)
        return self.records.pop(sms_id)

    def ids_between(self, low: float | None, high: float | None) -> list[int]:
        """Ids created in [low, high] (both inclusive; None = unbounded), oldest first."""
        self._ensure_sorted()
        start = 0 if low is None else bisect.bisect_left(self._index, (low,))
        stop = len(self._index) if high is None else bisect.bisect_right(self._index, (high, math.inf))
        return [sms_id for _, sms_id in self._index[start:stop]]

    def _ensure_sorted(self) -> None:
        if not self._sorted:
            self._index.sort()
            self._sorted = True

    def _unindex(self, sms_id: int) -> None:
        self._ensure_sorted()
        entry = (self.epochs[sms_id], sms_id)
        position = bisect.bisect_left(self._index, entry)
        del self._index[position]


@dataclass(slots=True)
class Document:
    """A CSV export made by ``GET /sms/{sn}/document``, polled through ``/me/document/{id}``."""

    id: str
    name: str
    content: bytes
    created: datetime
    created_monotonic: float
    polls: int = 0


class MemoryStore:
    """All mutable emulator data, behind one lock (``lock``), which callers hold while they read or write."""

    def __init__(self, services: Mapping[str, ServiceData]) -> None:
        self.lock = threading.Lock()
        self.services: dict[str, dict[str, Collection]] = {}
        self.documents: dict[str, Document] = {}
        self.deleted: list[tuple[str, str, int]] = []
        for name, data in services.items():
            self.ensure_service(name)
            for record in data.outgoing.values():
                self.services[name]["outgoing"].put(record)
            for record in data.incoming.values():
                self.services[name]["incoming"].put(record)

    def ensure_service(self, name: str) -> dict[str, Collection]:
        """The collections of a service, created empty if it does not exist yet."""
        if name not in self.services:
            self.services[name] = {direction: Collection() for direction in DIRECTIONS}
        return self.services[name]
