"""The audit trail: who placed or lifted a hold, erased a number, deleted at OVH or purged the archive.

Append-only, in the archive itself: one object per event under ``_journal/audit/`` (see
``store.layout.audit_key``), written once under a fresh name and never rewritten; under Object Lock
(``SMS_ARCHIVER_STORAGE__OBJECT_LOCK_*``) each event is locked like a data part. An event names its
actor (``SMS_ARCHIVER_ACTOR``, else the OS user and host), when (UTC), what, why and counts. A phone
number is never written in clear here: ``number_digest`` names it (an HMAC with the erasure key).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import json
import re
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from archiver.errors import StorageError
from archiver.store import Store
from archiver.store.layout import AUDIT_PREFIX, audit_key

__all__ = ["AuditEvent", "actor_name", "number_digest", "read_events", "record_event"]

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the audit trail."""

    id: str
    kind: str  # hold_placed, hold_lifted, erasure, retention_deletion, archive_purge, ...
    at: str  # ISO 8601, UTC
    actor: str
    why: str
    what: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def actor_name(configured: str | None) -> str:
    """Who acts: ``SMS_ARCHIVER_ACTOR`` when set, else ``user@host`` of this process."""
    if configured:
        return configured
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no passwd entry
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def number_digest(key: str, number: str) -> str:
    """A keyed hash (HMAC-SHA256) naming a phone number without keeping it: same key, same number, same digest."""
    return "hmac-sha256:" + hmac.new(key.encode(), number.encode(), hashlib.sha256).hexdigest()


def record_event(
    store: Store,
    kind: str,
    *,
    actor: str,
    why: str,
    what: Mapping[str, Any] | None = None,
    counts: Mapping[str, int] | None = None,
    now: dt.datetime | None = None,
) -> AuditEvent:
    """Append one event to the trail; return it once it is durable (a storage failure raises)."""
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    event = AuditEvent(
        id=uuid.uuid4().hex[:12],
        kind=kind,
        at=at.isoformat(timespec="microseconds"),
        actor=actor,
        why=why,
        what=dict(what or {}),
        counts=dict(counts or {}),
    )
    data = json.dumps(event.as_dict(), sort_keys=True, ensure_ascii=False).encode()
    store.put(audit_key(at, event.id, kind), data, lock=True)
    log.info("audit_event_recorded", kind=kind, event_id=event.id, actor=actor)
    return event


def read_events(store: Store, *, since: dt.date | None = None) -> Iterator[AuditEvent]:
    """The trail in time order, from ``since`` (a UTC date) on; an unreadable event raises ``StorageError``.

    Only the events of ``since``'s month and later are read (the key says the month).
    """
    for info in store.list(AUDIT_PREFIX):
        month = _MONTH.match(info.key[len(AUDIT_PREFIX) :])
        if month is None:
            continue
        if since is not None and (int(month["year"]), int(month["month"])) < (since.year, since.month):
            continue
        event = _parse(info.key, store.get(info.key))
        if since is None or dt.datetime.fromisoformat(event.at).date() >= since:
            yield event


_MONTH = re.compile(r"^year=(?P<year>\d{4})/month=(?P<month>\d{2})/[^/]+\.json$")


def _parse(key: str, data: bytes) -> AuditEvent:
    try:
        raw = json.loads(data)
        return AuditEvent(
            id=str(raw["id"]),
            kind=str(raw["kind"]),
            at=str(raw["at"]),
            actor=str(raw["actor"]),
            why=str(raw["why"]),
            what=dict(raw.get("what") or {}),
            counts={str(name): int(value) for name, value in (raw.get("counts") or {}).items()},
        )
    except (ValueError, KeyError, TypeError) as error:
        raise StorageError(f"audit event {key} is unreadable: {error}") from None
