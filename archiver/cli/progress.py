"""The progress bar of long work (archive, backfill, demo): on stderr, only for people at a terminal."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["RichProgress", "progress_bar", "records_rate"]


class RichProgress:
    """A progress bar on stderr, for people at a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        # Elapsed time from the start, the rate, and an estimate: at OVH's default 1 request/s a long
        # backfill must say early how long it will take. The rate and the estimate average over the
        # last minute (speed_estimate_period), so they appear after a few records and stay steady.
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
            speed_estimate_period=60,
        )
        self.task: Any = None

    def start(self, description: str, total: int) -> None:
        if total:
            self.bar.start()
            self.task = self.bar.add_task(description, total=total, rate=records_rate(None))

    def advance(self, count: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, count)
            task = next(task for task in self.bar.tasks if task.id == self.task)
            self.bar.update(self.task, rate=records_rate(task.speed))

    def finish(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.bar.stop()
            self.task = None


def records_rate(per_second: float | None) -> str:
    """A rate of records for the progress bar: ``12.3/s``, ``0.52/s``, or ``…/s`` before it is known."""
    if per_second is None:
        return "…/s"
    return f"{per_second:.2f}/s" if per_second < 10 else f"{per_second:,.0f}/s"


def progress_bar(args: argparse.Namespace) -> RichProgress | None:
    """A progress bar when stderr is a terminal and ``--quiet`` was not given, else None."""
    return RichProgress() if sys.stderr.isatty() and not args.quiet else None
