"""The values the HTTP glue and the route handlers exchange: a parsed request, a reply, OVH's error shapes.

Error bodies copy the shape of OVH's (``{"class": ..., "message": ...}``) and paraphrase its messages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Final


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer: ``is_json`` says whether faults on JSON bodies (truncation) may apply."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    is_json: bool = True


def json_reply(status: int, payload: object, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """Encode ``payload`` as compact UTF-8 JSON (a lone surrogate, which UTF-8 cannot carry, as an escape)."""
    try:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a test's malformed record): JSON escapes carry it
        body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return Reply(status, body, headers=headers)


class ApiError(Exception):
    """Raised by a route handler to answer with an error status and JSON body."""

    def __init__(self, status: int, payload: Mapping[str, object]) -> None:
        super().__init__(status, payload)
        self.status = status
        self.payload = payload


def not_found(what: str, value: object) -> ApiError:
    """OVH's 404 for an object that does not exist, e.g. ``not_found("id", 42)``."""
    return ApiError(
        404,
        {"class": "Client::NotFound", "message": f"The requested object ({what} = {value}) does not exist"},
    )


def bad_parameter(message: str) -> ApiError:
    """OVH's 400 for a parameter it cannot read."""
    return ApiError(400, {"class": "Client::BadRequest", "message": message})


def parse_int(name: str, value: str) -> int:
    """Read an integer parameter or path segment; ``bad_parameter`` naming it if it is not one."""
    try:
        return int(value)
    except ValueError:
        raise bad_parameter(f"[{name}] Given data ({value}) is not valid for type long") from None


INVALID_URL: Final = {"message": "Got an invalid (or empty) URL"}


@dataclass(frozen=True, slots=True)
class Request:
    """One API request, as the routes see it."""

    method: str
    target: str  # the request target exactly as received (path + raw query string)
    segments: tuple[str, ...]  # decoded API path segments, without the /1.0 prefix
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[0] if values else None
