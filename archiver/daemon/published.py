"""The status document a daemon publishes to ``_state/_daemons/{host}.json`` for ``sms-archiver status``.

Published when the daemon is ready, after each job, and once stopped. Its fields are read by
``sms-archiver status`` (``archiver.actions.status``), from any machine that can read the archive:

    host, pid, version, state (starting | running | stopping | stopped), started_at, updated_at,
    services, metrics (the listen address, or null),
    jobs: {name: {schedule, next_run, last_started, last_finished, last_outcome, last_error,
                  last_summary, last_seconds, last_run_id, last_success}},
    last_cycle: [{service, direction, listed, fetched, rows_written, parts_written, malformed,
                  finished_at, skipped}]

Status is for people: a failed publish is logged (``status_publish_failed``) and the daemon goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import structlog

from archiver import __version__
from archiver.daemon.runner import JobRecord, iso
from archiver.errors import ArchiverError
from archiver.store import Store
from archiver.store.layout import daemon_status_key

__all__ = ["Publisher", "status_document"]

log = structlog.get_logger()


def status_document(
    *,
    host: str,
    state: str,
    started_at: dt.datetime,
    services: list[str],
    plan: Mapping[str, str],
    next_runs: Mapping[str, str | None],
    records: Mapping[str, JobRecord],
    last_cycle: list[dict[str, Any]],
    metrics_listen: str | None,
) -> dict[str, Any]:
    """The document for ``sms-archiver status``: one entry per planned job, with its next and last run."""
    jobs = {
        name: {"schedule": spec, "next_run": next_runs.get(name), **asdict(records.get(name, JobRecord()))}
        for name, spec in plan.items()
    }
    return {
        "host": host,
        "pid": os.getpid(),
        "version": __version__,
        "state": state,
        "started_at": iso(started_at),
        "updated_at": iso(dt.datetime.now(dt.UTC)),
        "services": services,
        "jobs": jobs,
        "last_cycle": last_cycle,
        "metrics": metrics_listen or None,
    }


class Publisher:
    """Writes a host's status document; documents are written in the order they are built."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._lock = threading.Lock()

    def publish(self, store: Store, build: Callable[[], dict[str, Any]]) -> None:
        """Build the document (``build()``) and write it, both under one lock; log a failure, never raise."""
        try:
            with self._lock:
                data = json.dumps(build(), indent=2, sort_keys=True).encode()
                store.put(daemon_status_key(self.host), data)
        except ArchiverError as error:
            # Status is for people; the archive does not depend on it.
            log.warning("status_publish_failed", error=str(error))
