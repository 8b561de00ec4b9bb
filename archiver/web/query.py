"""The browser's filters, as query parameters, and the queries they make on the index.

One set of parameters for the pages, the JSON API and the CSV download, so a page's URL is the
query it shows (bookmarkable):

    service, direction, from (a day, inclusive), to (a day, exclusive), sender, receiver, tag,
    ptt, q (words in the message, each present, any case), order (desc|asc), limit, after

Days are in the archive's time zone. ``after`` is an opaque cursor: the position (date, id) of the
last row of the previous page, so that a page at any depth is one indexed range query.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import sqlite3
import urllib.parse
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from archiver.naming import DIRECTIONS, Direction
from archiver.records import COLUMNS

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "BadParameter",
    "Filters",
    "Page",
    "day_counts",
    "parse_filters",
    "search",
    "where_clause",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_KNOWN = ("service", "direction", "from", "to", "sender", "receiver", "tag", "ptt", "q", "order", "limit", "after")
_MAX_TEXT = 200


class BadParameter(ValueError):
    """A query parameter that cannot be used; the message names it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True, slots=True)
class Cursor:
    ts: int
    id: int
    service: str
    direction: str

    def token(self) -> str:
        raw = json.dumps([self.ts, self.id, self.service, self.direction], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            ts, sms_id, service, direction = json.loads(raw)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise BadParameter("after", "not a cursor given by a previous page") from None
        if (
            not (isinstance(ts, int) and isinstance(sms_id, int) and isinstance(service, str))
            or direction not in DIRECTIONS
        ):
            raise BadParameter("after", "not a cursor given by a previous page")
        return cls(ts, sms_id, service, direction)


@dataclass(frozen=True, slots=True)
class Filters:
    service: str | None = None
    direction: Direction | None = None
    since: dt.date | None = None  # ``from``
    until: dt.date | None = None  # ``to``, exclusive
    sender: str | None = None
    receiver: str | None = None
    tag: str | None = None
    ptt: int | None = None
    q: str | None = None
    order: str = "desc"
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None

    def params(self, **changes: Any) -> dict[str, str]:
        """The query parameters that give these filters (defaults left out), with ``changes`` applied."""
        values = {
            "service": self.service,
            "direction": self.direction,
            "from": self.since.isoformat() if self.since else None,
            "to": self.until.isoformat() if self.until else None,
            "sender": self.sender,
            "receiver": self.receiver,
            "tag": self.tag,
            "ptt": str(self.ptt) if self.ptt is not None else None,
            "q": self.q,
            "order": self.order if self.order != "desc" else None,
            "limit": str(self.limit) if self.limit != DEFAULT_LIMIT else None,
            "after": self.after.token() if self.after else None,
        }
        values.update(changes)
        return {name: value for name, value in values.items() if value not in (None, "")}

    def url(self, path: str, **changes: Any) -> str:
        query = urllib.parse.urlencode(self.params(**changes))
        return f"{path}?{query}" if query else path

    def logged(self) -> dict[str, str]:
        """The filters for the access log (the audit trail: who looked at which numbers)."""
        return self.params()

    def without_cursor(self) -> Filters:
        return replace(self, after=None)


def _day(name: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, f"expected a day as YYYY-MM-DD, got {text[:40]!r}") from None


def parse_filters(params: Mapping[str, str], services: list[str]) -> Filters:
    """Read the query parameters; raise ``BadParameter`` naming the first wrong one."""
    unknown = sorted(set(params) - set(_KNOWN))
    if unknown:
        raise BadParameter(unknown[0], f"unknown parameter (known: {', '.join(_KNOWN)})")
    values = {name: value for name, value in params.items() if value != ""}
    for name, value in values.items():
        if len(value) > _MAX_TEXT:
            raise BadParameter(name, f"longer than {_MAX_TEXT} characters")
    service = values.get("service")
    if service is not None and service not in services:
        raise BadParameter("service", f"no such service in the archive (known: {', '.join(services) or 'none'})")
    direction = values.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise BadParameter("direction", "expected outgoing or incoming")
    since = _day("from", values["from"]) if "from" in values else None
    until = _day("to", values["to"]) if "to" in values else None
    if since and until and until <= since:
        raise BadParameter("to", "must be after from (from is inclusive, to exclusive)")
    ptt = None
    if "ptt" in values:
        if not values["ptt"].isdigit() or len(values["ptt"]) > 4:
            raise BadParameter("ptt", "expected a status code (a number, e.g. 4 for delivered)")
        ptt = int(values["ptt"])
    order = values.get("order", "desc")
    if order not in ("desc", "asc"):
        raise BadParameter("order", "expected desc or asc")
    limit = DEFAULT_LIMIT
    if "limit" in values:
        if not values["limit"].isdigit() or not 1 <= int(values["limit"]) <= MAX_LIMIT:
            raise BadParameter("limit", f"expected a number from 1 to {MAX_LIMIT}")
        limit = int(values["limit"])
    after = Cursor.parse(values["after"]) if "after" in values else None
    return Filters(
        service=service,
        direction=direction,
        since=since,
        until=until,
        sender=values.get("sender"),
        receiver=values.get("receiver"),
        tag=values.get("tag"),
        ptt=ptt,
        q=values.get("q"),
        order=order,
        limit=limit,
        after=after,
    )


def _micros(day: dt.date, zone: zoneinfo.ZoneInfo) -> int:
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    delta = start - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def where_clause(filters: Filters, zone: zoneinfo.ZoneInfo) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column in ("service", "direction", "sender", "receiver", "tag", "ptt"):
        value = getattr(filters, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if filters.since:
        clauses.append("ts >= ?")
        args.append(_micros(filters.since, zone))
    if filters.until:
        clauses.append("ts < ?")
        args.append(_micros(filters.until, zone))
    for word in (filters.q or "").split():
        clauses.append("instr(folded, ?) > 0")
        args.append(word.casefold())
    return clauses, args


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, str]]
    next: str | None


