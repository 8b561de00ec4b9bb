"""One archive cycle, and backfills: from the OVH API to dated CSV parts, then the cursor.

- ``cycle.py``: ``run_archive`` and ``run_backfill`` over the services, several at once;
- ``direction.py``: one service's direction, steps 1 to 4 below; ``backfill.py``: a window again, cursor untouched;
- ``listing.py``: listed ids as sorted arrays, the ids a cycle fetches, the listing proof's creation times;
- ``report.py``: what a run reports, and its progress.

For each service (under its lease) and direction:

1. window: ``until = now - settle``; ``since = cursor - lookback`` (first run: the configured
   start, or everything the API returns). A record created late in a window, or made visible
   late, is still listed by a later cycle because windows overlap by the lookback.
2. list the window's ids (one call) and diff them with the ids the cursor already knows: only new
   ids, ids that failed to parse before, and known ids whose delivery status is not final yet
   are fetched.
3. fetch and parse in chunks; each chunk's records are grouped by day and written as one part
   per day, named after its content; then the months' manifests; then a checkpoint of the state.
4. when every chunk is durable, the cursor moves to ``until``.

A crash anywhere costs a re-fetch at most: the cursor never passes data that is not durable, and
readers keep one row per id (the newest), so a part written twice is harmless.
"""

from archiver.actions.archive.cycle import every_service_held, run_archive, run_backfill
from archiver.actions.archive.direction import archive_direction, row_digest
from archiver.actions.archive.listing import CreationTimes
from archiver.actions.archive.report import DirectionReport, Progress, SilentProgress, StopSignal

__all__ = [
    "CreationTimes",
    "DirectionReport",
    "Progress",
    "SilentProgress",
    "StopSignal",
    "archive_direction",
    "every_service_held",
    "row_digest",
    "run_archive",
    "run_backfill",
]
