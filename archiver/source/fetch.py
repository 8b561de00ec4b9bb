"""The fetch strategies: records by id, ``per-id`` (concurrent GETs) or ``batch`` (``X-Ovh-Batch``).

``auto`` probes batch with one call and falls back to per-id for the rest of the run if OVH refuses it
or answers in an unexpected shape (docs/ovh-api.md, "Batch calls"). A record is gone (``GONE``) only when
OVH says so explicitly: a 404 on its own GET, or a batch element whose error says "not found".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import structlog

from archiver.errors import AuthError, NotGrantedError, SourceError
from archiver.naming import Direction
from archiver.source.answers import NotFound
from archiver.source.client import ApiClient

__all__ = ["GONE", "Fetcher", "says_not_found"]

log = structlog.get_logger()

GONE: Any = None  # what fetch yields for an id the API no longer has (404)


class BatchUnsupported(Exception):
    """The server does not do X-Ovh-Batch the way OVH's Control Panel uses it."""


def says_not_found(error: object) -> bool:
    """Whether a batch element's ``error`` says explicitly that the record does not exist."""
    if isinstance(error, dict):
        error = " ".join(str(value) for value in error.values())
    text = str(error or "").lower()
    return "not found" in text or "404" in text or "does not exist" in text


class Fetcher:
    """Fetches records by id with the run's strategy, ``concurrency`` calls at a time. close() when done."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        settings = client.settings
        self.batch_size = settings.batch_size
        self.max_pending = settings.concurrency * 2  # futures queued ahead, so the pool never waits for us
        self._pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="ovh")
        self._strategy: str | None = None if settings.fetch == "auto" else settings.fetch

    @property
    def strategy(self) -> str:
        return self._strategy or "auto"

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def get_record(self, service: str, direction: Direction, sms_id: int) -> Any:
        """One record's raw JSON, or ``GONE`` if the API no longer has it."""
        try:
            return self.client.request("GET", f"/sms/{service}/{direction}/{sms_id}")
        except NotFound:
            return GONE

    def fetch(self, service: str, direction: Direction, ids: Sequence[int]) -> Iterator[tuple[int, Any]]:
        """Yield ``(id, raw JSON or GONE)`` for every id, in no particular order.

        ``batch`` asks many ids per call, ``concurrency`` calls at a time; if OVH refuses it or
        answers in an unexpected shape, the rest of the run uses ``per-id`` (logged once).
        """
        # ``export`` is used by the archive for large fetches (``export_rows``); what it does not cover,
        # and small fetches, come through batch calls.
        if self._strategy not in (None, "batch", "export"):
            yield from self._fetch_per_id(service, direction, ids)
            return
        size = self.batch_size
        chunks = [list(ids[start : start + size]) for start in range(0, len(ids), size)]
        if self._strategy is None and chunks:
            # Probe with one call before sending many: the answer decides the run's strategy.
            try:
                probe = self._fetch_batch(service, direction, chunks[0])
            except BatchUnsupported as error:
                yield from self._fall_back(service, direction, ids, error)
                return
            self._strategy = "batch"
            yield from probe
            chunks = chunks[1:]
        yield from self._fetch_batches(service, direction, chunks)

    def _fetch_batches(self, service: str, direction: Direction, chunks: list[list[int]]) -> Iterator[tuple[int, Any]]:
        """Batch calls in the pool; after a refused one, the ids of every batch not answered go per-id."""
        failed: list[int] = []
        unsupported: BatchUnsupported | None = None
        pending: set[Future[list[tuple[int, Any]]]] = set()
        submitted: dict[Future[list[tuple[int, Any]]], list[int]] = {}
        queue = iter(chunks)
        try:
            for chunk in queue:
                future = self._pool.submit(self._fetch_batch, service, direction, chunk)
                submitted[future] = chunk
                pending.add(future)
                if len(pending) >= self.max_pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        try:
                            yield from future.result()
                        except BatchUnsupported as error:
                            unsupported = error
                            failed.extend(submitted[future])
                    if unsupported is not None:
                        break
            for future in list(pending):
                try:
                    yield from future.result()
                except BatchUnsupported as error:
                    unsupported = error
                    failed.extend(submitted[future])
                pending.discard(future)
        finally:
            for future in pending:
                future.cancel()
        if unsupported is not None:
            failed.extend(sms_id for chunk in queue for sms_id in chunk)
            yield from self._fall_back(service, direction, failed, unsupported)

    def _fall_back(
        self, service: str, direction: Direction, ids: Sequence[int], error: BatchUnsupported
    ) -> Iterator[tuple[int, Any]]:
        log.warning("batch_fetch_unavailable", reason=str(error), fallback="per-id")
        self._strategy = "per-id"
        yield from self._fetch_per_id(service, direction, ids)

    def _fetch_batch(self, service: str, direction: Direction, ids: list[int]) -> list[tuple[int, Any]]:
        """One X-Ovh-Batch call (run in the pool); raises ``BatchUnsupported`` on an unexpected answer."""
        if len(ids) == 1:
            return [(ids[0], self.get_record(service, direction, ids[0]))]
        path = f"/sms/{service}/{direction}/{','.join(map(str, ids))}"
        try:
            answer = self.client.request("GET", path, headers={"X-Ovh-Batch": ","})
        except (NotFound, SourceError) as error:
            if isinstance(error, AuthError | NotGrantedError):
                raise
            raise BatchUnsupported(f"batch call refused: {error}") from None
        if not isinstance(answer, list) or len(answer) != len(ids):
            raise BatchUnsupported("batch answer is not a list with one element per id")
        results: list[tuple[int, Any]] = []
        for sms_id, element in zip(ids, answer, strict=True):
            if not isinstance(element, dict) or "value" not in element:
                raise BatchUnsupported("batch element without a 'value' key")
            if element.get("key") not in (None, str(sms_id), sms_id):
                raise BatchUnsupported("batch answer out of order")
            if element["value"] is not None:
                results.append((sms_id, element["value"]))
            elif says_not_found(element.get("error")):
                results.append((sms_id, GONE))
            else:
                # A null value without an explicit not-found (the keys of batch elements are UNKNOWN: see
                # docs/ovh-api.md, "Batch calls") proves nothing: ask for it alone, whose 404 is explicit.
                # Here, not through the pool: we run in it.
                results.append((sms_id, self.get_record(service, direction, sms_id)))
        return results

    def _fetch_per_id(self, service: str, direction: Direction, ids: Iterable[int]) -> Iterator[tuple[int, Any]]:
        pending: set[Future[tuple[int, Any]]] = set()
        queue = iter(ids)

        def one(sms_id: int) -> tuple[int, Any]:
            return sms_id, self.get_record(service, direction, sms_id)

        try:
            for sms_id in queue:
                pending.add(self._pool.submit(one, sms_id))
                if len(pending) >= self.max_pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            for future in list(pending):
                yield future.result()
                pending.discard(future)
        finally:
            for future in pending:
                future.cancel()
