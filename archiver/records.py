"""SMS records: parsing OVH API JSON strictly into archive rows, and the archive's CSV columns.

A ``Record`` is one archive row: its fields as strings in column order, plus the id, the creation
instant and whether its delivery status can still change. Keeping rows as strings makes the
archive, the API and a re-read CSV comparable field for field with ``==``.

Parsing is all-or-nothing: any field of the wrong type raises ``MalformedRecordError`` and no
row is produced, so a malformed record is never written half-parsed.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from archiver.errors import MalformedRecordError
from archiver.naming import Direction

__all__ = [
    "COLUMNS",
    "INCOMING_COLUMNS",
    "NON_FINAL_PTT",
    "OUTGOING_COLUMNS",
    "PTT_DESCRIPTIONS",
    "Record",
    "describe_ptt",
    "differing_columns",
    "format_instant",
    "parse_api_record",
    "parse_export_row",
    "parse_instant",
    "record_from_row",
]

# The Control Panel export's columns first, in its order, then the fields only the API has.
OUTGOING_COLUMNS: Final = (
    "id",
    "date",
    "sender",
    "receiver",
    "ptt",
    "operatorCode",
    "descriptionDlr",
    "tag",
    "message",
    "sentAt",
    "deliveredAt",
    "credits",
    "messageLength",
    "numberOfSms",
    "deliveryReceipt",
    "differedDelivery",
    "tariffCode",
    "batchID",
    "messageID",
)
INCOMING_COLUMNS: Final = ("id", "date", "sender", "tag", "message", "credits")
COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {"outgoing": OUTGOING_COLUMNS, "incoming": INCOMING_COLUMNS}

# The ptt table of OVH's SMS guide (paraphrased); GET /sms/ptts gives the official text of others.
PTT_DESCRIPTIONS: Final[Mapping[int, str]] = {
    0: "Success",
    1: "Not delivered yet: phone-side problem, retrying",
    2: "Not delivered yet: operator-side problem, retrying",
    3: "Accepted by the operator",
    4: "Delivered",
    5: "Undelivered",
    6: "Final state unknown",
    8: "Expired in the operator SMSC",
    20: "Undeliverable in its current form",
    21: "Expired: subscriber out of credit",
    23: "Invalid, blacklisted or barred number",
    24: "Subscriber temporarily absent",
    25: "Temporary operator network failure",
    26: "Temporary phone error (SIM full, busy)",
    27: "Handset incompatible with this message",
    28: "Rejected as suspected spam",
    29: "Content not permitted on this network",
    33: "Adult content blocked by parental lock",
    39: "Operator failure",
    73: "Ported number unreachable",
    74: "Number roaming",
    76: "Ported number blocked for this client",
    202: "Ported number blocked for this client (contact support)",
}
# The ptt codes whose SMS may still change state, unless deliveredAt is set; re-checked within the
# lookback (docs/ovh-api.md, "Delivery statuses"; source: OVH's SMS users guide, its ptt table):
#   0       not in OVH's table; the CSV export shows it with "Success", the DLR ids call 0 pending
#   1, 2    intermediate: not delivered yet, being retried (phone side, operator side)
#   3       accepted by the operator, no final report yet
#   24-26   temporary failures (subscriber absent, network, phone): OVH's operator may still deliver
# Every other code is final (delivered, or a permanent failure). An SMS still not final when the
# lookback ends is archived with its last status, reported (``status_unsettled``), and may be
# deleted by retention once its archived copy equals the live record.
NON_FINAL_PTT: Final = frozenset({0, 1, 2, 3, 24, 25, 26})


def describe_ptt(ptt: int) -> str:
    """Return the built-in text of a ptt code, or a neutral label for an unknown one."""
    return PTT_DESCRIPTIONS.get(ptt, f"ptt {ptt}")


@dataclass(frozen=True, slots=True)
class Record:
    """One archive row and what the archiver needs to know about it."""

    direction: Direction
    id: int
    created: dt.datetime
    fields: tuple[str, ...]
    final: bool

    def get(self, column: str) -> str:
        return self.fields[COLUMNS[self.direction].index(column)]


def parse_instant(text: str, default_zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """Parse an ISO 8601 datetime; a value without an offset is read in ``default_zone``."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_zone)
    return value


