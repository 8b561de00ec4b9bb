"""The fault-injection suite's tally, printed at the end of the run.

Short by default (part of every test run); ``CHAOS_TRIALS=50 pytest tests/chaos`` runs
the long form locally.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

TALLY: Counter[str] = Counter()
TRIALS = int(os.environ.get("CHAOS_TRIALS", "4"))


@pytest.fixture
def tally() -> Counter[str]:
    return TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    terminalreporter.section("fault injection summary")
    for key in ("trials", "faults injected", "records lost", "duplicates", "wrong deletions"):
        terminalreporter.write_line(f"{key:>18}: {TALLY[key]}")
    for key, value in sorted(TALLY.items()):
        if key.startswith("fault:"):
            terminalreporter.write_line(f"{key:>18}: {value}")
