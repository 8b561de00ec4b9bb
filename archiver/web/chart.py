"""Server-rendered bar charts (SVG drawn by the template from these numbers): no chart library, no script.

Each bar stacks the SMS of one month or day by state: sent and delivered, sent and failed, sent and
still pending, received.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["STATES", "Chart", "bar_chart", "by_month"]

STATES = ("delivered", "failed", "pending", "received")
_HEIGHT = 160
_TOP = 10
_BOTTOM = 30
_LEFT = 40


@dataclass(frozen=True, slots=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    state: str
    title: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    segments: list[Segment]
    labels: list[Label]
    peak: int
    baseline: int


def by_month(days: Iterable[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Day counts ``(YYYY-MM-DD, state, n)`` summed by month ``(YYYY-MM, state, n)``."""
    totals: dict[tuple[str, str], int] = {}
    for day, state, count in days:
        totals[(day[:7], state)] = totals.get((day[:7], state), 0) + count
    return [(month, state, count) for (month, state), count in sorted(totals.items())]


def bar_chart(counts: list[tuple[str, str, int]], *, bar_width: int = 14, label_every: int = 1) -> Chart:
    """One stacked bar per period of ``counts`` (period, state, n), in period order."""
    periods: dict[str, dict[str, int]] = {}
    for period, state, count in counts:
        periods.setdefault(period, {})[state] = periods.get(period, {}).get(state, 0) + count
    peak = max((sum(states.values()) for states in periods.values()), default=0)
    scale = (_HEIGHT - _TOP - _BOTTOM) / peak if peak else 0.0
    baseline = _HEIGHT - _BOTTOM
    segments: list[Segment] = []
    labels: list[Label] = []
    step = bar_width + 2
    for index, (period, states) in enumerate(sorted(periods.items())):
        x = _LEFT + index * step
        y = float(baseline)
        for state in STATES:
            count = states.get(state, 0)
            if count:
                height = count * scale
                y -= height
                segments.append(
                    Segment(x, round(y, 2), bar_width, round(height, 2), state, f"{period}: {count} {state}")
                )
        if index % label_every == 0:
            labels.append(Label(x + bar_width / 2, period))
    width = _LEFT + max(len(periods), 1) * step + 10
    return Chart(width, _HEIGHT, segments, labels, peak, baseline)
