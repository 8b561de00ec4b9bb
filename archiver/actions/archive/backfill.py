"""A backfill of one service's direction: a window archived again, without moving the cursor.

The cursor's records known in their final state are not fetched again; nothing of the cycle's state is
saved (a scratch state). It holds the service's lease like a cycle.
"""

from __future__ import annotations

import datetime as dt
import time

from archiver.actions.archive.direction import DirectionRun
from archiver.actions.archive.listing import CreationTimes, union_sorted
from archiver.actions.archive.report import DirectionReport, Progress, counts
from archiver.config import Settings
from archiver.naming import Direction
from archiver.source import OvhSource
from archiver.store import Store
from archiver.store.lease import Lease
from archiver.store.state import CursorState, load_state

__all__ = ["backfill_direction"]


def backfill_direction(
    settings: Settings,
    source: OvhSource,
    store: Store,
    service: str,
    direction: Direction,
    *,
    lease: Lease,
    since: dt.datetime,
    until: dt.datetime,
    progress: Progress,
) -> DirectionReport:
    """Archive one direction's records created in ``[since, until]`` without touching the cursor.

    Records the cursor knows in their final state are not fetched again.
    """
    started = time.monotonic()
    calls_before = source.total_calls
    run = DirectionRun(settings, source, store, service, direction, lease=lease, progress=progress)
    cursor_state = load_state(store, service, direction)
    # A scratch state: known final records are skipped, nothing is saved.
    scratch = CursorState(
        known={k: v for k, v in cursor_state.known.items() if v.final},
        largest_listing=cursor_state.largest_listing,
        listing_cap_seen=cursor_state.listing_cap_seen,
    )
    listed = run.list_ids(since, until, scratch)
    run.remember_from = float("inf")  # the scratch state is thrown away: remember nothing
    lookback = dt.timedelta(hours=settings.archive.lookback_hours)
    run.unsettled_before = (source.now() - lookback).timestamp()
    if run.may_be_cut(listed, scratch):
        run.times = CreationTimes(listed)
    todo = union_sorted(sms_id for sms_id in listed if sms_id not in scratch.known)  # listed is sorted already
    run.report.since, run.report.until = since.isoformat(), until.isoformat()
    run.report.listed = len(listed)
    run.fetch_and_write(todo, scratch, checkpoint=None, window=(since, until))

    def fetch_missing(ids: list[int]) -> None:
        run.fetch_and_write(ids, scratch, checkpoint=None)
        run.report.listed += len(ids)

    run.prove_whole((since, until), listed, scratch, fetch_missing)
    run.report.api_calls = source.total_calls - calls_before
    run.report.seconds = round(time.monotonic() - started, 3)
    if run.report.unsettled:
        run.log.info("status_unsettled", count=run.report.unsettled, kept_as="the last status, archived")
    run.log.info("backfill_done", **counts(run.report))
    return run.report
