"""The cursor kept in the archive itself, one per service and direction: where the next cycle starts.

The cursor lives next to the data (``_state/{service}/{direction}.json``) so that a new machine
resumes where the old one stopped. It is written only after the parts it covers are durable, and
only under the service's lease (``lease.py``), whose fencing token it carries.
"""

from __future__ import annotations

import bisect
import datetime as dt
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from archiver.errors import LeaseHeldError, StorageError
from archiver.naming import Direction
from archiver.store import Store
from archiver.store.layout import state_key
from archiver.store.lease import FENCE_METADATA, Lease, stored_fence

if TYPE_CHECKING:
    pass

__all__ = [
    "CursorState",
    "DoneRanges",
    "Known",
    "load_state",
    "reset_state",
    "save_state",
]

log = structlog.get_logger()
STATE_VERSION = 1


@dataclass(slots=True)
class Known:
    """What the cursor remembers of a recently archived record (inside the lookback window)."""

    created: float  # unix seconds
    final: bool
    digest: str  # of the archived row, to tell whether a re-check brought a new version


@dataclass(slots=True)
class DoneRanges:
    """The ids an interrupted cycle already made durable, in a few bytes whatever their number.

    Chunks are consecutive slices of the cycle's sorted ids, so they are kept as id ranges with the
    number of ids each holds (adjacent ranges merge): a checkpoint writes O(1) bytes for them, not
    every id so far. A resumed cycle trusts a range only while the ids it would fetch in that range
    number exactly what was done there; a range that now holds another id (one OVH showed late) is
    fetched again: a version written twice is harmless, a skipped SMS is not.
    """

    ranges: list[tuple[int, int, int]] = field(default_factory=list)  # (lowest id, highest id, ids done)

    def add(self, ids: Iterable[int]) -> None:
        chunk = sorted(set(ids))
        if not chunk:
            return
        low, high, count = chunk[0], chunk[-1], len(chunk)
        if self.ranges and self.ranges[-1][1] < low:
            last_low, _last_high, last_count = self.ranges[-1]
            self.ranges[-1] = (last_low, high, last_count + count)
        else:
            self.ranges.append((low, high, count))

    def covered(self, candidates: Iterable[int]) -> set[int]:
        """The candidates a resumed cycle need not fetch again: those of ranges whose count still holds."""
        ordered = sorted(set(candidates))
        done: set[int] = set()
        for low, high, count in self.ranges:
            inside = ordered[bisect.bisect_left(ordered, low) : bisect.bisect_right(ordered, high)]
            if len(inside) == count:
                done.update(inside)
        return done

    def __len__(self) -> int:
        return sum(count for _low, _high, count in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)


