"""Infrastructure for OVH: every API call goes through python-ovh, one rate limiter and one retry policy.

- ``account.py``: ``OvhSource``, the account as the archiver uses it (services, ids, records, deletes, ptt
  texts), composed of the parts below.
- ``client.py``: the HTTP layer: the python-ovh client, signing, retries, OVH's clock, call counts.
- ``answers.py``: what OVH's answers mean: statuses and network failures turned into errors that say
  what to fix.
- ``limits.py``: the rate limiter, adaptive concurrency, backoff and Retry-After.
- ``fetch.py``: the fetch strategies (``batch``, ``per-id``, ``auto`` falling back between them).
- ``export.py``: the CSV history export (windows, document polling, ``ExportUnavailable``).
"""

from __future__ import annotations

from archiver.source.account import OvhSource
from archiver.source.client import CLOCK_TOLERANCE_SECONDS
from archiver.source.export import ExportUnavailable
from archiver.source.fetch import GONE
from archiver.source.limits import AdaptiveConcurrency, RateLimiter, backoff_delay

__all__ = [
    "CLOCK_TOLERANCE_SECONDS",
    "GONE",
    "AdaptiveConcurrency",
    "ExportUnavailable",
    "OvhSource",
    "RateLimiter",
    "backoff_delay",
]
