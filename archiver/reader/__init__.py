"""Reading the archive back: one row per id (its newest version), in the month and day of its own date.

- ``parts.py``: the parts listed, grouped by month and day, opened, summarised (``sms-archiver months``);
- ``newest.py``: ``ArchiveParts`` and ``Resolution``, the newest version of each id, a day's records merged;
  its docstring states the rule every reader follows (retrieve, verify, compaction, retention, the web);
- ``day_bytes.py``: a day as its stored bytes, sorted with no CSV parse (``retrieve``'s fast path);
- ``prefetch.py``: the parts of the days ahead read in background threads while a day is worked on;
- ``check.py``: a part re-read against its manifest entry (verify, and retention's proof).
"""

from __future__ import annotations

from archiver.reader.check import MonthCheck, Problem, check_part, read_checked, verify_month
from archiver.reader.day_bytes import day_chunks, day_rows
from archiver.reader.newest import (
    ArchiveParts,
    Resolution,
    iter_day_records,
    iter_day_sources,
    iter_records,
    part_records,
    resolved_copies,
)
from archiver.reader.parts import (
    MonthSummary,
    StoredPart,
    archived_months,
    archived_services,
    copy_part_body,
    day_clusters,
    list_parts,
    month_days,
    summarize_months,
)

__all__ = [
    "ArchiveParts",
    "MonthCheck",
    "MonthSummary",
    "Problem",
    "Resolution",
    "StoredPart",
    "archived_months",
    "archived_services",
    "check_part",
    "copy_part_body",
    "day_chunks",
    "day_clusters",
    "day_rows",
    "iter_day_records",
    "iter_day_sources",
    "iter_records",
    "list_parts",
    "month_days",
    "part_records",
    "read_checked",
    "resolved_copies",
    "summarize_months",
    "verify_month",
]
