"""What an archive run reports per service and direction, how it shows its progress, how it is stopped."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import structlog

from archiver.naming import Direction

__all__ = ["DirectionReport", "Progress", "SilentProgress", "StopSignal", "counts"]

log = structlog.get_logger()


class Progress(Protocol):
    """What the CLI's progress bar needs to hear (the daemon passes a silent one)."""

    def start(self, description: str, total: int) -> None: ...
    def advance(self, count: int) -> None: ...
    def finish(self) -> None: ...


class SilentProgress:
    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass(slots=True)
class DirectionReport:
    """What one cycle did for one service and direction."""

    service: str
    direction: Direction
    since: str | None = None
    until: str | None = None
    listed: int = 0
    fetched: int = 0
    rechecked: int = 0
    rows_written: int = 0
    parts_written: int = 0
    malformed: int = 0
    gone: int = 0
    from_export: int = 0  # rows taken from OVH's CSV export (fetch = export)
    listings: int = 0  # id listings made, the extra ones that prove a listing whole included
    unsettled: int = 0  # SMS whose status was still not final when the lookback ended: archived as they were
    clock_offset_seconds: int = 0  # OVH's clock minus ours
    skipped: str = ""  # why this service was left to another instance this cycle (its lease is held)
    api_calls: int = 0
    seconds: float = 0.0
    finished_at: str = ""
    errors: list[str] = field(default_factory=list)
    account: str = ""  # the OVH account of the service ("default" without SMS_ARCHIVER_ACCOUNTS)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def counts(report: DirectionReport) -> dict[str, Any]:
    keys = (
        "listed",
        "fetched",
        "rechecked",
        "rows_written",
        "parts_written",
        "malformed",
        "gone",
        "unsettled",
        "listings",
        "api_calls",
    )
    return {key: getattr(report, key) for key in keys} | {"seconds": report.seconds}


class StopSignal(Protocol):
    """What a cycle asks to know whether to stop at its next safe point (a ``threading.Event``)."""

    def is_set(self) -> bool: ...
