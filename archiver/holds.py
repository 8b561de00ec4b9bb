"""Legal holds: SMS that no policy may destroy (retention at OVH, the archive purge, erasure) until lifted.

A hold is one object in the archive, ``_holds/{id}.json`` (``store.layout.hold_key``), created once
with a conditional write and rewritten once, when it is lifted (the lift is kept, not deleted, so the
hold's history stays readable). Its scope is a conjunction of optional criteria: service, direction,
sender, receiver, either number, tag, and a range of dates (in the archive's zone, both ends
included). A hold with no criterion at all holds everything.

Phone numbers are compared in one canonical form (``normalize_number``): ``+33 6 12 34 56 78``,
``0033612345678`` and ``+33612345678`` are the same number.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
import zoneinfo
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from archiver.errors import PreconditionFailed, StorageError
from archiver.naming import Direction
from archiver.records import COLUMNS, Record
from archiver.store import Store
from archiver.store.layout import HOLDS_PREFIX, hold_key

__all__ = ["ActiveHolds", "Hold", "HoldScope", "held_by", "lift_hold", "load_holds", "normalize_number", "place_hold"]

_SEPARATORS = re.compile(r"[\s().-]")


def normalize_number(text: str) -> str:
    """One form per phone number: separators dropped, a leading ``00`` read as ``+``.

    Raises ``ValueError`` for text that is not a phone number (digits, optionally after ``+``); an
    alphanumeric sender (``MyShop``) is kept as it is, compared without case.
    """
    compact = _SEPARATORS.sub("", text.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if re.fullmatch(r"\+?[0-9]{3,20}", compact):
        return compact
    if re.fullmatch(r"[A-Za-z0-9 ._-]{1,20}", text.strip()):  # an alphanumeric sender id
        return text.strip().casefold()
    raise ValueError(f"not a phone number or sender id: {text[:40]!r}")


def _same_number(wanted: str, value: str) -> bool:
    try:
        return normalize_number(value) == wanted
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class HoldScope:
    """Which SMS a hold covers: every criterion set must match (numbers given in canonical form)."""

    service: str | None = None
    direction: Direction | None = None
    sender: str | None = None
    receiver: str | None = None
    number: str | None = None  # sender or receiver
    tag: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def covers(self, service: str, direction: Direction, record: Record, zone: zoneinfo.ZoneInfo) -> bool:
        if self.service is not None and self.service != service:
            return False
        if self.direction is not None and self.direction != direction:
            return False
        if not self.could_cover_dates(record.created.astimezone(zone).date(), record.created.astimezone(zone).date()):
            return False
        if self.tag is not None and record.get("tag") != self.tag:
            return False
        sender = record.get("sender")
        # An incoming SMS has no receiver column: it was received by the service's own number.
        receiver = record.get("receiver") if "receiver" in COLUMNS[direction] else ""
        if self.sender is not None and not _same_number(self.sender, sender):
            return False
        if self.receiver is not None and not _same_number(self.receiver, receiver):
            return False
        return self.number is None or _same_number(self.number, sender) or _same_number(self.number, receiver)

    def could_cover(self, service: str, direction: Direction) -> bool:
        """Whether any SMS of ``service`` and ``direction`` may be held (the rest decides per record)."""
        return (self.service is None or self.service == service) and (
            self.direction is None or self.direction == direction
        )

    def could_cover_dates(self, first: dt.date, last: dt.date) -> bool:
        """Whether the hold's dates meet the days ``first`` to ``last`` (both included)."""
        return (self.date_from is None or last >= self.date_from) and (self.date_to is None or first <= self.date_to)

    def describe(self) -> str:
        parts = [f"{name}={value}" for name, value in self._criteria().items()]
        return ", ".join(parts) or "everything"

    def _criteria(self) -> dict[str, str]:
        return {name: str(value) for name, value in asdict(self).items() if value is not None}


@dataclass(frozen=True, slots=True)
class Hold:
    """One legal hold, active until lifted."""

    id: str
    scope: HoldScope
    reason: str
    placed_by: str
    placed_at: str  # ISO 8601, UTC
    lifted_by: str | None = None
    lifted_at: str | None = None
    lift_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields a newer version wrote: kept, not lost

    @property
    def active(self) -> bool:
        return self.lifted_at is None

    def as_dict(self) -> dict[str, Any]:
        data = {name: value for name, value in asdict(self).items() if name not in ("scope", "extra")}
        data["scope"] = self.scope._criteria()
        return {**self.extra, **data}


