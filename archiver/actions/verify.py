"""Verify: prove the archive is intact, part by part, against what was recorded at write time.

For each month, every stored part is re-read once, streaming: its SHA-256 and row count are
compared with the manifest, and its CSV must parse. Parts the manifest lists but the store lacks
are ``missing``; objects the manifest does not know are ``extra``; bytes that differ are
``corrupt``; bytes that do not parse are ``unreadable``.

An id stored more than once (a late status, or a version whose date moved to another day or
month) is no problem: readers give its newest version only (the reader's rule). The month's
``rows`` counts SMS that way, one per id, in the month of its newest version; ``stored_rows``
counts every row of its parts.
"""

from __future__ import annotations

from archiver.config import Settings
from archiver.reader import ArchiveParts, MonthCheck, archived_months, verify_month
from archiver.services import services_to_maintain
from archiver.store import Store

__all__ = ["run_verify"]


def run_verify(
    settings: Settings,
    store: Store,
    *,
    service: str | None = None,
    months: list[tuple[int, int]] | None = None,
) -> list[MonthCheck]:
    """Verify every month (or the ones given) of every service (or the one given) and direction."""
    services = [service] if service else services_to_maintain(settings.ovh, store)
    checks = []
    for name in services:
        for direction in settings.archive.directions:
            chosen = months if months is not None else archived_months(store, name, direction)
            # One resolution for all the months: each part is scanned for its ids at most once.
            resolution = ArchiveParts(store, name, direction).resolution(chosen, strict=False)
            for year, month in chosen:
                checks.append(verify_month(store, name, direction, year, month, resolution))
    return checks
