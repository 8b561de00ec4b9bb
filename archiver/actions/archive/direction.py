"""Archiving one service's direction: window, listing and its proof, fetch, parts, cursor.

See the package's docstring for the steps; docs/ovh-api.md, "Listings", for the proof of a whole listing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import time
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from typing import Any

import structlog

from archiver.actions.archive.listing import CreationTimes, IdArray, ids_to_fetch, sorted_ids
from archiver.actions.archive.report import DirectionReport, Progress, StopSignal, counts
from archiver.config import Settings
from archiver.errors import CycleInterrupted, ListingCutError, MalformedRecordError
from archiver.manifest import record_parts
from archiver.memory import release_free_memory
from archiver.naming import Direction
from archiver.records import Record, parse_api_record, parse_export_row
from archiver.source import GONE, ExportUnavailable, OvhSource
from archiver.store import Store
from archiver.store.lease import Lease
from archiver.store.state import CursorState, DoneRanges, Known, load_state, save_state
from archiver.writer import write_parts

__all__ = ["DirectionRun", "archive_direction", "row_digest"]

log = structlog.get_logger()


def row_digest(record: Record) -> str:
    """A short digest of a row, to tell whether a re-fetched record changed."""
    return hashlib.sha256("\x1f".join(record.fields).encode()).hexdigest()[:16]


def _local_time_unsure(row: Mapping[str, str], zone: zoneinfo.ZoneInfo) -> bool:
    """Whether a zone-less date of an export row is ambiguous (DST fold) or absent (DST gap) in ``zone``."""
    for column in ("date", "sentAt", "deliveredAt"):
        try:
            value = dt.datetime.fromisoformat((row.get(column) or "").strip())
        except ValueError:
            continue
        if (
            value.tzinfo is None
            and value.replace(tzinfo=zone).utcoffset() != value.replace(tzinfo=zone, fold=1).utcoffset()
        ):
            return True
    return False


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DirectionRun:
    """The work of one cycle (or backfill) for one service and direction."""

    def __init__(
        self,
        settings: Settings,
        source: OvhSource,
        store: Store,
        service: str,
        direction: Direction,
        *,
        lease: Lease,
        progress: Progress,
        stop: StopSignal | None = None,
    ) -> None:
        self.stop = stop
        # Records created before this (unix time) are not kept in the cursor's known set.
        self.remember_from = 0.0
        # Records created before this (unix time) are past their re-checks: one fetched with a status
        # that is not final is archived as it is and reported as unsettled.
        self.unsettled_before = 0.0
        # The creation times of the records of a listing being proven whole (None: no listing to prove).
        self.times: CreationTimes | None = None
        self.settings = settings
        self.source = source
        self.store = store
        self.service = service
        self.direction = direction
        self.lease = lease
        self.progress = progress
        self.report = DirectionReport(service, direction, account=settings.account_name)
        self.log = log.bind(service=service, direction=direction, account=settings.account_name)

    def fetch_and_write(
        self,
        ids: Sequence[int],
        state: CursorState,
        *,
        checkpoint: Callable[[CursorState], None] | None,
        window: tuple[dt.datetime | None, dt.datetime] | None = None,
    ) -> None:
        """Fetch ``ids``; write what is new or changed; update ``state`` as each chunk lands.

        With ``fetch = export`` and many ids, rows come from OVH's CSV export of ``window`` first;
        the ids it does not cover are then fetched from the API.
        """
        self.progress.start(f"{self.service} {self.direction}", len(ids))
        if window is not None and self._export_worthwhile(len(ids)):
            covered = self._write_from_export(set(ids), state, window, checkpoint)
            ids = sorted_ids(sms_id for sms_id in ids if sms_id not in covered)
        size = self.settings.archive.chunk_size
        count = math.ceil(len(ids) / size)
        # Chunk by chunk (slices of ``ids`` made one at a time): a million ids are never copied whole.
        for index, chunk in enumerate(_chunks(ids, size)):
            fetched: dict[int, Record] = {}
            for sms_id, raw in self.source.fetch(self.service, self.direction, chunk):
                # A chunk at a low rate can outlast the lease: renew as we go (no I/O unless due).
                self.lease.renew_if_due()
                self.progress.advance(1)
                if raw is GONE:
                    self.report.gone += 1
                    state.known.pop(sms_id, None)
                    state.retry.discard(sms_id)
                    continue
                record = self._parse(sms_id, raw, state)
                if record is not None:
                    fetched[sms_id] = record
            self._land(fetched, chunk, state)
            del fetched
            if len(chunk) == size:  # a long fetch: the freed answers and records of a chunk give their pages back
                release_free_memory()
            self._after_chunk(0, state, checkpoint, more=index < count - 1)
        self.progress.finish()

    def list_ids(self, since: dt.datetime | None, until: dt.datetime, state: CursorState) -> IdArray:
        """One id listing, sorted (each id once); remember the longest listing OVH has answered.

        The longest listing is what proves others whole; it counts the ids as OVH answered them. The
        answer's list of Python ints is dropped as soon as its compact copy exists (see listing.py).
        """
        answer = self.source.list_ids(self.service, self.direction, since=since, until=until)
        self.report.listings += 1
        state.largest_listing = max(state.largest_listing, len(answer))
        return sorted_ids(answer)

    def may_be_cut(self, ids: Sized, state: CursorState) -> bool:
        """Whether a listing may have been cut by OVH: unless OVH once answered a longer one, it may.

        Whether OVH caps id listings, at what size and at which end, is UNKNOWN (docs/ovh-api.md,
        "Listings"). A cut listing holds as many ids as the cap, and the cap is at least the length
        of every listing OVH has answered; so a listing shorter than the longest one seen is whole.
        """
        return len(ids) >= max(1, state.largest_listing)

    def prove_whole(
        self,
        window: tuple[dt.datetime | None, dt.datetime],
        answer: Sequence[int],
        state: CursorState,
        fetch: Callable[[list[int]], None],
    ) -> None:
        """Make sure no SMS of ``window`` is missing from ``answer`` (already fetched); fetch those that are.

        A listing cut by OVH keeps its newest or its oldest ids (which one is UNKNOWN). So list again
        behind the oldest record and ahead of the newest; fetch whatever is new, and prove those
        listings whole in turn, until nothing new comes back. Costs nothing for a listing shorter than
        the longest OVH answered; two listings for an uncut one; more only when OVH really cuts.

        A listing that comes back full with nothing new holds SMS sharing its edge second: listed
        again strictly beyond that second, whatever hides there is found. Once OVH has been seen
        cutting listings (``state.listing_cap_seen``), an edge second holding as many SMS as a cut
        listing may hide more in that very second, which no listing can show: ``ListingCutError``,
        naming the window and the second, before any cursor moves. Without such evidence the burst
        is taken as whole (docs/ovh-api.md, "Listings": the one case listings cannot tell).
        """
        times = self.times
        if times is None or not self.may_be_cut(answer, state):
            return
        pending: list[tuple[tuple[dt.datetime | None, dt.datetime], Sequence[int]]] = [(window, answer)]
        while pending:  # bounded: every round that adds work adds ids never seen before
            (low, high), ids = pending.pop()
            if not self.may_be_cut(ids, state):
                continue
            # Records an interrupted run wrote are not fetched again, so their times may be unknown: the
            # span of the others lies inside the true one, so the listings below only look wider.
            span = self._span_of(ids, state)
            if span is None:
                self._burst_fits(len(ids), (low, high), None, state)
                continue
            oldest, newest = math.floor(span[0]), math.floor(span[1])
            # OVH's instants are whole seconds and both bounds are inclusive: each edge second is listed.
            edges = (
                ((low, _instant(oldest)), oldest, (low, _instant(oldest - 1))),
                ((_instant(newest), high), newest, (_instant(newest + 1), high)),
            )
            for probe_window, edge, beyond_window in edges:
                probe = self.list_ids(*probe_window, state)
                if self._fetch_new(probe, ids, probe_window, pending, fetch, state):
                    continue
                if not self.may_be_cut(probe, state):
                    continue
                # Full with nothing new. What hides beyond the edge second?
                if _nonempty(beyond_window):
                    beyond = self.list_ids(*beyond_window, state)
                    self._fetch_new(beyond, ids, beyond_window, pending, fetch, state)
                if self._all_in_second(probe, edge, state):
                    self._burst_fits(len(probe), probe_window, edge, state)

    def _fetch_new(
        self,
        probe: Sequence[int],
        listing: Sequence[int],
        probe_window: tuple[dt.datetime | None, dt.datetime],
        pending: list[tuple[tuple[dt.datetime | None, dt.datetime], Sequence[int]]],
        fetch: Callable[[list[int]], None],
        state: CursorState,
    ) -> bool:
        """Fetch the ids of a probe never seen before, and queue the probe to be proven in turn.

        Such ids prove that ``listing``, whose window holds them, was cut: at its length.
        """
        assert self.times is not None
        fresh = sorted({sms_id for sms_id in probe if sms_id not in self.times})
        if not fresh:
            return False
        seen_cap = state.listing_cap_seen
        state.listing_cap_seen = min(seen_cap, len(listing)) if seen_cap else len(listing)
        self.times.track(fresh)
        fetch(fresh)
        pending.append((probe_window, probe))
        return True

    def _burst_fits(
        self, count: int, window: tuple[dt.datetime | None, dt.datetime], second: int | None, state: CursorState
    ) -> None:
        """Raise ``ListingCutError`` if a full listing's edge second may hide more SMS than it showed."""
        if not state.listing_cap_seen or count < state.listing_cap_seen:
            return
        where = f"the second {_instant(second).isoformat()}" if second is not None else "records that could not be read"
        raise ListingCutError(
            f"OVH's listing of {self.service} {self.direction} SMS created in {_span(*window)} came back full "
            f"({count} ids, as many as OVH was seen to cut a listing at) with nothing new: more SMS may share "
            f"{where} than OVH lists at once; the cursor stays before this window"
        )

    def _span_of(self, ids: Iterable[int], state: CursorState) -> tuple[float, float] | None:
        """The oldest and newest known creation instants of ``ids`` (None if none is known), in O(1) memory."""
        span: tuple[float, float] | None = None
        for sms_id in ids:
            created = self._created(sms_id, state)
            if created is None:
                continue
            span = (created, created) if span is None else (min(span[0], created), max(span[1], created))
        return span

    def _all_in_second(self, ids: Sequence[int], second: int, state: CursorState) -> bool:
        """Whether every one of these (fetched) records was created in that second: a burst."""
        return all((created := self._created(sms_id, state)) is None or math.floor(created) == second for sms_id in ids)

    def _created(self, sms_id: int, state: CursorState) -> float | None:
        created = self.times.get(sms_id) if self.times is not None else None
        if created is None and (known := state.known.get(sms_id)) is not None:
            created = known.created
        return created

    def _export_worthwhile(self, count: int) -> bool:
        # A document costs a handful of calls: worth it only when batch would need more.
        return self.settings.ovh.fetch == "export" and count > 5 * self.settings.ovh.batch_size

    def _write_from_export(
        self,
        wanted: set[int],
        state: CursorState,
        window: tuple[dt.datetime | None, dt.datetime],
        checkpoint: Callable[[CursorState], None] | None,
    ) -> set[int]:
        """Write the export's rows for ``wanted`` ids in chunks; return the ids written (or known).

        The export's dates carry no zone, and whether its ``date`` is the creation time is UNKNOWN
        (OVH API notes, "CSV history export"). So before its first chunk lands, a sample of the rows
        is compared with the API's ``creationDatetime`` (one batch call); if any differs, no row of
        the export is used. A row whose local time is ambiguous or does not exist in the API's zone
        (the DST fold or gap) is left to the API.
        """
        covered: set[int] = set()
        chunk: dict[int, Record] = {}
        checked = False
        zone = self.source.api_zone
        try:
            for row in self.source.export_rows(self.service, self.direction, since=window[0], until=window[1]):
                try:
                    record = parse_export_row(self.direction, row, zone=zone)
                except MalformedRecordError as error:
                    self.log.warning("export_row_skipped", reason=str(error), fallback="API")
                    continue
                if record.id not in wanted or record.id in covered or record.id in chunk:
                    continue
                if _local_time_unsure(row, zone):
                    continue  # the API says which of the two instants (or none) it is
                chunk[record.id] = record
                if len(chunk) >= self.settings.archive.chunk_size:
                    if not checked and not self._export_dates_agree(chunk):
                        return covered
                    checked = True
                    self._land(chunk, list(chunk), state)
                    covered.update(chunk)
                    self._after_chunk(len(chunk), state, checkpoint, more=True)  # the API path follows
                    chunk = {}
        except ExportUnavailable as error:
            self.log.warning("export_unavailable", reason=str(error), fallback="batch")
        if chunk and (checked or self._export_dates_agree(chunk)):
            self._land(chunk, list(chunk), state)
            covered.update(chunk)
            self.progress.advance(len(chunk))
        self.report.from_export += len(covered)
        return covered

    def _export_dates_agree(self, chunk: dict[int, Record]) -> bool:
        """Compare the export's dates of a sample of ``chunk`` (spread over it) with the API's."""
        ids = sorted(chunk)
        size = self.settings.ovh.batch_size
        sample = ids[:: max(1, len(ids) // size)][:size]
        for sms_id, raw in self.source.fetch(self.service, self.direction, sample):
            if raw is GONE:
                continue
            try:
                live = parse_api_record(
                    self.direction, raw, api_zone=self.source.api_zone, ptt_text=self.source.ptt_text
                )
            except MalformedRecordError:
                continue  # the API path reports it
            if live.created != chunk[sms_id].created:
                self.log.warning(
                    "export_dates_untrusted",
                    sms_id=sms_id,
                    export_date=chunk[sms_id].get("date"),
                    api_date=live.get("date"),
                    fallback="API",
                )
                return False
        return True

    def _parse(self, sms_id: int, raw: Any, state: CursorState) -> Record | None:
        try:
            record = parse_api_record(self.direction, raw, api_zone=self.source.api_zone, ptt_text=self.source.ptt_text)
            if record.id != sms_id:
                raise MalformedRecordError(f"asked for id {sms_id}, the API answered id {record.id}")
        except MalformedRecordError as error:
            self.report.malformed += 1
            state.retry.add(sms_id)
            self.log.error("record_malformed", sms_id=sms_id, reason=str(error))
            return None
        return record

    def _land(self, fetched: dict[int, Record], chunk: Sequence[int], state: CursorState) -> None:
        """Write the new or changed records of a chunk, then let the state learn about them."""
        self.report.fetched += len(fetched)
        changed = [
            record
            for record in fetched.values()
            if record.id not in state.known or state.known[record.id].digest != row_digest(record)
        ]
        entries = write_parts(self.store, self.settings.archive, self.service, self.direction, changed)
        record_parts(self.store, self.service, self.direction, entries)
        # Only now, with the parts and manifests durable, may the state learn about these records.
        for record in fetched.values():
            created = record.created.timestamp()
            if self.times is not None:
                self.times.note(record.id, created)
            if not record.final and created < self.unsettled_before:
                self.report.unsettled += 1
            # Only what the next window may list again is worth remembering (keeps a backfill's state small).
            if created >= self.remember_from:
                state.known[record.id] = Known(created, record.final, row_digest(record))
            state.retry.discard(record.id)
        state.partial_done.add(chunk)
        self.report.rows_written += len(changed)
        self.report.parts_written += len(entries)

    def _after_chunk(
        self, size: int, state: CursorState, checkpoint: Callable[[CursorState], None] | None, *, more: bool
    ) -> None:
        """Checkpoint and renew the lease between chunks; stop here if asked and more work remains."""
        if checkpoint is not None and more:
            checkpoint(state)
        self.lease.renew_if_due()
        self.progress.advance(size)
        if more and self.stop is not None and self.stop.is_set():
            self.progress.finish()
            raise CycleInterrupted(
                f"stopped at a safe point, {len(state.partial_done)} records durable (progress saved)"
            )


def _instant(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _nonempty(window: tuple[dt.datetime | None, dt.datetime]) -> bool:
    return window[0] is None or window[0] <= window[1]


def _span(low: dt.datetime | None, high: dt.datetime) -> str:
    start = low.astimezone(dt.UTC).isoformat(timespec="seconds") if low else "the beginning"
    return f"[{start}, {high.astimezone(dt.UTC).isoformat(timespec='seconds')}]"


def _window_start(settings: Settings, state: CursorState, until: dt.datetime) -> dt.datetime | None:
    lookback = dt.timedelta(hours=settings.archive.lookback_hours)
    start = settings.archive.start
    floor = dt.datetime.combine(start, dt.time(0), tzinfo=settings.archive.zone) if start else None
    if state.cursor is None:
        return floor
    since = min(state.cursor, until) - lookback
    return max(since, floor) if floor else since


def archive_direction(
    settings: Settings,
    source: OvhSource,
    store: Store,
    service: str,
    direction: Direction,
    *,
    lease: Lease,
    now: dt.datetime,
    progress: Progress,
    stop: StopSignal | None = None,
) -> DirectionReport:
    """Run one cycle for one service and direction; move the cursor only once all is durable.

    With ``stop`` set, the cycle stops after the chunk in progress, checkpointed, and raises
    ``CycleInterrupted``; the next cycle resumes it.
    """
    started = time.monotonic()
    calls_before = source.total_calls
    run = DirectionRun(settings, source, store, service, direction, lease=lease, progress=progress, stop=stop)
    state = load_state(store, service, direction)
    # An interrupted cycle is resumed with its own window, so its chunks (and part names) repeat.
    until = state.partial_until or now - dt.timedelta(seconds=settings.archive.settle_seconds)
    since = _window_start(settings, state, until)
    run.report.since = since.isoformat() if since else None
    run.report.until = until.isoformat()

    listed = run.list_ids(since, until, state)
    lookback_floor = (until - dt.timedelta(hours=settings.archive.lookback_hours)).timestamp()
    if run.may_be_cut(listed, state):
        run.times = CreationTimes(listed)  # proving the listing whole needs the creation times of its records
    todo, run.report.rechecked = ids_to_fetch(listed, state, lookback_floor)
    run.report.listed = len(listed)
    state.partial_until = until
    # The next window starts at until - lookback; a day of margin covers offsets and clock differences.
    keep_from = lookback_floor - 86_400
    run.remember_from = run.unsettled_before = keep_from

    # Checkpoints carry the progress (id ranges: a few bytes) and what the cursor remembered when the
    # cycle began, not what it learns meanwhile: a busy account's first cycle would write every record
    # it has seen at every chunk (quadratic). After a crash, the records made durable since are only
    # unknown to the cursor: the next cycle fetches them again, and readers keep one row per id.
    remembered = dict(state.known)

    def checkpoint(current: CursorState) -> None:
        save_state(store, service, direction, dataclasses.replace(current, known=remembered), lease=lease)

    # In id order, so that the chunks made durable are consecutive ranges (see state.DoneRanges).
    run.fetch_and_write(todo, state, checkpoint=checkpoint, window=(since, until))
    del todo

    def fetch_missing(ids: list[int]) -> None:
        run.fetch_and_write(ids, state, checkpoint=checkpoint)
        run.report.listed += len(ids)

    run.prove_whole((since, until), listed, state, fetch_missing)
    # The listing and its creation times are done with: free them (and their pages) before the final state is built.
    del listed
    run.times = None
    release_free_memory()

    # SMS whose status never settled within the lookback leave the re-checks: archived as they are.
    run.report.unsettled += sum(1 for known in state.known.values() if not known.final and known.created < keep_from)
    if run.report.unsettled:
        run.log.info("status_unsettled", count=run.report.unsettled, kept_as="the last status, archived")
    # Forgotten in place: a copy of the remembered records (90,000 after a first backfill of a million) would
    # stand beside them while the final state is written.
    for sms_id in [sms_id for sms_id, known in state.known.items() if known.created < keep_from]:
        del state.known[sms_id]
    state.cursor = until
    state.partial_until = None
    state.partial_done = DoneRanges()
    run.report.api_calls = source.total_calls - calls_before
    run.report.seconds = round(time.monotonic() - started, 3)
    run.report.finished_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    state.last_cycle = run.report.as_dict()
    save_state(store, service, direction, state, lease=lease)
    run.log.info("cursor_advanced", cursor=until.isoformat(), **counts(run.report))
    return run.report
