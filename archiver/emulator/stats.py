"""Request counters the tests read to check what the archiver asked for (``EmulatorServer.stats``)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class RequestStats:
    """Thread-safe request counters: total, per (method, route template) and per HTTP status.

    A connection dropped on purpose counts under status 0. The control routes are not counted.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._by_route: Counter[tuple[str, str]] = Counter()
        self._by_status: Counter[int] = Counter()

    def record(self, method: str, route: str, status: int) -> None:
        """Count one request."""
        with self._lock:
            self._total += 1
            self._by_route[(method, route)] += 1
            self._by_status[status] += 1

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self._total = 0
            self._by_route.clear()
            self._by_status.clear()

    @property
    def total(self) -> int:
        """Number of requests counted since the last reset."""
        with self._lock:
            return self._total

    def count(self, method: str, route: str) -> int:
        """Requests to one route template, e.g. ``count("GET", "/sms/{sn}/outgoing/{id}")``."""
        with self._lock:
            return self._by_route[(method, route)]

    def status_count(self, status: int) -> int:
        """Requests answered with ``status`` (0 for dropped connections)."""
        with self._lock:
            return self._by_status[status]

    def snapshot(self) -> dict[str, Any]:
        """Return a JSON-ready copy: ``{"total", "by_route": {"GET /path": n}, "by_status": {"200": n}}``."""
        with self._lock:
            return {
                "total": self._total,
                "by_route": {f"{method} {route}": n for (method, route), n in sorted(self._by_route.items())},
                "by_status": {str(status): n for status, n in sorted(self._by_status.items())},
            }
