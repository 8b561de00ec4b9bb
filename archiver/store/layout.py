"""Every key name in the archive, and parsing part keys back. No I/O here.

    {service}/{direction}/year=YYYY/month=MM/day=DD/{first_id}-{last_id}-{digest}.csv[.gz]
    {service}/{direction}/year=YYYY/month=MM/_manifest.json
    _state/{service}/{direction}.json
    _state/{service}/lease.json
    _journal/deletions/year=YYYY/month=MM/{run}-{batch}-{intent|done}.csv
    _journal/purges/year=YYYY/month=MM/{run}-{name}.csv
    _journal/audit/year=YYYY/month=MM/{instant}-{event}-{kind}.json
    _holds/{hold}.json

Part names come from their content (id range and a digest of the bytes), so a retried cycle that
fetched the same records rewrites the same key with the same bytes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from archiver.naming import DIRECTIONS, Direction, check_service_name

__all__ = [
    "AUDIT_PREFIX",
    "DAEMON_STATUS_PREFIX",
    "HOLDS_PREFIX",
    "PartKey",
    "audit_key",
    "audit_month_prefix",
    "daemon_status_key",
    "day_prefix",
    "hold_key",
    "host_of_daemon_status_key",
    "journal_key",
    "lease_key",
    "manifest_key",
    "month_prefix",
    "parse_month_key",
    "parse_part_key",
    "part_key",
    "service_of_key",
    "service_prefix",
    "state_key",
]

_PART = re.compile(
    r"^(?P<service>[^/]+)/(?P<direction>outgoing|incoming)/year=(?P<year>\d{4})/month=(?P<month>\d{2})/"
    r"day=(?P<day>\d{2})/(?P<name>[0-9]+-[0-9]+-[0-9a-f]{8,64}(?:-c)?)\.csv(?P<gz>\.gz)?$"
)

_MONTH_FOLDER = re.compile(
    r"^(?P<service>[^/]+)/(?P<direction>outgoing|incoming)/year=(?P<year>\d{4})/month=(?P<month>\d{2})/"
)


@dataclass(frozen=True, slots=True)
class PartKey:
    """A data part's key, taken apart."""

    service: str
    direction: Direction
    day: dt.date
    name: str
    compressed: bool

    @property
    def key(self) -> str:
        return part_key(self.service, self.direction, self.day, self.name, compressed=self.compressed)


def service_prefix(service: str, direction: Direction) -> str:
    return f"{check_service_name(service)}/{direction}/"


def month_prefix(service: str, direction: Direction, year: int, month: int) -> str:
    return f"{service_prefix(service, direction)}year={year:04d}/month={month:02d}/"


def day_prefix(service: str, direction: Direction, day: dt.date) -> str:
    return f"{month_prefix(service, direction, day.year, day.month)}day={day.day:02d}/"


def part_name(first_id: int, last_id: int, sha256: str, *, compacted: bool = False) -> str:
    return f"{first_id}-{last_id}-{sha256[:16]}" + ("-c" if compacted else "")


def part_key(service: str, direction: Direction, day: dt.date, name: str, *, compressed: bool) -> str:
    return f"{day_prefix(service, direction, day)}{name}.csv" + (".gz" if compressed else "")


def parse_part_key(key: str) -> PartKey | None:
    """Take a data part's key apart; ``None`` for anything else (manifests, foreign files)."""
    match = _PART.match(key)
    if match is None:
        return None
    try:
        day = dt.date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        return None
    direction = match["direction"]
    assert direction in DIRECTIONS
    return PartKey(match["service"], direction, day, match["name"], compressed=bool(match["gz"]))


def parse_month_key(key: str) -> tuple[str, Direction, int, int] | None:
    """``(service, direction, year, month)`` of any key inside a month folder (a part, a manifest), else None."""
    match = _MONTH_FOLDER.match(key)
    if match is None:
        return None
    direction: Direction = "outgoing" if match["direction"] == "outgoing" else "incoming"
    return match["service"], direction, int(match["year"]), int(match["month"])


def service_of_key(key: str) -> str | None:
    """The service a key belongs to: its data folder ``{service}/{direction}/year=...``, or its cursor or
    lease in ``_state/{service}/``. Bookkeeping (``_state/_daemons/``, ``_journal/``) belongs to none."""
    segments = key.split("/")
    if segments[0] == "_state" and len(segments) >= 3:
        name = segments[1]
    elif len(segments) >= 4 and segments[1] in DIRECTIONS and segments[2].startswith("year="):
        name = segments[0]
    else:
        return None
    return None if name.startswith(("_", ".")) else name


def manifest_key(service: str, direction: Direction, year: int, month: int) -> str:
    return f"{month_prefix(service, direction, year, month)}_manifest.json"


def state_key(service: str, direction: Direction) -> str:
    return f"_state/{check_service_name(service)}/{direction}.json"


def lease_key(service: str) -> str:
    return f"_state/{check_service_name(service)}/lease.json"


def journal_key(kind: str, when: dt.datetime, run_id: str, name: str) -> str:
    """A journal part: ``_journal/{kind}/year=YYYY/month=MM/{run}-{name}.csv`` (kind: deletions, purges)."""
    return f"_journal/{kind}/year={when.year:04d}/month={when.month:02d}/{run_id}-{name}.csv"


AUDIT_PREFIX = "_journal/audit/"
HOLDS_PREFIX = "_holds/"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def audit_key(when: dt.datetime, event_id: str, kind: str) -> str:
    """One audit event, never rewritten; keys sort by time (``when`` in UTC, to the microsecond)."""
    if not _NAME.match(event_id) or not re.fullmatch(r"[a-z_]{1,40}", kind):
        raise ValueError(f"invalid audit event name {event_id!r} / {kind!r}")
    when = when.astimezone(dt.UTC)
    return f"{audit_month_prefix(when.year, when.month)}{when.strftime('%Y%m%dT%H%M%S.%fZ')}-{event_id}-{kind}.json"


def audit_month_prefix(year: int, month: int) -> str:
    return f"{AUDIT_PREFIX}year={year:04d}/month={month:02d}/"


def hold_key(hold_id: str) -> str:
    """A legal hold: ``_holds/{id}.json`` (rewritten once, when it is lifted)."""
    if not _NAME.match(hold_id):
        raise ValueError(f"invalid hold id {hold_id!r}")
    return f"{HOLDS_PREFIX}{hold_id}.json"


DAEMON_STATUS_PREFIX = "_state/_daemons/"


def daemon_status_key(host: str) -> str:
    """Where a daemon publishes its schedule and last outcomes, for ``sms-archiver status``."""
    return f"{DAEMON_STATUS_PREFIX}{re.sub(r'[^A-Za-z0-9._-]', '_', host)}.json"


def host_of_daemon_status_key(key: str) -> str:
    """The (sanitised) host name a daemon status key was made from."""
    return key.removeprefix(DAEMON_STATUS_PREFIX).removesuffix(".json")
