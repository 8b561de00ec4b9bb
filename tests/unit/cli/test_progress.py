"""The progress bar of long work: elapsed time, a rate and an estimate, from the first records on."""

from __future__ import annotations

import io

from rich.console import Console

from archiver.cli.progress import RichProgress, records_rate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rendered(progress: RichProgress) -> str:
    console = Console(file=io.StringIO(), width=200, force_terminal=False, color_system=None)
    console.print(progress.bar.make_tasks_table(progress.bar.tasks))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_elapsed_rate_and_estimate_show_at_one_record_a_second() -> None:
    progress = RichProgress()
    clock = Clock()
    progress.bar.get_time = clock  # type: ignore[method-assign]
    progress.bar.live.console.file = io.StringIO()  # keep the live display out of the test's output
    progress.start("sms-x outgoing", 3600)
    try:
        for _ in range(30):  # 30 records, one a second, as at OVH's default rate
            clock.now += 1.0
            progress.advance(1)
        text = rendered(progress)
    finally:
        progress.finish()
    assert "30/3600" in text
    assert "0:00:30" in text  # elapsed
    assert "1.00/s" in text  # rate
    assert "0:59:30" in text  # estimate: 3570 records left at 1/s


def test_rate_text() -> None:
    assert records_rate(None) == "…/s"
    assert records_rate(0.5) == "0.50/s"
    assert records_rate(1234.4) == "1,234/s"
