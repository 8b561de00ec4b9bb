"""Prometheus metrics and ``/healthz`` for the daemon, on an optional listen address.

Every metric lives in the ``Metrics`` object's own ``CollectorRegistry`` (never the process-wide
default one), so tests and several daemons in one process do not mix their numbers. Names start
with ``sms_archiver_``:

    sms_archiver_records_archived_total{service,direction}       rows written to the archive
    sms_archiver_malformed_records_total{service,direction}      records skipped (retried next cycle)
    sms_archiver_api_calls_total{outcome}                         OVH API calls: ok, http_429, network_error...
    sms_archiver_api_retries_total                                calls retried after a transient failure
    sms_archiver_cycle_duration_seconds                           histogram of successful archive cycles
    sms_archiver_last_success_timestamp_seconds{service,direction}
    sms_archiver_deletions_total{service,direction}               records deleted at OVH by retention
    sms_archiver_services_skipped_total{service,direction}        cycles that left it to another instance (lease held)
    sms_archiver_unsettled_records_total{service,direction}       archived with a status not final after the lookback
    sms_archiver_retention_unmatchable{service,direction}         records whose archived copy can never match (last run)
    sms_archiver_legal_holds_active                               active legal holds (at each cycle and retention run)
    sms_archiver_held_records_total{service,direction,where}      records kept for a legal hold, at each retention run
                                                                  (where: ovh, archive)
    sms_archiver_job_runs_total{job,outcome}                      ok, failed, interrupted
    sms_archiver_job_failures_total{job}
    sms_archiver_job_last_success_timestamp_seconds{job}
    sms_archiver_start_time_seconds

``/healthz`` answers 200 while the last successful archive cycle, and the last success of every
service and direction, are younger than ``max_age_seconds``; 503 otherwise. Before the first
cycle has finished, a start-up grace of ``max_age_seconds`` keeps it healthy. The body is JSON.

``python -m archiver.metrics`` probes ``/healthz`` of the configured listen address (exit 0 when
healthy): the container's HEALTHCHECK.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

__all__ = ["Health", "Metrics", "MetricsServer", "parse_listen", "probe", "start_metrics_server"]

log = structlog.get_logger()

_CYCLE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))


class CycleReport(Protocol):
    """What the metrics read from an archive cycle's reports (``archiver.actions.archive.DirectionReport``)."""

    @property
    def service(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def rows_written(self) -> int: ...
    @property
    def unsettled(self) -> int: ...
    @property
    def skipped(self) -> str: ...
    @property
    def malformed(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Health:
    """The answer of ``/healthz``."""

    healthy: bool
    body: dict[str, Any]


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


class Metrics:
    """The daemon's metrics, and the health rule built on them. Thread-safe."""

    def __init__(self, *, max_age_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        pair = ["service", "direction"]
        registry = self.registry
        self.records_archived = Counter(
            "sms_archiver_records_archived", "SMS records written to the archive.", pair, registry=registry
        )
        self.malformed_records = Counter(
            "sms_archiver_malformed_records",
            "SMS records the API returned in a shape that could not be parsed (retried every cycle).",
            pair,
            registry=registry,
        )
        self.api_calls = Counter("sms_archiver_api_calls", "OVH API calls, by outcome.", ["outcome"], registry=registry)
        self.api_retries = Counter(
            "sms_archiver_api_retries", "OVH API calls retried after a transient failure.", registry=registry
        )
        self.cycle_duration = Histogram(
            "sms_archiver_cycle_duration_seconds",
            "Duration of successful archive cycles.",
            buckets=_CYCLE_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            "sms_archiver_last_success_timestamp_seconds",
            "When the archive last completed a cycle for a service and direction (unix time).",
            pair,
            registry=registry,
        )
        self.deletions = Counter(
            "sms_archiver_deletions", "SMS records deleted at OVH by retention.", pair, registry=registry
        )
        self.services_skipped = Counter(
            "sms_archiver_services_skipped",
            "Cycles that left a service and direction to another instance holding its lease.",
            pair,
            registry=registry,
        )
        self.unsettled_records = Counter(
            "sms_archiver_unsettled_records",
            "SMS archived with a delivery status still not final when the lookback ended (not re-checked again).",
            pair,
            registry=registry,
        )
        self.retention_unmatchable = Gauge(
            "sms_archiver_retention_unmatchable",
            "Records whose archived copy, read back, still differs from the API: retention can never delete them.",
            pair,
            registry=registry,
        )
        self.legal_holds_active = Gauge(
            "sms_archiver_legal_holds_active",
            "Active legal holds (retention and the archive purge keep what they cover).",
            registry=registry,
        )
        self.held_records = Counter(
            "sms_archiver_held_records",
            "Records kept because a legal hold covers them, counted at each retention run (where: ovh, archive).",
            [*pair, "where"],
            registry=registry,
        )
        self.job_runs = Counter(
            "sms_archiver_job_runs", "Daemon job runs, by outcome.", ["job", "outcome"], registry=registry
        )
        self.job_failures = Counter("sms_archiver_job_failures", "Failed daemon job runs.", ["job"], registry=registry)
        self.job_last_success = Gauge(
            "sms_archiver_job_last_success_timestamp_seconds",
            "When a daemon job last succeeded (unix time).",
            ["job"],
            registry=registry,
        )
        self.start_time = Gauge("sms_archiver_start_time_seconds", "When the daemon started.", registry=registry)
        # The OVH account of each service, as an info metric (always 1): the other series keep their
        # labels, and a query adds the account with ``* on(service) group_left(account)``.
        self.service_account = Gauge(
            "sms_archiver_service_account_info",
            "The OVH account a service is archived under (value 1).",
            ["service", "account"],
            registry=registry,
        )
        self._service_accounts: dict[str, str] = {}
        self._lock = threading.Lock()
        self._started = clock()
        self.start_time.set(self._started)
        self._pairs: dict[tuple[str, str], float] = {}
        self._last_cycle: float | None = None
        self._source_calls: dict[str, int] = {}
        self._source_retries = 0

    # -- what the daemon reports -----------------------------------------------------------------

    def seed_last_success(self, service: str, direction: str, timestamp: float) -> None:
        """Start from the archive's own record of a pair's last cycle (so a restart does not reset it)."""
        with self._lock:
            if timestamp > self._pairs.get((service, direction), 0.0):
                self._pairs[(service, direction)] = timestamp
                self.last_success.labels(service, direction).set(timestamp)

    def observe_cycle(self, reports: Iterable[CycleReport], seconds: float) -> None:
        """Record a successful archive cycle."""
        now = self.clock()
        with self._lock:
            for report in reports:
                labels = (report.service, report.direction)
                if report.skipped:
                    # Another instance holds it: its freshness is that instance's to report, not ours.
                    self.services_skipped.labels(*labels).inc()
                    self._pairs.pop(labels, None)
                    continue
                self.records_archived.labels(*labels).inc(report.rows_written)
                if report.malformed:
                    self.malformed_records.labels(*labels).inc(report.malformed)
                if report.unsettled:
                    self.unsettled_records.labels(*labels).inc(report.unsettled)
                self._pairs[labels] = now
                self.last_success.labels(*labels).set(now)
            self._last_cycle = now
        self.cycle_duration.observe(seconds)

    def set_service_accounts(self, accounts: Mapping[str, str]) -> None:
        """Record the account of each service (``service -> account``); a service's new account replaces its old one."""
        with self._lock:
            for service, account in accounts.items():
                previous = self._service_accounts.get(service)
                if previous == account or not account:
                    continue
                if previous is not None:
                    self.service_account.remove(service, previous)
                self.service_account.labels(service, account).set(1)
                self._service_accounts[service] = account

    def observe_source(self, calls: Mapping[str, int], retries: int) -> None:
        """Bring the API counters up to an ``OvhSource``'s running totals (they only grow)."""
        with self._lock:
            for outcome, total in calls.items():
                delta = total - self._source_calls.get(outcome, 0)
                if delta > 0:
                    self.api_calls.labels(outcome).inc(delta)
                self._source_calls[outcome] = max(total, self._source_calls.get(outcome, 0))
            if retries > self._source_retries:
                self.api_retries.inc(retries - self._source_retries)
                self._source_retries = retries

    def set_unmatchable(self, counts: Mapping[tuple[str, str], int]) -> None:
        """The last retention run's records that can never match, per service and direction."""
        for (service, direction), count in counts.items():
            self.retention_unmatchable.labels(service, direction).set(count)

    def set_legal_holds(self, count: int) -> None:
        """How many legal holds are active."""
        self.legal_holds_active.set(count)

    def add_held(self, service: str, direction: str, where: str, count: int) -> None:
        """Records a retention run kept for a legal hold: at OVH (``ovh``) or in the archive purge (``archive``)."""
        if count > 0:
            self.held_records.labels(service, direction, where).inc(count)

    def add_deletions(self, service: str, direction: str, count: int) -> None:
        if count > 0:
            self.deletions.labels(service, direction).inc(count)

    def job_finished(self, job: str, outcome: str) -> None:
        """Count a job run; ``outcome`` is ok, failed or interrupted."""
        self.job_runs.labels(job, outcome).inc()
        if outcome == "failed":
            self.job_failures.labels(job).inc()
        elif outcome == "ok":
            self.job_last_success.labels(job).set(self.clock())

    # -- health ----------------------------------------------------------------------------------

    def health(self) -> Health:
        """Healthy while every last success is fresh; during a start-up grace before the first cycle."""
        now = self.clock()
        limit = self.max_age_seconds
        with self._lock:
            pairs = dict(self._pairs)
            last_cycle = self._last_cycle
        stale = sorted(f"{service}/{direction}" for (service, direction), ts in pairs.items() if now - ts > limit)
        if last_cycle is None:
            healthy = now - self._started <= limit
            status = "starting" if healthy else "no successful cycle since start"
        else:
            cycle_fresh = now - last_cycle <= limit
            healthy = cycle_fresh and not stale
            status = "ok" if healthy else "stale"
        body: dict[str, Any] = {
            "status": status,
            "healthy": healthy,
            "max_age_seconds": limit,
            "started_at": _iso(self._started),
            "last_cycle_success": _iso(last_cycle),
            "stale": stale,
            "last_success": {
                f"{service}/{direction}": {"at": _iso(ts), "age_seconds": round(now - ts, 1)}
                for (service, direction), ts in sorted(pairs.items())
            },
        }
        return Health(healthy, body)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the text format the client accepts (Prometheus text or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


# -- HTTP ----------------------------------------------------------------------------------------


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:9108`` for IPv6); an empty host means every IPv4 address."""
    host, _, port = listen.strip().rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - the user asked for every address with ":PORT"
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    metrics: Metrics

    def __init__(self, address: tuple[str, int], metrics: Metrics) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.metrics = metrics
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "sms-archiver"

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        metrics = self.server.metrics
        if path == "/metrics":
            body, content_type = metrics.exposition(self.headers.get("Accept"))
            status = 200
        elif path == "/healthz":
            health = metrics.health()
            body = json.dumps(health.body, indent=2).encode() + b"\n"
            content_type, status = "application/json", 200 if health.healthy else 503
        else:
            body, content_type, status = b"not found: try /metrics or /healthz\n", "text/plain", 404
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # http.server prints one plain line per request on stderr; our logs are one JSON event per line.
        pass


class MetricsServer:
    """``/metrics`` and ``/healthz`` served from a daemon thread until ``stop()``."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self._server = _Server((host, port), metrics)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="metrics-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


def start_metrics_server(metrics: Metrics, listen: str) -> MetricsServer:
    """Serve on ``HOST:PORT``; raise ``OSError`` when the address cannot be bound."""
    host, port = parse_listen(listen)
    server = MetricsServer(metrics, host, port).start()
    log.info("metrics_listening", address=f"{host}:{server.address[1]}", paths=["/metrics", "/healthz"])
    return server


# -- the container's health probe ----------------------------------------------------------------


def probe(listen: str, *, timeout: float = 5.0) -> tuple[bool, str]:
    """Ask ``/healthz`` of a daemon listening on ``listen``; return (healthy, what it said)."""
    host, port = parse_listen(listen)
    # An address that listens everywhere is reached on loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    url = f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - an http:// URL we built
            return True, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return False, error.read().decode("utf-8", "replace")
    except OSError as error:
        return False, f"{url}: {error}"


def main() -> int:
    """``python -m archiver.metrics``: exit 0 when the configured daemon answers healthy on /healthz, else 1.

    Only 0 and 1: Docker reserves the other statuses of a HEALTHCHECK command.
    """
    from archiver.config import load_settings
    from archiver.errors import ConfigError

    try:
        listen = load_settings(require_storage=False).metrics.listen
    except ConfigError as error:
        print(f"sms-archiver health probe: {error}", file=sys.stderr)
        return 1
    if not listen:
        print("sms-archiver health probe: SMS_ARCHIVER_METRICS__LISTEN is not set: nothing to ask", file=sys.stderr)
        return 1
    healthy, answer = probe(listen)
    print(answer.strip())
    return 0 if healthy else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
