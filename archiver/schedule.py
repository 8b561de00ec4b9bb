"""Schedule strings: ``15m``-style intervals or five-field cron expressions, as APScheduler triggers."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["parse_schedule"]

_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_schedule(text: str, *, timezone: str = "UTC") -> Any:
    """Turn ``30s``/``15m``/``6h``/``1d``/``1w`` or a cron line (``0 3 * * *``) into an APScheduler trigger.

    Raises ``ValueError`` with a message that says what is accepted.
    """
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    match = _INTERVAL.match(text)
    if match:
        seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
        if seconds < 10:
            raise ValueError(f"interval {text!r} is too short (10 seconds at least)")
        if seconds > 366 * 86400:
            raise ValueError(f"interval {text!r} is too long (a year at most; use a cron line for rare jobs)")
        return IntervalTrigger(seconds=seconds, timezone=timezone)
    if len(text.split()) == 5:
        try:
            return CronTrigger.from_crontab(text, timezone=timezone)
        except ValueError as error:
            raise ValueError(f"invalid cron expression {text!r}: {error}") from None
    raise ValueError(
        f"{text!r} is neither an interval (a number and s, m, h, d or w: 15m, 6h, 1d) "
        "nor a five-field cron expression (minute hour day month weekday, e.g. '0 3 * * *')"
    )
