"""Reading the archive back: one row per id (its newest version), in the month and day of its own date.

- ``parts.py``: the parts listed, grouped by month and day, opened, summarised (``sms-archiver months``);
- ``newest.py``: ``ArchiveParts`` and ``Resolution``, the newest version of each id, records merged by day;
- ``check.py``: a part re-read against its manifest entry (verify, and retention's proof).


Parts are sorted by (creation instant, id) inside, and a record's day folder follows from its
creation instant, so a month is read day by day with a k-way merge of that day's parts: memory
holds one row per open part, whatever the month's size.

The rule every reader follows (retrieve, verify, compaction, retention): **an id's newest version
is the row of the part written last that holds it** (``StoredPart.version``), and it is the only
row of that id, wherever the others sit. Versions usually share their creation instant, so they
meet in the merge; but a version may carry another instant (the export's zone-less ``date`` read
in another zone, or the send time taken for the creation time: UNKNOWN, see the OVH API notes,
"CSV history export"), and then sit in another day or month. ``Resolution`` finds those:

- two versions of an id lie in two parts whose id ranges (in their names) both contain it, so a
  part whose id range overlaps no other part's, in any month of the service and direction, holds
  no id stored elsewhere and is read (or byte-copied) as it is;
- the parts of each group of overlapping id ranges that touches the months read are scanned once
  for their ids (ids only); each id stored in several parts is given to the part written last,
  and every other row of it is dropped, in whichever month or day it sits.

Memory: one entry per row of the largest group of overlapping parts while it is scanned, then one
per id stored more than once.
"""

from __future__ import annotations

from archiver.reader.check import MonthCheck, Problem, check_part, verify_month
from archiver.reader.newest import (
    ArchiveParts,
    Resolution,
    iter_day_records,
    iter_day_sources,
    iter_records,
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
    "day_clusters",
    "iter_day_records",
    "iter_day_sources",
    "iter_records",
    "list_parts",
    "month_days",
    "resolved_copies",
    "summarize_months",
    "verify_month",
]
