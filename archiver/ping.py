"""Dead man's switch pings, healthchecks.io style: ``URL/start``, ``URL`` on success, ``URL/fail``.

A monitoring service that stops hearing "success" alerts, whatever the cause (daemon down, host
down, cycles failing): the complement of the metrics, which need someone to scrape them. Each
ping carries a run id (``?rid=``, a UUID) so the service can pair a start with its end and time
the run; success and fail carry a short text body (the cycle's summary, or the error).

The URL embeds a token: it is a ``SecretStr``, and it is never logged, not even inside an
exception message (requests puts the URL in its exceptions, so only their type is logged). A
failed ping only warns: monitoring must never stop the archive.

``Pinger.monitored`` wraps one run of an action, as borgmatic's monitoring hooks do: the one-shot
``sms-archiver archive`` and the daemon's scheduled cycles ping the same way.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
import structlog
from pydantic import SecretStr

from archiver.config import PingSettings
from archiver.errors import ArchiverError, CycleInterrupted

__all__ = ["MAX_BODY_BYTES", "Outcome", "Pinger"]

log = structlog.get_logger()

# healthchecks.io keeps the first 100 kB of a ping's body; a few lines are what a person reads.
MAX_BODY_BYTES = 10_000


def _with_path(url: str, suffix: str, run_id: str) -> str:
    """``https://host/token`` + ``/start`` -> ``https://host/token/start?rid=...`` (any query kept)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/") + suffix
    query = [*urllib.parse.parse_qsl(parts.query, keep_blank_values=True), ("rid", run_id)]
    return urllib.parse.urlunsplit(parts._replace(path=path, query=urllib.parse.urlencode(query)))


def _short(text: str) -> bytes:
    data = text.encode("utf-8", "replace")
    if len(data) <= MAX_BODY_BYTES:
        return data
    # The end of a log says most about how it ended.
    return b"...\n" + data[-(MAX_BODY_BYTES - 4) :]


@dataclass(slots=True)
class Outcome:
    """What a monitored run reports on success: its one-paragraph summary."""

    summary: str = ""


class Pinger:
    """Pings for one job run after another; a no-op when no URL is configured."""

    def __init__(self, settings: PingSettings, *, session: requests.Session | None = None) -> None:
        self._url: SecretStr | None = settings.url
        self.timeout = settings.timeout_seconds
        self._session = session or requests.Session()
        self.run_id = str(uuid.uuid4())

    @property
    def enabled(self) -> bool:
        return self._url is not None and bool(self._url.get_secret_value().strip())

    def __repr__(self) -> str:
        return f"Pinger(enabled={self.enabled})"

    def start(self) -> bool:
        """Say a run starts (a new run id); return whether the ping was delivered."""
        self.run_id = str(uuid.uuid4())
        return self._send("start", "/start", b"")

    def success(self, summary: str = "") -> bool:
        return self._send("success", "", _short(summary))

    def fail(self, message: str) -> bool:
        return self._send("fail", "/fail", _short(message))

    @contextmanager
    def monitored(self, failure_heading: str = "") -> Iterator[Outcome]:
        """Ping ``start``; then ``success`` with the summary the run leaves in the outcome, or ``fail``.

        The error propagates. A stop (``CycleInterrupted``) is neither a success nor a failure: the
        next run resumes the work, and its start pairs with its own end.
        """
        outcome = Outcome()
        self.start()
        try:
            yield outcome
        except CycleInterrupted:
            raise
        except Exception as error:
            # Our own errors explain themselves; anything else needs its type to make sense.
            message = str(error) if isinstance(error, ArchiverError) else f"{type(error).__name__}: {error}"
            self.fail(f"{failure_heading}{message}")
            raise
        self.success(outcome.summary)

    def close(self) -> None:
        self._session.close()

    def _send(self, kind: str, suffix: str, body: bytes) -> bool:
        if self._url is None or not self.enabled:
            return False
        url = _with_path(self._url.get_secret_value().strip(), suffix, self.run_id)
        try:
            with self._session.post(
                url,
                data=body,
                headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "sms-archiver"},
                timeout=self.timeout,
            ) as response:
                status = response.status_code
        except requests.RequestException as error:
            # str(error) would contain the URL, token included: the type says enough.
            log.warning("ping_failed", ping=kind, error_type=type(error).__name__)
            return False
        if not 200 <= status < 300:
            log.warning("ping_failed", ping=kind, http_status=status)
            return False
        log.debug("ping_sent", ping=kind)
        return True
