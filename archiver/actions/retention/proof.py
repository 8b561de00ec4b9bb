"""The per-record proof retention needs before deleting at OVH: a verified archived copy equal to the live record."""

from __future__ import annotations

import datetime as dt

from archiver.naming import Direction
from archiver.reader import ArchiveParts, StoredPart, read_checked
from archiver.records import Record, differing_columns
from archiver.store import Store

__all__ = ["Copy", "archived_copies", "proof"]


def archived_copies(
    store: Store, service: str, direction: Direction, wanted: set[int], parts: list[StoredPart] | None = None
) -> dict[int, tuple[Record, StoredPart, list[str]]]:
    """The newest archived copy of each ``wanted`` id (the reader's rule), with the problems of its part.

    Reads each part at most once, and only the parts whose id range can hold a wanted id (``parts``:
    only these): each is read whole, checked against its manifest entry as ``verify`` does, and its
    wanted records kept. An id's newest version is in the part written last that holds it.
    """
    if parts is None:
        parts = ArchiveParts(store, service, direction).holding(wanted)
    copies: dict[int, tuple[Record, StoredPart, list[str]]] = {}
    for stored in parts:
        records, problem = read_checked(store, stored, direction, wanted)
        problems = [f"{problem.kind}: {problem.detail}"] if problem is not None else []
        for record in records:
            held = copies.get(record.id)
            if held is None or stored.version > held[1].version:
                copies[record.id] = (record, stored, problems)
    return copies


Copy = tuple[Record, StoredPart, list[str]]


def proof(live: Record, copy: Copy | None, settled_before: dt.datetime, *, archiving: bool) -> tuple[str, str, bool]:
    """The per-record rule, past the age policy: ``(action, reason, stale)``; action is delete or keep.

    ``copy``: the archived copy (``archived_copies``), None if not archived. ``stale``: the archive
    lacks the live version (the caller may archive it; ``archiving`` says it does, for the reason).
    """
    if copy is None:
        return "keep", "not yet archived" + (": archived now, deletable on a later run" if archiving else ""), True
    if copy[2]:
        return "keep", f"archived part fails verification ({'; '.join(copy[2])})", False
    if not live.final and live.created > settled_before:
        return "keep", "status not final", False
    if differing := differing_columns(live, copy[0]):
        suffix = ": newer version archived now" if archiving else ""
        return "keep", f"archived copy differs from the API ({', '.join(differing)}){suffix}", True
    return "delete", "archived and verified" + ("" if live.final else "; its status never settled"), False
