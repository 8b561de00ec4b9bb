"""The audit trail as the ``audit`` command reads it: every event, in time order, from a day on.

The events are written by the actions that act (holds, retention, the archive purge, erasure) with
``archiver.audit.record_event``; this module only reads them (``read_events``).
"""

from __future__ import annotations

import datetime as dt

from archiver.audit import AuditEvent, read_events
from archiver.store import Store

__all__ = ["run_audit"]


def run_audit(store: Store, *, since: dt.date | None = None, kinds: set[str] | None = None) -> list[AuditEvent]:
    """The events from ``since`` (a UTC day, default: all) on, oldest first; only ``kinds`` if given.

    An unreadable event raises ``StorageError``: a gap in the trail is reported, never skipped.
    """
    return [event for event in read_events(store, since=since) if kinds is None or event.kind in kinds]
