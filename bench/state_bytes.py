"""A first archive cycle that counts the bytes it writes to its cursor state: run by ``bench/run.py``.

Usage: ``python bench/state_bytes.py STORE_DIR`` with the ``SMS_ARCHIVER_*`` settings of the cycle in
the environment. Prints one JSON line: the checkpoints written, their total and largest size, and the
rows archived. In-process, because only a store in front of the real one can see every state write.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from archiver.actions.archive import run_archive
from archiver.config import load_settings
from archiver.logs import configure_logging
from archiver.source import OvhSource
from archiver.store import LocalStore


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


def main(store_dir: str) -> int:
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
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
