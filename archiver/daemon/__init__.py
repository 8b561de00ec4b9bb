"""``sms-archiver run``: the long-running daemon. Scheduling, signals, sd_notify, health; no business rules.

The daemon reaches the actions (``archiver.actions``) and opens the store and the OVH source; it
reads and writes no part itself. One concern per module:

- ``service.py``: ``run_daemon`` and the ``Daemon``'s life: start, signals, readiness, the
  watchdog's health, stop and the shut-down deadline;
- ``startup.py``: the start-up check systemd waits for before ``READY=1`` (both sides answer);
- ``scheduler.py``: when the jobs run (APScheduler triggers anchored at midnight, catch-up runs);
- ``jobs.py``: the scheduled jobs (archive, retention after an archive, compact, verify) and
  what each does with its action;
- ``runner.py``: how a job runs: one at a time, with a run id, its outcome logged, counted, recorded;
- ``published.py``: the status document written to the bucket for ``sms-archiver status``;
- ``notify.py``: systemd's notify protocol (``READY=1``, ``STATUS=``, the watchdog heartbeat).

The Prometheus metrics and ``/healthz`` live in ``archiver/metrics.py``: the container's
HEALTHCHECK runs ``python -m archiver.metrics`` too.
"""

from __future__ import annotations

from archiver.daemon.service import Daemon, run_daemon

__all__ = ["Daemon", "run_daemon"]
