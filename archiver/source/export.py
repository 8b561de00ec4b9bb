"""OVH's CSV history export: windows of 12 months, a document generated at OVH, polled, downloaded, parsed.

See docs/ovh-api.md, "CSV export". Anything that keeps the export from being had (refused, never ready,
unreadable) raises ``ExportUnavailable``, so the caller can fetch through the API instead; refused
credentials stay ``AuthError`` / ``NotGrantedError``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import tempfile
import time
from collections.abc import Callable, Iterator

from archiver.errors import AuthError, NotGrantedError, SourceError
from archiver.naming import Direction
from archiver.source.answers import NotFound
from archiver.source.client import ApiClient, DownloadError

__all__ = ["EXPORT_WINDOW", "ExportUnavailable", "Exporter", "export_windows"]

EXPORT_WINDOW = dt.timedelta(days=365)  # a CSV export document covers at most 12 months
_EXPORT_POLLS = 120
_EXPORT_POLL_SECONDS = 1.0  # as OVH's Control Panel polls
_SPOOL_IN_MEMORY = 8 << 20  # bytes of a download kept in memory before it spills to a temporary file


class ExportUnavailable(SourceError):
    """The CSV history export could not be had (refused, never ready, unreadable)."""


def export_windows(since: dt.datetime | None, until: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """Cut ``[since, until]`` into windows of at most ``EXPORT_WINDOW``, newest first.

    ``since=None`` means the last ``EXPORT_WINDOW`` only, as far as the export reaches. An empty or
    reversed range has no window.
    """
    start = since if since is not None else until - EXPORT_WINDOW
    end = until
    while end > start:
        window_start = max(start, end - EXPORT_WINDOW)
        yield window_start, end
        end = window_start


class Exporter:
    """The CSV export of one account, through its ``ApiClient``."""

    def __init__(self, client: ApiClient, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.sleep = sleep

    def rows(
        self, service: str, direction: Direction, *, since: dt.datetime | None, until: dt.datetime
    ) -> Iterator[dict[str, str]]:
        """Yield the rows of OVH's CSV history export for ``[since, until]``, window by window.

        A document covers at most 12 months: the range is cut into windows of 365 days, newest first
        (``export_windows``). Each document is generated at OVH, polled until ready, downloaded to a
        temporary file (memory stays flat), parsed by header name, and deleted at OVH. Raises
        ``ExportUnavailable`` if OVH refuses or never finishes a document.
        """
        for window_start, window_end in export_windows(since, until):
            yield from self._window(service, direction, window_start, window_end)

    def _window(
        self, service: str, direction: Direction, since: dt.datetime, until: dt.datetime
    ) -> Iterator[dict[str, str]]:
        params = {
            "wayType": direction,
            "creationDatetime.from": since.isoformat(timespec="seconds"),
            "creationDatetime.to": until.isoformat(timespec="seconds"),
        }
        try:
            document_id = self.client.request("GET", f"/sms/{service}/document", params)
        except (NotFound, SourceError) as error:
            if isinstance(error, AuthError | NotGrantedError):
                raise
            raise ExportUnavailable(f"the CSV export was refused: {error}") from None
        if not isinstance(document_id, str) or not document_id:
            raise ExportUnavailable("GET /sms/{service}/document did not answer a document id")
        try:
            url = self._await_document(document_id)
            with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
                try:
                    self.client.download(url, spool)
                except DownloadError as error:
                    raise ExportUnavailable(f"downloading the export {error}") from None
                spool.seek(0)
                text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
                try:
                    yield from csv.DictReader(text, delimiter=";", quotechar='"', strict=True)
                except (csv.Error, UnicodeDecodeError) as error:
                    raise ExportUnavailable(f"the export is not readable CSV ({error})") from None
                finally:
                    text.detach()
        finally:
            with contextlib.suppress(SourceError, NotFound):
                self.client.request("DELETE", f"/me/document/{document_id}")

    def _await_document(self, document_id: str) -> str:
        """Poll a /me/document until OVH has generated it (bounded); return its download URL."""
        for _attempt in range(_EXPORT_POLLS):
            try:
                document = self.client.request("GET", f"/me/document/{document_id}")
            except NotFound:
                raise ExportUnavailable(f"document {document_id} vanished while generated") from None
            if isinstance(document, dict) and isinstance(document.get("size"), int) and document["size"] > 0:
                url = document.get("getUrl")
                if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                    raise ExportUnavailable("the export document has no download URL")
                return url
            self.sleep(_EXPORT_POLL_SECONDS)
        raise ExportUnavailable(f"the export was not ready after {_EXPORT_POLLS} polls")