def format_instant(value: dt.datetime) -> str:
    """Write an aware datetime as unambiguous ISO 8601 with its offset (``Z`` becomes ``+00:00``)."""
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds")


class _Fields:
    """Typed access to one raw API object; every accessor raises MalformedRecordError."""

    def __init__(self, raw: Mapping[str, Any], direction: str, zone: zoneinfo.ZoneInfo) -> None:
        self.raw = raw
        self.direction = direction
        self.zone = zone

    def _fail(self, name: str, why: str) -> MalformedRecordError:
        return MalformedRecordError(f"{self.direction} record {self.raw.get('id')!r}: field {name} {why}")

    def integer(self, name: str) -> int:
        value = self.raw.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(name, f"should be an integer, got {type(value).__name__}")
        return value

    def number(self, name: str) -> str:
        value = self.raw.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise self._fail(name, f"should be a number, got {type(value).__name__}")
        return repr(float(value))

    def text(self, name: str, *, nullable: bool = False) -> str:
        value = self.raw.get(name)
        if value is None and nullable:
            return ""
        if not isinstance(value, str):
            raise self._fail(name, f"should be a string, got {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise self._fail(name, "is not valid Unicode (lone surrogate)") from None
        return value

    def instant(self, name: str, *, nullable: bool = False) -> dt.datetime | None:
        value = self.raw.get(name)
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise self._fail(name, f"should be a date-time string, got {type(value).__name__}")
        try:
            return parse_instant(value, self.zone)
        except ValueError:
            raise self._fail(name, f"is not an ISO 8601 date-time: {value[:40]!r}") from None


def _instant_text(value: dt.datetime | None) -> str:
    return "" if value is None else format_instant(value)


def parse_api_record(
    direction: Direction,
    raw: object,
    *,
    api_zone: zoneinfo.ZoneInfo,
    ptt_text: Callable[[int], str] = describe_ptt,
) -> Record:
    """Turn one API object (``sms.Outgoing`` or ``sms.Incoming``) into a ``Record``.

    Raises ``MalformedRecordError`` if any field is missing or of the wrong type.
    """
    if not isinstance(raw, Mapping):
        raise MalformedRecordError(f"{direction} record is not a JSON object: {type(raw).__name__}")
    fields = _Fields(raw, direction, api_zone)
    sms_id = fields.integer("id")
    if sms_id < 0:
        raise fields._fail("id", "is negative")
    created = fields.instant("creationDatetime")
    assert created is not None
    row: tuple[str, ...]
    if direction == "incoming":
        row = (
            str(sms_id),
            format_instant(created),
            fields.text("sender"),
            fields.text("tag", nullable=True),
            fields.text("message"),
            fields.number("credits"),
        )
        return Record(direction, sms_id, created, row, final=True)
    ptt = fields.integer("ptt")
    delivered = fields.instant("deliveredAt", nullable=True)
    row = (
        str(sms_id),
        format_instant(created),
        fields.text("sender"),
        fields.text("receiver"),
        str(ptt),
        "",  # operatorCode: only the CSV export carries it
        ptt_text(ptt),
        fields.text("tag", nullable=True),
        fields.text("message"),
        _instant_text(fields.instant("sentAt", nullable=True)),
        _instant_text(delivered),
        fields.number("credits"),
        str(fields.integer("messageLength")),
        str(fields.integer("numberOfSms")),
        str(fields.integer("deliveryReceipt")),
        str(fields.integer("differedDelivery")),
        fields.text("tariffCode", nullable=True),
        fields.text("batchID", nullable=True),
        fields.text("messageID", nullable=True),
    )
    final = ptt not in NON_FINAL_PTT or delivered is not None
    return Record(direction, sms_id, created, row, final=final)


def parse_export_row(direction: Direction, row: Mapping[str, str], *, zone: zoneinfo.ZoneInfo) -> Record:
    """Turn one row of OVH's CSV history export into a ``Record`` (columns found by header name).

    The export has the Control Panel's columns, including ``operatorCode``, which the API lacks, and
    none of the API-only fields, which stay empty. Its dates carry no zone (``2021-09-28 16:16:53``):
    they are read in ``zone``, the API's (an assumption; the export's zone is not documented). Its
    ``date`` is taken as the creation time. Raises ``MalformedRecordError`` on a missing or bad value.
    """

    def text(name: str) -> str:
        value = row.get(name)
        if value is None:
            raise MalformedRecordError(f"export row {row.get('id')!r}: no {name} column")
        return value

    def instant(name: str, *, optional: bool = False) -> str:
        value = text(name).strip() if not optional else (row.get(name) or "").strip()
        if not value:
            if optional:
                return ""
            raise MalformedRecordError(f"export row {row.get('id')!r}: empty {name}")
        try:
            return format_instant(parse_instant(value, zone))
        except ValueError:
            raise MalformedRecordError(f"export row {row.get('id')!r}: {name} {value[:30]!r} is not a date") from None

    try:
        sms_id = int(text("id"))
        created_text = instant("date")
        created = dt.datetime.fromisoformat(created_text)
        if direction == "incoming":
            fields: tuple[str, ...] = (
                str(sms_id),
                created_text,
                text("sender"),
                row.get("tag") or "",
                text("message"),
                repr(float(row.get("credits") or 0)),
            )
            return Record(direction, sms_id, created, fields, final=True)
        ptt = int(text("ptt"))
        delivered = instant("deliveredAt", optional=True)
        api_only = ("",) * (len(OUTGOING_COLUMNS) - 11)
        fields = (
            str(sms_id),
            created_text,
            text("sender"),
            text("receiver"),
            str(ptt),
            row.get("operatorCode") or "",
            row.get("descriptionDlr") or describe_ptt(ptt),
            row.get("tag") or "",
            text("message"),
            instant("sentAt", optional=True),
            delivered,
            *api_only,
        )
    except ValueError as error:
        raise MalformedRecordError(f"export row {row.get('id')!r}: {error}") from None
    return Record(direction, sms_id, created, fields, final=ptt not in NON_FINAL_PTT or bool(delivered))


# Columns one source has and the other lacks, or that we derive: left out when a live record is compared
# with its archived copy. operatorCode only the CSV export carries; descriptionDlr is the text of ptt
# (ours, OVH's /sms/ptts or the export's), so comparing ptt is what counts.
_NOT_COMPARED: Final = frozenset({"operatorCode", "descriptionDlr"})
_INSTANT_COLUMNS: Final = frozenset({"date", "sentAt", "deliveredAt"})


def differing_columns(live: Record, archived: Record) -> list[str]:
    """The columns in which an archived copy differs from the live API record (empty: equal).

    Instants are compared as instants (an offset written another way is the same time); a column
    the live record has and the copy lacks differs, so that retention archives the fuller version
    before it may delete.
    """
    differing = []
    for index, column in enumerate(COLUMNS[live.direction]):
        if column in _NOT_COMPARED:
            continue
        mine, theirs = live.fields[index], archived.fields[index]
        if mine == theirs:
            continue
        if column in _INSTANT_COLUMNS and mine and theirs and _same_instant(mine, theirs):
            continue
        differing.append(column)
    return differing


def _same_instant(first: str, second: str) -> bool:
    try:
        return dt.datetime.fromisoformat(first) == dt.datetime.fromisoformat(second)
    except ValueError:
        return False


def record_from_row(direction: Direction, row: Sequence[str]) -> Record:
    """Rebuild a ``Record`` from an archived CSV row (already in column order)."""
    columns = COLUMNS[direction]
    if len(row) != len(columns):
        raise MalformedRecordError(f"archived {direction} row has {len(row)} fields, expected {len(columns)}")
    try:
        sms_id = int(row[0])
        created = dt.datetime.fromisoformat(row[1])
    except ValueError as error:
        raise MalformedRecordError(f"archived {direction} row {row[0][:20]!r}: {error}") from None
    final = True
    if direction == "outgoing":
        final = int(row[columns.index("ptt")]) not in NON_FINAL_PTT or bool(row[columns.index("deliveredAt")])
    return Record(direction, sms_id, created, tuple(row), final)
