"""Retention over an archive with a share of its SMS due (issue 12, "Linear costs"): bytes read, wall time.

Two halves:

- ``retention_cases`` (called by ``bench/run.py``, case group ``retention``): an emulator holding N
  outgoing SMS spread over a year, archived by ``sms-archiver archive`` (batch strategy) into a local
  archive, then a retention run (dry run: deciding reads all it must read; the DELETE calls read no
  archive byte) whose policy makes about 10% of the SMS due (older than 90% of the history's depth);
- ``main`` (``python bench/retention_bench.py STORE_DIR``, the measured child): that retention run,
  in-process behind a store that counts every byte it reads (``get`` and ``open``, parts, manifests,
  state and lease alike), printing one JSON line.

The ratio is bytes read / the archive's size (every object under the service's data folder: parts
and manifests); the issue's target is at most 1.0: each part read at most once, and only the parts
that can hold a due id.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from bench.run import Case, Settings

DUE_SHARE = 0.10  # the "10% due"
RETENTION_DAYS = 365  # history depth of the emulator's data


class _CountedStream:
    """A readable stream that adds what it gives to its store's count."""

    def __init__(self, inner: BinaryIO, counter: CountsBytesRead) -> None:
        self.inner = inner
        self.counter = counter

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.counter.bytes_read += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        count: int = self.inner.readinto(buffer)
        self.counter.bytes_read += count
        return count

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __enter__(self) -> _CountedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.inner.close()


class CountsBytesRead:
    """A store in front of another that counts the bytes read from it, and the reads of each key."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.bytes_read = 0
        self.reads: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> bytes:
        data: bytes = self.inner.get(key)
        self.reads[key] += 1
        self.bytes_read += len(data)
        return data

    def open(self, key: str) -> Any:
        self.reads[key] += 1
        return _CountedStream(self.inner.open(key), self)


def main(store_dir: str) -> int:
    """One retention run (dry run) with the settings of the environment; prints one JSON line."""
    from archiver.actions.retention import run_retention
    from archiver.config import load_settings
    from archiver.logs import configure_logging
    from archiver.source import OvhSource
    from archiver.store import LocalStore
    from archiver.store.layout import parse_part_key

    configure_logging("warning", "json")
    settings = load_settings()
    inner = LocalStore(Path(store_dir))
    archive_bytes = 0
    parts = 0
    for service in settings.ovh.services:
        for info in inner.list(f"{service}/"):
            archive_bytes += info.size
            parts += parse_part_key(info.key) is not None
    store = CountsBytesRead(inner)
    started = time.perf_counter()
    with OvhSource(settings.ovh) as source:
        report = run_retention(settings, source, store, apply=False)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    part_reads = {key: count for key, count in store.reads.items() if parse_part_key(key) is not None}
    print(
        json.dumps(
            {
                "seconds": seconds,
                "bytes_read": store.bytes_read,
                "archive_bytes": archive_bytes,
                "parts": parts,
                "parts_read": len(part_reads),
                "most_reads_of_a_part": max(part_reads.values(), default=0),
                "due": len(report.decisions),
                "eligible": report.count("delete"),
                "kept": report.count("keep"),
            }
        )
    )
    return 0


def retention_cases(settings: Settings) -> list[Case]:
    """Archive N SMS from the emulator, then measure one retention run with about 10% of them due."""
    from bench.run import (
        SERVICE,
        Case,
        Emulator,
        EmulatorSpec,
        Target,
        _archive_env,
        _check,
        _log,
        _manifest_rows,
        _rows_target,
        run_measured,
    )

    n = settings.retention_n
    spec = EmulatorSpec(outgoing=n, days=RETENTION_DAYS, latency_ms=0, rate_limit=None, seed=5)
    store = settings.workdir / "archive-retention"
    _log(f"emulator: {n} records over {RETENTION_DAYS} days, for retention")
    with Emulator(spec, settings.workdir / "emulator-retention.log") as emulator:
        env = _archive_env(emulator, store, "batch", 1000.0, settings.concurrency)
        _log(f"retention: archiving {n} records (batch)")
        archived = run_measured([sys.executable, "-m", "archiver", "archive"], env, settings.workdir / "ret-arch.log")
        _check(archived, "sms-archiver archive (retention)")
        rows = _manifest_rows(store)
        # SMS older than 90% of the history's depth are due: about 10% of them.
        policy_days = round(RETENTION_DAYS * (1 - DUE_SHARE))
        env.update(
            {
                "SMS_ARCHIVER_OVH__SERVICES": SERVICE,
                "SMS_ARCHIVER_RETENTION__DIRECTIONS": "outgoing",
                "SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS": str(policy_days),
            }
        )
        _log(f"retention over {rows} archived SMS, policy {policy_days} days (dry run)")
        log_path = settings.workdir / "retention.log"
        measured = run_measured([sys.executable, str(ROOT / "bench" / "retention_bench.py"), str(store)], env, log_path)
        _check(measured, "bench/retention_bench.py")
    result = json.loads(log_path.read_text(encoding="utf-8").strip().splitlines()[-1])
    ratio = result["bytes_read"] / max(result["archive_bytes"], 1)
    return [
        Case(
            case="retention (dry run)",
            n=n,
            strategy=f"{result['due']:,} due ({result['due'] / max(rows, 1):.0%}), policy {policy_days} days",
            rows=rows,
            wall=measured.wall,
            requests=None,
            peak_rss_mib=measured.peak_rss_mib,
            targets=[
                _rows_target(rows, n),
                Target(
                    f"bytes read / archive size ≤ 1.0 ({ratio:.3f}: {result['bytes_read']:,} of "
                    f"{result['archive_bytes']:,}; {result['parts_read']} of {result['parts']} parts read, "
                    f"each at most {result['most_reads_of_a_part']}x); retention itself {result['seconds']:.1f} s",
                    ratio <= 1.0,
                ),
            ],
            details={"cpu_seconds": measured.cpu_seconds, "archive_seconds": archived.wall, **result},
        )
    ]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
