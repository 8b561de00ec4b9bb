"""CI's small version of the benchmark (issue 6), so that it cannot rot.

``bench/run.py --quick`` runs once per module, as a subprocess, into a temporary directory. The
checks are about what is deterministic: every case is in the table, every record is archived, and
the API request counts stay within the issue's formulas. There is no assertion on wall time,
speed or memory: the machine is shared and noisy.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICK_N = 300
QUICK_RETRIEVAL_ROWS = 20_000
QUICK_FIRST_BACKFILL_N = 2_000
QUICK_FLEET_SERVICES = 8
STRATEGIES = ("per-id", "batch", "export", "auto")
BATCH_SIZE = 50

pytestmark = pytest.mark.timeout(900)

Row = dict[str, str]


class QuickRun:
    """The table (parsed from the markdown) and the raw numbers (JSON) of one quick run."""

    def __init__(self, markdown: str, document: dict[str, Any]) -> None:
        self.markdown = markdown
        self.document = document
        self.rows = parse_table(markdown)
        self.cases: list[dict[str, Any]] = document["cases"]

    def row(self, case: str, strategy_prefix: str) -> Row:
        found = [row for row in self.rows if row["case"] == case and row["strategy"].startswith(strategy_prefix)]
        assert len(found) == 1, f"expected one {case!r} row for {strategy_prefix!r}, got {len(found)}"
        return found[0]

    def raw(self, case: str, strategy_prefix: str) -> dict[str, Any]:
        found = [item for item in self.cases if item["case"] == case and item["strategy"].startswith(strategy_prefix)]
        assert len(found) == 1
        return found[0]


def parse_table(markdown: str) -> list[Row]:
    """The rows of the first markdown table whose header starts with ``| case | N |``."""
    lines = markdown.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("| case | N |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows: list[Row] = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def number(text: str) -> float:
    """``1,234.5`` or ``1,234 (extrapolated)`` as a number."""
    return float(text.split(" ")[0].replace(",", ""))


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    directory = tmp_path_factory.mktemp("bench")
    output, raw = directory / "results.md", directory / "results.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "run.py"),
        "--quick",
        "--output",
        str(output),
        "--json",
        str(raw),
        "--workdir",
        str(directory / "work"),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=840, check=False)
    assert result.returncode == 0, f"bench/run.py --quick failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return QuickRun(output.read_text(encoding="utf-8"), json.loads(raw.read_text(encoding="utf-8")))


def test_the_table_has_every_case(quick: QuickRun) -> None:
    quick.row("naive", "python-ovh")
    for strategy in STRATEGIES:
        quick.row("backfill", strategy)
        quick.row("steady state", strategy)
    for strategy in ("per-id", "batch", "export"):
        quick.row("rate-limited", strategy)
    quick.row("retrieve", "many overlapping parts per day")
    quick.row("retrieve", "many time-ordered parts per day")
    quick.row("compact", "")
    quick.row("retrieve", "compacted")
    quick.row("retrieve xlsx", "time-ordered")
    quick.row("state bytes, first cycle", "a year of history")
    quick.row("state bytes, first cycle", "a busy account")
    assert "- machine: " in quick.markdown and "- date: " in quick.markdown


def test_numbers_are_plausible(quick: QuickRun) -> None:
    for row in quick.rows:
        assert number(row["wall s"]) > 0, row
        assert 1 < number(row["peak RSS MiB"]) < 4096, row
        if row["API requests"] != "-" and row["requests/record"] != "-":
            ratio = number(row["API requests"]) / number(row["N"])
            assert number(row["requests/record"]) == pytest.approx(ratio, abs=6e-4)  # printed with 3 decimals
        assert row["met?"] in ("yes", "**no**", "-"), row


def test_every_record_is_archived(quick: QuickRun) -> None:
    assert int(number(quick.row("naive", "python-ovh")["rows"])) == QUICK_N
    for strategy in STRATEGIES:
        assert int(number(quick.row("backfill", strategy)["rows"])) == QUICK_N
        steady = quick.raw("steady state", strategy)
        if strategy == "export":
            # Rows that came from the CSV export lack the API-only fields: the first re-check of a
            # record still in flight replaces its export version with the API's. Nothing else.
            assert steady["rows"] <= steady["details"]["rechecked"]
        else:
            # Nothing new and nothing changed: the steady-state cycle rewrites nothing.
            assert steady["rows"] == 0
    for strategy in ("per-id", "batch", "export"):
        assert int(number(quick.row("rate-limited", strategy)["rows"])) == QUICK_N


def test_a_first_cycles_state_bytes_are_counted(quick: QuickRun) -> None:
    for shape in ("a year of history", "a busy account"):
        raw = quick.raw("state bytes, first cycle", shape)
        assert raw["rows"] == raw["details"]["rows"] > 0
        assert raw["details"]["checkpoints"] >= 1
        assert raw["details"]["state_bytes"] >= raw["details"]["final_state_bytes"] > 0


def test_per_id_asks_each_record_once(quick: QuickRun) -> None:
    for case in ("backfill", "rate-limited"):
        raw = quick.raw(case, "per-id")
        assert raw["by_route"]["GET /sms/{sn}/outgoing/{id}"] == QUICK_N
        # The listing, and the two that prove it whole (behind its oldest, ahead of its newest record).
        assert raw["by_route"]["GET /sms/{sn}/outgoing"] <= 3
        assert raw["requests"] <= QUICK_N + 5  # + GET /auth/time, GET /sms, the listings


@pytest.mark.parametrize("strategy", ["batch", "auto"])
def test_batch_stays_within_n_over_50_plus_10(quick: QuickRun, strategy: str) -> None:
    raw = quick.raw("backfill", strategy)
    assert raw["requests"] <= QUICK_N // BATCH_SIZE + 10
    assert raw["by_route"].get("GET /sms/{sn}/outgoing/{ids}", 0) == math.ceil(QUICK_N / BATCH_SIZE)
    assert "GET /sms/{sn}/outgoing/{id}" not in raw["by_route"]


def test_export_uses_a_handful_of_requests(quick: QuickRun) -> None:
    raw = quick.raw("backfill", "export")
    # Never worse than batch, whatever the strategy does today.
    assert raw["requests"] <= QUICK_N // BATCH_SIZE + 10
    if "GET /sms/{sn}/document" not in raw["by_route"]:
        pytest.xfail("the export strategy is not implemented yet: SMS_ARCHIVER_OVH__FETCH=export behaves like batch")
    # One 12-month window; + the 2 listings that prove the first listing whole and the 1 batch call
    # that checks the export's dates against the API (issue 10).
    assert raw["requests"] <= 10 + 2 + 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_cycle_with_nothing_new_makes_two_calls_plus_rechecks(quick: QuickRun, strategy: str) -> None:
    raw = quick.raw("steady state", strategy)
    details = raw["details"]
    rechecked = int(details["rechecked"])
    per_call = 1 if strategy == "per-id" else BATCH_SIZE
    signed = raw["requests"] - raw["by_route"].get("GET /auth/time", 0)
    assert signed <= 2 + math.ceil(rechecked / per_call)
    assert raw["by_route"]["GET /sms/{sn}/outgoing"] == 1


def test_retrieval_returns_every_row_before_and_after_compaction(quick: QuickRun) -> None:
    many = quick.row("retrieve", "many overlapping parts per day")
    ordered = quick.row("retrieve", "many time-ordered parts per day")
    compacted = quick.row("retrieve", "compacted")
    workbook = quick.row("retrieve xlsx", "time-ordered")
    for row in (many, ordered, compacted, workbook):
        assert int(number(row["rows"])) == QUICK_RETRIEVAL_ROWS
    assert "same bytes as the uncompacted layouts (yes)" in compacted["target"]
    parts_before = int(many["strategy"].split(": ")[1].split(" ")[0])
    parts_after = int(compacted["strategy"].split(": ")[1].split(" ")[0])
    assert parts_before > parts_after >= 28  # one part per day of the month once compacted


def test_a_first_backfill_counts_its_state_bytes_and_requests(quick: QuickRun) -> None:
    raw = quick.raw("first backfill", "batch")
    assert raw["rows"] == raw["n"] == QUICK_FIRST_BACKFILL_N
    assert raw["details"]["checkpoints"] >= 1
    assert raw["details"]["state_bytes"] >= raw["details"]["largest"] > 0
    assert raw["requests"] <= QUICK_FIRST_BACKFILL_N // BATCH_SIZE + 10


@pytest.mark.parametrize("fleet", ["1 daemon", "2 daemons", "4 daemons"])
def test_a_fleet_on_one_bucket_archives_every_sms_exactly_once(quick: QuickRun, fleet: str) -> None:
    raw = quick.raw(f"fleet, {QUICK_FLEET_SERVICES} services x 2", fleet)
    exact = raw["details"]["exactness"]
    assert exact["expected"] == raw["n"] > 0
    assert exact["distinct"] == exact["expected"] == raw["rows"]
    assert exact["duplicated"] == exact["missing"] == exact["unexpected"] == 0
    assert len(raw["details"]["services_per_daemon"]) == int(fleet.split()[0])
    assert raw["details"]["returncodes"] == [0] * int(fleet.split()[0])  # each stopped cleanly by SIGTERM
