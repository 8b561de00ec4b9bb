"""A first archive cycle that counts the bytes it writes to its cursor state: run by ``bench/run.py``.

Usage: ``python bench/state_bytes.py STORE_DIR`` with the ``SMS_ARCHIVER_*`` settings of the cycle in
the environment. Prints one JSON line: the checkpoints written, their total and largest size, the
rows archived, and the process's peak RSS (``VmHWM``). In-process, because only a store in front of
the real one can see every state write. ``BENCH_TRACEMALLOC=1`` also reports the peak of Python's own
allocations (slower).

``first_backfill_case`` (imported by ``bench/run.py``) runs it as a child on the first cycle of a
million SMS (issue 12): state bytes written, peak RSS, API requests per record.
"""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.actions.archive import run_archive
from archiver.config import load_settings
from archiver.logs import configure_logging
from archiver.source import OvhSource
from archiver.store import LocalStore

if TYPE_CHECKING:
    from run import Case, Settings


class CountsStateWrites:
    """A local store that counts what is written under ``_state/`` (the cursors, not the lease)."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **options: Any) -> Any:
        if key.startswith("_state/") and not key.endswith("/lease.json"):
            self.sizes.append(len(data))
        return self.inner.put(key, data, **options)


def peak_rss_mib() -> float:
    """This process's peak resident set (``VmHWM``), in MiB.

    Not ``ru_maxrss``: for a child started by fork and exec it keeps the size of the forked image.
    """
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(store_dir: str) -> int:
    traced = os.environ.get("BENCH_TRACEMALLOC") == "1"
    if traced:
        tracemalloc.start()
    configure_logging("warning", "json")
    settings = load_settings()
    store = CountsStateWrites(LocalStore(Path(store_dir)))
    with OvhSource(settings.ovh) as source:
        reports = run_archive(settings, source, store)  # type: ignore[arg-type]
    print(
        json.dumps(
            {
                "checkpoints": len(store.sizes),
                "state_bytes": sum(store.sizes),
                "largest": max(store.sizes, default=0),
                "rows": sum(report.rows_written for report in reports),
                "peak_rss_mib": peak_rss_mib(),
                "python_peak_mib": tracemalloc.get_traced_memory()[1] / 2**20 if traced else None,
            }
        )
    )
    return 0


# The first backfill of issue 12: a million SMS, batch strategy.
STATE_BYTES_LIMIT = 10 * 1024 * 1024
RSS_LIMIT_MIB = 150.0


def first_backfill_case(settings: Settings, n: int, *, label: str = "") -> Case:
    """The first cycle of ``n`` SMS over a year, batch strategy, as a child process (this script).

    Measured: every byte written to the cursor state (checkpoints and the final state), the child's
    peak RSS, and the API requests the emulator counted per record.
    """
    from run import BATCH_SIZE, Case, Emulator, EmulatorSpec, Target, _archive_env, _check, _log, run_measured

    spec = EmulatorSpec(outgoing=n, days=365, latency_ms=settings.latency_ms, rate_limit=None, seed=11)
    _log(f"emulator: {n} records over 365 days, {settings.latency_ms:g} ms latency, for a first backfill")
    store = settings.workdir / f"first-backfill-{n}{label}"
    log_path = settings.workdir / f"first-backfill-{n}{label}.log"
    with Emulator(spec, settings.workdir / f"emulator-first-backfill-{n}.log") as emulator:
        emulator.reset_stats()
        env = _archive_env(emulator, store, "batch", 1000.0, settings.concurrency)
        measured = run_measured([sys.executable, str(Path(__file__).resolve()), str(store)], env, log_path)
        _check(measured, f"bench/state_bytes.py (first backfill of {n})")
        stats = emulator.stats()
    result = json.loads(log_path.read_text(encoding="utf-8").strip().splitlines()[-1])
    requests = int(stats["total"])
    peak = float(result["peak_rss_mib"])
    applies = n >= 1_000_000
    limit = n // BATCH_SIZE + 10
    return Case(
        case="first backfill",
        n=n,
        strategy="batch" + label,
        rows=int(result["rows"]),
        wall=measured.wall,
        requests=requests,
        peak_rss_mib=peak,
        targets=[
            Target(f"rows = N ({result['rows']})", int(result["rows"]) == n),
            Target(
                f"state bytes < 10 MiB ({result['state_bytes']:,} in {result['checkpoints']} writes, "
                f"largest {result['largest']:,})",
                int(result["state_bytes"]) < STATE_BYTES_LIMIT if applies else None,
            ),
            Target(f"requests ≤ N/50 + 10 = {limit} ({requests})", requests <= limit),
            Target(
                f"peak RSS < {RSS_LIMIT_MIB:.0f} MiB ({peak:.1f})" + ("" if applies else "; n/a below 1M"),
                peak < RSS_LIMIT_MIB if applies else None,
            ),
        ],
        by_route=stats["by_route"],
        by_status=stats["by_status"],
        details={"cpu_seconds": measured.cpu_seconds, **result},
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