@dataclass(slots=True)
class CursorState:
    """Where a service and direction stand.

    ``cursor``: the end of the last completed window; the next cycle lists from
    ``cursor - lookback``. ``known``: records archived within the lookback window, so that a
    listing can be diffed without re-fetching. ``retry``: ids that failed to parse, fetched again
    every cycle until they do. ``partial``: progress of an interrupted cycle (its window end and
    the ids already durable), so that a resumed cycle neither re-fetches nor re-writes them.
    ``fence``: the fencing token of the lease it was last written under (0: none).
    """

    cursor: dt.datetime | None = None
    known: dict[int, Known] = field(default_factory=dict)
    retry: set[int] = field(default_factory=set)
    partial_until: dt.datetime | None = None
    partial_done: DoneRanges = field(default_factory=DoneRanges)
    last_cycle: dict[str, Any] = field(default_factory=dict)
    # The longest id listing OVH has answered for this service and direction: a listing shorter than
    # it cannot have been cut by a size cap (see archive.DirectionRun.may_be_cut).
    largest_listing: int = 0
    # The length at which OVH was seen cutting a listing (0: never seen): a burst of SMS in one
    # second as long as this may hide more (see archive.DirectionRun.prove_whole).
    listing_cap_seen: int = 0
    fence: int = 0

    def to_json(self) -> bytes:
        """The state as compact JSON with sorted keys: ``json.dumps(document, sort_keys=True)``'s very bytes.

        Written piece by piece into one buffer, because a first backfill's final state is its peak of
        memory: it remembers every record of the lookback (90,000 for a million SMS over a year), and
        the document built whole (a dict of lists for them, the JSON text, then its bytes) cost about
        30 MB at once. Here the remembered records go out a batch at a time, in the order
        ``sort_keys`` gives (their ids as strings), each batch encoded by ``json`` itself.
        """
        fields: dict[str, Any] = {
            "version": STATE_VERSION,
            "cursor": self.cursor.isoformat() if self.cursor else None,
            "retry": sorted(self.retry),
            "partial": (
                {
                    "until": self.partial_until.isoformat(),
                    "done_ranges": [list(item) for item in self.partial_done.ranges],
                }
                if self.partial_until
                else None
            ),
            "last_cycle": self.last_cycle,
            "largest_listing": self.largest_listing,
            "listing_cap_seen": self.listing_cap_seen,
            "fence": self.fence,
        }
        out = io.BytesIO()
        out.write(b"{")
        for index, name in enumerate(sorted([*fields, "known"])):
            if index:
                out.write(b",")
            out.write(_compact_json(name) + b":")
            if name == "known":
                self._write_known(out)
            else:
                out.write(_compact_json(fields[name]))
        out.write(b"}")
        return out.getvalue()  # the buffer itself, not a copy

    def _write_known(self, out: io.BytesIO) -> None:
        """``known`` as one JSON object, ``{"id": [created, final, digest], ...}``, keys in ``sort_keys`` order."""
        out.write(b"{")
        ordered = sorted(self.known, key=str)  # json sorts the keys as strings: "10" before "9"
        for start in range(0, len(ordered), _KNOWN_BATCH):
            batch = {
                str(sms_id): [known.created, known.final, known.digest]
                for sms_id in ordered[start : start + _KNOWN_BATCH]
                for known in (self.known[sms_id],)
            }
            if start:
                out.write(b",")
            out.write(_compact_json(batch)[1:-1])  # the batch's entries, without its braces
        out.write(b"}")

    @classmethod
    def from_json(cls, data: bytes, *, source: str) -> CursorState:
        try:
            document = json.loads(data)
            if document.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported state version {document.get('version')!r}")
            partial = document.get("partial") or {}
            return cls(
                cursor=_instant(document.get("cursor")),
                known={
                    int(key): Known(float(value[0]), bool(value[1]), str(value[2]))
                    for key, value in document.get("known", {}).items()
                },
                retry={int(item) for item in document.get("retry", [])},
                partial_until=_instant(partial.get("until")),
                partial_done=_done_ranges(partial),
                last_cycle=dict(document.get("last_cycle") or {}),
                largest_listing=int(document.get("largest_listing") or 0),
                listing_cap_seen=int(document.get("listing_cap_seen") or 0),
                fence=int(document.get("fence") or 0),
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            raise StorageError(f"state object {source} is damaged ({error}); see 'sms-archiver state reset'") from None


# Remembered records encoded at once by ``to_json``: small enough to cost little, large enough to be quick.
_KNOWN_BATCH = 1000


def _compact_json(value: Any) -> bytes:
    """``value`` as the state's JSON (compact, keys sorted, ASCII with escapes) in bytes."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _done_ranges(partial: dict[str, Any]) -> DoneRanges:
    done = DoneRanges([(int(low), int(high), int(count)) for low, high, count in partial.get("done_ranges", [])])
    for sms_id in partial.get("done", []):  # as states written before ranges held them
        done.ranges.append((int(sms_id), int(sms_id), 1))
    return done


def _instant(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def load_state(store: Store, service: str, direction: Direction) -> CursorState:
    key = state_key(service, direction)
    try:
        data = store.get(key)
    except KeyError:
        return CursorState()
    return CursorState.from_json(data, source=key)


def save_state(
    store: Store, service: str, direction: Direction, state: CursorState, *, lease: Lease | None = None
) -> None:
    """Write ``state``; under ``lease``, only while the lease is ours and no newer holder wrote.

    Raise ``LeaseHeldError`` (writing nothing) when the lease object names another holder, or
    the stored state carries a higher fencing token than the lease. Costs two heads more than a
    bare put: one of the lease, one of the state.
    """
    key = state_key(service, direction)
    if lease is not None:
        lease.renew_if_due()
        lease.check_held()
        stored = stored_fence(store, key)
        if stored > lease.fence:
            raise LeaseHeldError(
                f"the state of service {service} ({direction}) was written by a newer lease holder"
                f" (fencing token {stored} > ours {lease.fence}); this instance stops here"
            )
        state.fence = lease.fence
    store.put(key, state.to_json(), metadata={FENCE_METADATA: str(state.fence)})


def reset_state(store: Store, service: str, direction: Direction) -> bool:
    """Forget the cursor (the next cycle starts over and dedupes by id); return whether one existed."""
    key = state_key(service, direction)
    existed = store.head(key) is not None
    store.delete(key)
    return existed
