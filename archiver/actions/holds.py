"""Legal holds from the command line: place one, list them, lift one; each change goes to the audit trail.

The rules (what a hold covers, how it is stored) live in ``archiver.holds``; this module checks what
a person typed (numbers in one form, dates in order, a reason), places or lifts the hold, then
records a ``hold_placed`` or ``hold_lifted`` event naming the actor (``SMS_ARCHIVER_ACTOR``, else the
OS user and host). The hold is written first: it is what protects the SMS; an audit event that
cannot be written afterwards is an error that says the hold is in place.

The audit event names a hold's phone numbers only by a keyed hash (``audit.number_digest`` with
``SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY``), or as ``redacted`` without a key: the journal is never
rewritten (and may be under Object Lock), so a number written there could never be erased. The hold
object itself keeps the numbers in clear: it must, to match them, and it can be lifted.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import structlog

from archiver.audit import actor_name, number_digest, record_event
from archiver.config import Settings
from archiver.errors import ConfigError, StorageError
from archiver.holds import Hold, HoldScope, lift_hold, load_holds, normalize_number, place_hold
from archiver.naming import DIRECTIONS, Direction
from archiver.services import holds_service
from archiver.store import Store
from archiver.store.layout import hold_key

__all__ = ["HoldRequest", "active_hold_count", "run_hold_add", "run_hold_list", "run_hold_remove", "scope_for_trail"]

log = structlog.get_logger()

_NUMBER_CRITERIA = ("sender", "receiver", "number")


@dataclass(frozen=True, slots=True)
class HoldRequest:
    """A hold's scope as typed (``hold add``'s options), before it is checked."""

    service: str | None = None
    direction: str | None = None
    sender: str | None = None
    receiver: str | None = None
    number: str | None = None
    tag: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def scope(self) -> HoldScope:
        """The checked scope; ``ConfigError`` (exit 2) names the first wrong option."""
        numbers: dict[str, str | None] = {}
        for name in _NUMBER_CRITERIA:
            value = getattr(self, name)
            if value is None:
                numbers[name] = None
                continue
            try:
                numbers[name] = normalize_number(value)
            except ValueError as error:
                raise ConfigError(f"--{name}: {error}") from None
            # Only a sender may be a name (``MyShop``): an SMS is always sent to a phone number.
            if name == "receiver" and not re.fullmatch(r"\+?[0-9]+", numbers[name] or ""):
                raise ConfigError(f"--receiver: not a phone number: {value[:40]!r}")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ConfigError(f"--direction: expected one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ConfigError(f"--from {self.date_from} is after --to {self.date_to}: the hold would cover nothing")
        for name in ("service", "tag"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ConfigError(f"--{name}: empty (leave the option out to hold every {name})")
        direction: Direction | None = self.direction  # checked above
        return HoldScope(
            service=self.service,
            direction=direction,
            sender=numbers["sender"],
            receiver=numbers["receiver"],
            number=numbers["number"],
            tag=self.tag,
            date_from=self.date_from,
            date_to=self.date_to,
        )


def scope_for_trail(scope: HoldScope, settings: Settings) -> dict[str, str]:
    """A hold's scope as the audit trail writes it: numbers as keyed hashes (see the module docstring)."""
    key = settings.compliance.erasure_key
    criteria: dict[str, str] = {}
    for name, value in scope._criteria().items():
        if name in _NUMBER_CRITERIA:
            value = number_digest(key.get_secret_value(), value) if key is not None else "redacted"
        criteria[name] = value
    return criteria


def _reason(text: str) -> str:
    reason = " ".join(text.split())
    if not reason:
        raise ConfigError("--reason: empty; say why (a case number, a request): it is kept with the hold")
    return reason


def run_hold_add(
    settings: Settings, store: Store, request: HoldRequest, *, reason: str, now: dt.datetime | None = None
) -> Hold:
    """Place a hold (durable when this returns), then record ``hold_placed`` in the audit trail.

    Raises ``ConfigError`` for a wrong option, ``StorageError`` when the hold or its event cannot be written.
    """
    scope = request.scope()
    why = _reason(reason)
    if (
        scope.service is not None
        and scope.service not in settings.ovh.services
        and not holds_service(store, scope.service)
    ):
        log.warning("hold_service_unknown", service=scope.service, hint="the hold covers nothing until it is archived")
    actor = actor_name(settings.actor)
    hold = place_hold(store, scope, reason=why, actor=actor, now=now)
    log.info("hold_placed", hold=hold.id, actor=actor, scope=scope_for_trail(scope, settings))
    what: dict[str, Any] = {"hold": hold.id, "scope": scope_for_trail(scope, settings)}
    try:
        record_event(store, "hold_placed", actor=actor, why=why, what=what, now=now)
    except StorageError as error:
        raise StorageError(f"hold {hold.id} is placed, but its audit event could not be written: {error}") from None
    return hold


def run_hold_remove(
    settings: Settings, store: Store, hold_id: str, *, reason: str, now: dt.datetime | None = None
) -> Hold:
    """Lift an active hold (kept, marked lifted), then record ``hold_lifted`` in the audit trail.

    Raises ``ConfigError`` for an unknown or malformed id, a hold lifted already, or an empty reason.
    """
    why = _reason(reason)
    try:
        hold_key(hold_id)
    except ValueError:
        raise ConfigError(f"{hold_id!r} is not a hold id (see 'sms-archiver hold list --all')") from None
    actor = actor_name(settings.actor)
    try:
        hold = lift_hold(store, hold_id, reason=why, actor=actor, now=now)
    except KeyError:
        raise ConfigError(f"no hold {hold_id} in {store.describe()} (see 'sms-archiver hold list --all')") from None
    except ValueError as error:
        raise ConfigError(str(error)) from None
    log.info("hold_lifted", hold=hold.id, actor=actor)
    what: dict[str, Any] = {
        "hold": hold.id,
        "placed_by": hold.placed_by,
        "placed_at": hold.placed_at,
        "scope": scope_for_trail(hold.scope, settings),
    }
    try:
        record_event(store, "hold_lifted", actor=actor, why=why, what=what, now=now)
    except StorageError as error:
        raise StorageError(f"hold {hold.id} is lifted, but its audit event could not be written: {error}") from None
    return hold


def run_hold_list(store: Store, *, include_lifted: bool = False) -> list[Hold]:
    """The holds, oldest first (lifted ones too with ``include_lifted``); an unreadable one raises ``StorageError``."""
    return load_holds(store, include_lifted=include_lifted)


def active_hold_count(store: Store) -> int:
    """How many holds are active (``StorageError`` if one cannot be read)."""
    return len(load_holds(store))