def search(db: sqlite3.Connection, filters: Filters, zone: zoneinfo.ZoneInfo) -> Page:
    """One page of SMS, newest (or oldest) first, from the cursor on."""
    clauses, args = where_clause(filters, zone)
    if filters.after is not None:
        position = (filters.after.ts, filters.after.id, filters.after.service, filters.after.direction)
        clauses.append("(ts, id, service, direction) " + ("<" if filters.order == "desc" else ">") + " (?, ?, ?, ?)")
        args.extend(position)
    sort = "DESC" if filters.order == "desc" else "ASC"
    # Only our own clauses are joined into the text; every value is a bound parameter.
    sql = (
        "SELECT service, direction, ts, id, fields FROM sms"  # noqa: S608
        + (" WHERE " + " AND ".join(clauses) if clauses else "")
        + f" ORDER BY ts {sort}, id {sort}, service {sort}, direction {sort} LIMIT ?"
    )
    rows = db.execute(sql, [*args, filters.limit + 1]).fetchall()
    items = [_item(service, direction, fields) for service, direction, _ts, _id, fields in rows[: filters.limit]]
    following = None
    if len(rows) > filters.limit:
        service, direction, ts, sms_id, _fields = rows[filters.limit - 1]
        following = Cursor(ts, sms_id, service, direction).token()
    return Page(items, following)


def _item(service: str, direction: Direction, fields: str) -> dict[str, str]:
    return {
        "service": service,
        "direction": direction,
        **dict(zip(COLUMNS[direction], json.loads(fields), strict=True)),
    }


def day_counts(db: sqlite3.Connection, filters: Filters, zone: zoneinfo.ZoneInfo) -> list[tuple[str, str, int]]:
    """(day, state, count) for the filters, by day: state is delivered, failed, pending or received."""
    clauses, args = where_clause(filters.without_cursor(), zone)
    sql = (
        "SELECT day, state, count(*) FROM sms"  # noqa: S608 - our own clauses; values bound
        + (" WHERE " + " AND ".join(clauses) if clauses else "")
        + " GROUP BY day, state ORDER BY day"
    )
    return [(day, state, count) for day, state, count in db.execute(sql, args)]
