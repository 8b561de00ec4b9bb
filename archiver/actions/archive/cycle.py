"""An archive cycle over every service (several at once), and backfills; a service another instance holds is skipped."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import structlog

from archiver.actions.archive.backfill import backfill_direction
from archiver.actions.archive.direction import archive_direction
from archiver.actions.archive.report import DirectionReport, Progress, SilentProgress, StopSignal
from archiver.config import Settings
from archiver.errors import CycleInterrupted, LeaseHeldError
from archiver.services import services_at_ovh
from archiver.source import OvhSource
from archiver.store import Store
from archiver.store.lease import Lease

__all__ = ["every_service_held", "run_archive", "run_backfill"]

log = structlog.get_logger()


class _EitherSet:
    """Set when either signal is: the caller's stop, or a failure of another service of the cycle."""

    def __init__(self, *signals: StopSignal | None) -> None:
        self.signals = [signal for signal in signals if signal is not None]

    def is_set(self) -> bool:
        return any(signal.is_set() for signal in self.signals)


def run_archive(
    settings: Settings,
    source: OvhSource,
    store: Store,
    *,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
) -> list[DirectionReport]:
    """Archive every configured service and direction once; raise the first failure.

    Up to ``archive.service_concurrency`` services at once (one at a time with a ``progress`` to
    show), under the source's one rate limiter. A
    service whose lease another live instance holds (or takes over mid-way) is left to it for this
    cycle: reported (``service_skipped``, a report with ``skipped``) and the cycle goes on with the
    others, so several instances on one bucket share the services (``every_service_held`` tells when
    they held them all). A failure stops the other services at their next safe point, and leaves each
    cursor where its last durable data put it. ``stop`` (set by a signal handler) ends the cycle at the
    next safe point with ``CycleInterrupted``. Reports come in service order; with several services at
    once, a report's ``api_calls`` counts every call made while it ran.
    """
    # OVH's clock, not ours: windows and cursors are compared with OVH's timestamps.
    offset = source.clock_offset_seconds()
    now = now or source.now()
    services = services_at_ovh(settings.ovh, source)
    failed = threading.Event()
    halt = _EitherSet(stop, failed)

    def one_service(service: str) -> list[DirectionReport]:
        try:
            return _archive_service(settings, source, store, service, now=now, progress=progress, stop=halt)
        except BaseException:
            failed.set()  # the others stop at their next safe point
            raise

    # A progress bar follows one service at a time: at a terminal, services take turns.
    workers = 1 if progress is not None else max(1, min(settings.archive.service_concurrency, len(services)))
    if workers == 1:
        per_service = [one_service(service) for service in services]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="service") as pool:
            futures = [pool.submit(one_service, service) for service in services]
            wait(futures)
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:
            # The first real failure, not the interruptions it caused in the other services.
            raise next((error for error in errors if not isinstance(error, CycleInterrupted)), errors[0])
        per_service = [future.result() for future in futures]
    reports = [report for service_reports in per_service for report in service_reports]
    for report in reports:
        report.clock_offset_seconds = offset
    return reports


def every_service_held(reports: Sequence[DirectionReport]) -> str | None:
    """Why a cycle did nothing because other instances held every service (None if it did something).

    The one-shot command turns this into exit status 75; a daemon in a fleet takes it as a cycle
    done: the others are archiving.
    """
    if not reports or not all(report.skipped for report in reports):
        return None
    held = sorted({report.service for report in reports})
    if len(held) == 1:
        return reports[0].skipped
    return f"every service is being archived by other instances ({', '.join(held)}); nothing to do this cycle"


def _archive_service(
    settings: Settings,
    source: OvhSource,
    store: Store,
    service: str,
    *,
    now: dt.datetime,
    progress: Progress | None,
    stop: StopSignal,
) -> list[DirectionReport]:
    """Archive one service's directions under its lease; a lease held elsewhere gives skipped reports."""
    reports: list[DirectionReport] = []
    try:
        with Lease.on_service(store, service, settings.lease) as lease:
            for direction in settings.archive.directions:
                if stop.is_set():
                    raise CycleInterrupted("stopped between services/directions")
                reports.append(
                    archive_direction(
                        settings,
                        source,
                        store,
                        service,
                        direction,
                        lease=lease,
                        now=now,
                        progress=progress or SilentProgress(),
                        stop=stop,
                    )
                )
    except LeaseHeldError as error:
        log.warning("service_skipped", service=service, reason=str(error))
        finished = {report.direction for report in reports}
        reports.extend(
            DirectionReport(service, direction, account=settings.account_name, skipped=str(error))
            for direction in settings.archive.directions
            if direction not in finished
        )
    return reports


def run_backfill(
    settings: Settings,
    source: OvhSource,
    store: Store,
    *,
    since: dt.datetime,
    until: dt.datetime,
    progress: Progress | None = None,
) -> list[DirectionReport]:
    """Archive every record created in ``[since, until]`` without touching the cursor.

    Records the cursor knows in their final state are not fetched again.
    """
    reports: list[DirectionReport] = []
    for service in services_at_ovh(settings.ovh, source):
        with Lease.on_service(store, service, settings.lease) as lease:
            for direction in settings.archive.directions:
                reports.append(
                    backfill_direction(
                        settings,
                        source,
                        store,
                        service,
                        direction,
                        lease=lease,
                        since=since,
                        until=until,
                        progress=progress or SilentProgress(),
                    )
                )
    return reports