def held_by(
    holds: Iterable[Hold], service: str, direction: Direction, record: Record, zone: zoneinfo.ZoneInfo
) -> Hold | None:
    """The first active hold that covers ``record``, or None."""
    for hold in holds:
        if hold.active and hold.scope.covers(service, direction, record, zone):
            return hold
    return None


def place_hold(store: Store, scope: HoldScope, *, reason: str, actor: str, now: dt.datetime | None = None) -> Hold:
    """Create a hold (a fresh id, written only if absent); return it once durable."""
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    hold = Hold(
        id=f"hold-{at:%Y%m%d}-{uuid.uuid4().hex[:6]}",
        scope=scope,
        reason=reason,
        placed_by=actor,
        placed_at=at.isoformat(timespec="seconds"),
    )
    store.put_if_absent(hold_key(hold.id), _encode(hold))
    return hold


def lift_hold(store: Store, hold_id: str, *, reason: str, actor: str, now: dt.datetime | None = None) -> Hold:
    """Lift an active hold (``KeyError``: no such hold; ``ValueError``: lifted already). Conditional on its etag."""
    key = hold_key(hold_id)
    info = store.head(key)
    if info is None:
        raise KeyError(hold_id)
    hold = _decode(key, store.get(key))
    if not hold.active:
        raise ValueError(f"hold {hold_id} was lifted already, on {hold.lifted_at} by {hold.lifted_by}")
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    lifted = replace(hold, lifted_by=actor, lifted_at=at.isoformat(timespec="seconds"), lift_reason=reason)
    try:
        store.put_if_match(key, _encode(lifted), info.etag)
    except PreconditionFailed:
        raise ValueError(f"hold {hold_id} changed while lifting it: try again") from None
    return lifted


def load_holds(store: Store, *, include_lifted: bool = False) -> list[Hold]:
    """Every hold of the archive (active ones only, unless ``include_lifted``), oldest first.

    An unreadable hold raises ``StorageError``: a hold that cannot be read must stop whatever deletes.
    """
    holds = [_decode(info.key, store.get(info.key)) for info in store.list(HOLDS_PREFIX) if info.key.endswith(".json")]
    holds.sort(key=lambda hold: (hold.placed_at, hold.id))
    return [hold for hold in holds if include_lifted or hold.active]


def _encode(hold: Hold) -> bytes:
    return json.dumps(hold.as_dict(), sort_keys=True, ensure_ascii=False, indent=1).encode()


_HOLD_FIELDS = ("id", "reason", "placed_by", "placed_at", "lifted_by", "lifted_at", "lift_reason", "scope")


def _decode(key: str, data: bytes) -> Hold:
    try:
        raw = json.loads(data)
        scope = dict(raw["scope"])
        for name in ("date_from", "date_to"):
            if scope.get(name) is not None:
                scope[name] = dt.date.fromisoformat(scope[name])
        return Hold(
            id=str(raw["id"]),
            scope=HoldScope(**scope),
            reason=str(raw["reason"]),
            placed_by=str(raw["placed_by"]),
            placed_at=str(raw["placed_at"]),
            lifted_by=raw.get("lifted_by"),
            lifted_at=raw.get("lifted_at"),
            lift_reason=raw.get("lift_reason"),
            extra={name: value for name, value in raw.items() if name not in _HOLD_FIELDS},
        )
    except (ValueError, KeyError, TypeError) as error:
        raise StorageError(f"hold {key} is unreadable: {error}") from None


class ActiveHolds:
    """The active holds of a run that deletes: read at its start, listed again before each step that deletes.

    ``refresh`` reads the holds again only when their listing changed (a hold placed or lifted): a
    listing costs one request, and holds are rarely touched. An unreadable hold raises ``StorageError``.
    ``generation`` grows with each new reading, so that a caller can tell what it decided under.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._listing = self._list()  # listed before reading: a change in between is seen by the next refresh
        self.active: list[Hold] = load_holds(store)
        self.generation = 0

    def _list(self) -> tuple[tuple[str, str, int, dt.datetime], ...]:
        return tuple((info.key, info.etag, info.size, info.last_modified) for info in self.store.list(HOLDS_PREFIX))

    def refresh(self) -> bool:
        """Read the holds again if they changed since; return whether they did."""
        listing = self._list()
        if listing == self._listing:
            return False
        self.active = load_holds(self.store)
        self._listing = listing
        self.generation += 1
        return True

    def covering(self, service: str, direction: Direction, first: dt.date, last: dt.date) -> list[Hold]:
        """The active holds that could cover SMS of ``service`` and ``direction`` dated ``first`` to ``last``."""
        return [
            hold
            for hold in self.active
            if hold.scope.could_cover(service, direction) and hold.scope.could_cover_dates(first, last)
        ]
