"""``OvhSource``: the OVH account as the archiver uses it, composed of the client, the fetcher and the exporter.

It lists services and SMS ids, fetches records (``fetch.py``), reads the CSV export (``export.py``),
deletes records, and names ptt codes; every call goes through one ``ApiClient`` (``client.py``).
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from archiver.config import OvhSettings
from archiver.errors import SourceError
from archiver.naming import Direction
from archiver.records import PTT_DESCRIPTIONS, describe_ptt
from archiver.source.answers import NotFound
from archiver.source.client import ApiClient
from archiver.source.export import Exporter
from archiver.source.fetch import Fetcher
from archiver.source.limits import AdaptiveConcurrency, RateLimiter

__all__ = ["OvhSource"]


class OvhSource:
    """The OVH API, as the archiver uses it. Thread-safe; close() when done."""

    def __init__(self, settings: OvhSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = ApiClient(settings, sleep=sleep)
        self.settings = settings
        self.sleep = sleep
        self.api_zone = zoneinfo.ZoneInfo(settings.api_timezone)
        self.fetcher = Fetcher(self.client)
        self.exporter = Exporter(self.client, sleep=sleep)
        self._ptt_cache: dict[int, str] = dict(PTT_DESCRIPTIONS)

    def close(self) -> None:
        self.fetcher.close()

    def __enter__(self) -> OvhSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the client's limits, counters and clock -------------------------------------------------------

    @property
    def limiter(self) -> RateLimiter:
        return self.client.limiter

    @property
    def concurrency(self) -> AdaptiveConcurrency:
        return self.client.concurrency

    @property
    def calls(self) -> Counter[str]:
        """Calls made so far, by outcome (``ok``, ``http_429``, ``network_error`` ...)."""
        return self.client.calls

    @property
    def retries(self) -> int:
        return self.client.retries

    @property
    def total_calls(self) -> int:
        return self.client.total_calls

    def clock_offset_seconds(self) -> int:
        """OVH's clock minus ours, in seconds (see ``ApiClient.clock_offset_seconds``)."""
        return self.client.clock_offset_seconds()

    def now(self) -> dt.datetime:
        """The current time on OVH's clock (UTC)."""
        return self.client.now()

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        *,
        signed: bool = True,
    ) -> Any:
        """Make one API call and return its JSON (see ``ApiClient.request``)."""
        return self.client.request(method, path, params, headers, signed=signed)

    # -- the calls the archiver makes ------------------------------------------------------------------

    def list_services(self) -> list[str]:
        """Every SMS service of the account (``GET /sms``)."""
        services = self.request("GET", "/sms")
        if not isinstance(services, list) or not all(isinstance(item, str) for item in services):
            raise SourceError("GET /sms did not answer a list of service names")
        return sorted(services)

    def check_service(self, service: str) -> None:
        """Make sure a configured service exists and is reachable with these credentials."""
        try:
            self.request("GET", f"/sms/{service}")
        except NotFound:
            raise SourceError(f"SMS service {service!r} does not exist on this OVH account") from None

    def list_ids(
        self, service: str, direction: Direction, *, since: dt.datetime | None, until: dt.datetime
    ) -> list[int]:
        """Ids of SMS created in ``[since, until]`` (both ends inclusive at OVH; ``since=None``: all)."""
        params = {"creationDatetime.to": until.isoformat(timespec="seconds")}
        if since is not None:
            params["creationDatetime.from"] = since.isoformat(timespec="seconds")
        try:
            ids = self.request("GET", f"/sms/{service}/{direction}", params)
        except NotFound:
            raise SourceError(f"SMS service {service!r} does not exist on this OVH account") from None
        if not isinstance(ids, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in ids):
            raise SourceError(f"GET /sms/{service}/{direction} did not answer a list of ids")
        return ids

    def get_record(self, service: str, direction: Direction, sms_id: int) -> Any:
        """One record's raw JSON, or ``GONE`` if the API no longer has it."""
        return self.fetcher.get_record(service, direction, sms_id)

    def delete_record(self, service: str, direction: Direction, sms_id: int) -> bool:
        """Delete one record at OVH; return False if it was already gone (404)."""
        try:
            self.request("DELETE", f"/sms/{service}/{direction}/{sms_id}")
        except NotFound:
            return False
        return True

    def ptt_text(self, ptt: int) -> str:
        """The text of a ptt code: built in, else ``GET /sms/ptts`` once per code, else a label."""
        if ptt not in self._ptt_cache:
            try:
                details = self.request("GET", "/sms/ptts", {"ptt": str(ptt)})
                text = details.get("description") if isinstance(details, dict) else None
            except (NotFound, SourceError):
                text = None
            self._ptt_cache[ptt] = text if isinstance(text, str) and text else describe_ptt(ptt)
        return self._ptt_cache[ptt]

    # -- records in bulk -------------------------------------------------------------------------------

    @property
    def strategy(self) -> str:
        """The run's fetch strategy: as configured, or what ``auto`` settled on (``auto`` until it does)."""
        return self.fetcher.strategy

    def fetch(self, service: str, direction: Direction, ids: Sequence[int]) -> Iterator[tuple[int, Any]]:
        """Yield ``(id, raw JSON or GONE)`` for every id, in no particular order (see ``Fetcher.fetch``)."""
        return self.fetcher.fetch(service, direction, ids)

    def export_rows(
        self, service: str, direction: Direction, *, since: dt.datetime | None, until: dt.datetime
    ) -> Iterator[dict[str, str]]:
        """Yield the rows of OVH's CSV history export for ``[since, until]`` (see ``Exporter.rows``)."""
        return self.exporter.rows(service, direction, since=since, until=until)
