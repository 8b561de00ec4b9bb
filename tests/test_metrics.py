"""Metrics: counters from cycle reports and the OVH source, the health rule, the HTTP endpoint."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from archiver.metrics import Metrics, MetricsServer, parse_listen, probe


@dataclass
class Report:
    service: str
    direction: str
    rows_written: int
    malformed: int = 0
    unsettled: int = 0
    skipped: str = ""


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_cycle_reports_become_counters_and_timestamps() -> None:
    clock = Clock()
    metrics = Metrics(max_age_seconds=3600, clock=clock)
    metrics.observe_cycle([Report("sms-a", "outgoing", 120, 1), Report("sms-a", "incoming", 30)], seconds=2.5)
    clock.now += 60
    metrics.observe_cycle([Report("sms-a", "outgoing", 5), Report("sms-a", "incoming", 0)], seconds=0.5)
    assert sample(metrics, "sms_archiver_records_archived_total", service="sms-a", direction="outgoing") == 125
    assert sample(metrics, "sms_archiver_records_archived_total", service="sms-a", direction="incoming") == 30
    assert sample(metrics, "sms_archiver_malformed_records_total", service="sms-a", direction="outgoing") == 1
    assert sample(metrics, "sms_archiver_last_success_timestamp_seconds", service="sms-a", direction="incoming") == (
        clock.now
    )
    assert sample(metrics, "sms_archiver_cycle_duration_seconds_count") == 2
    assert sample(metrics, "sms_archiver_cycle_duration_seconds_sum") == 3.0


def test_source_counters_follow_running_totals() -> None:
    metrics = Metrics(max_age_seconds=3600)
    metrics.observe_source({"ok": 10, "http_429": 2}, retries=2)
    metrics.observe_source({"ok": 15, "http_429": 2, "network_error": 1}, retries=3)
    metrics.observe_source({"ok": 15, "http_429": 2, "network_error": 1}, retries=3)  # nothing new
    assert sample(metrics, "sms_archiver_api_calls_total", outcome="ok") == 15
    assert sample(metrics, "sms_archiver_api_calls_total", outcome="http_429") == 2
    assert sample(metrics, "sms_archiver_api_calls_total", outcome="network_error") == 1
    assert sample(metrics, "sms_archiver_api_retries_total") == 3


def test_jobs_and_deletions() -> None:
    clock = Clock()
    metrics = Metrics(max_age_seconds=3600, clock=clock)
    metrics.job_finished("archive", "failed")
    metrics.job_finished("archive", "ok")
    metrics.job_finished("compact", "interrupted")
    metrics.add_deletions("sms-a", "outgoing", 7)
    metrics.add_deletions("sms-a", "outgoing", 0)
    assert sample(metrics, "sms_archiver_job_failures_total", job="archive") == 1
    assert sample(metrics, "sms_archiver_job_runs_total", job="archive", outcome="ok") == 1
    assert sample(metrics, "sms_archiver_job_runs_total", job="compact", outcome="interrupted") == 1
    assert sample(metrics, "sms_archiver_job_failures_total", job="compact") is None
    assert sample(metrics, "sms_archiver_job_last_success_timestamp_seconds", job="archive") == clock.now
    assert sample(metrics, "sms_archiver_deletions_total", service="sms-a", direction="outgoing") == 7


def test_unsettled_statuses_and_unmatchable_copies_are_counted() -> None:
    metrics = Metrics(max_age_seconds=3600)
    metrics.observe_cycle([Report("sms-a", "outgoing", 10, unsettled=3)], seconds=1.0)
    metrics.observe_cycle([Report("sms-a", "outgoing", 0, unsettled=1)], seconds=1.0)
    assert sample(metrics, "sms_archiver_unsettled_records_total", service="sms-a", direction="outgoing") == 4
    metrics.set_unmatchable({("sms-a", "outgoing"): 2, ("sms-a", "incoming"): 0})
    assert sample(metrics, "sms_archiver_retention_unmatchable", service="sms-a", direction="outgoing") == 2
    metrics.set_unmatchable({("sms-a", "outgoing"): 0})  # a later run found none: back to 0
    assert sample(metrics, "sms_archiver_retention_unmatchable", service="sms-a", direction="outgoing") == 0


def test_each_instance_has_its_own_registry() -> None:
    # With prometheus_client's global registry the second would raise "Duplicated timeseries".
    first, second = Metrics(max_age_seconds=60), Metrics(max_age_seconds=60)
    first.observe_cycle([Report("sms-a", "outgoing", 3)], seconds=1)
    assert sample(second, "sms_archiver_records_archived_total", service="sms-a", direction="outgoing") is None


@pytest.mark.parametrize(
    ("steps", "healthy", "status"),
    [
        # (seconds to advance, reports of a cycle or None) ...
        ([], True, "starting"),
        ([(3599, None)], True, "starting"),
        ([(3601, None)], False, "no successful cycle since start"),
        ([(10, [("sms-a", "outgoing")])], True, "ok"),
        ([(10, [("sms-a", "outgoing")]), (3601, None)], False, "stale"),
        ([(10, [("sms-a", "outgoing")]), (3000, [("sms-a", "outgoing")]), (3000, None)], True, "ok"),
        # A pair that stopped succeeding makes the whole daemon unhealthy, even if others go on.
        ([(10, [("sms-a", "outgoing"), ("sms-b", "outgoing")]), (3601, [("sms-a", "outgoing")])], False, "stale"),
    ],
)
def test_health_rule(steps: list[tuple[int, list[tuple[str, str]] | None]], healthy: bool, status: str) -> None:
    clock = Clock()
    metrics = Metrics(max_age_seconds=3600, clock=clock)
    for seconds, pairs in steps:
        clock.now += seconds
        if pairs is not None:
            metrics.observe_cycle([Report(service, direction, 1) for service, direction in pairs], seconds=1)
    health = metrics.health()
    assert (health.healthy, health.body["status"]) == (healthy, status)


def test_seeded_last_success_shows_in_the_gauge_but_start_up_grace_still_applies() -> None:
    clock = Clock()
    metrics = Metrics(max_age_seconds=3600, clock=clock)
    metrics.seed_last_success("sms-a", "outgoing", clock.now - 86_400)
    assert sample(metrics, "sms_archiver_last_success_timestamp_seconds", service="sms-a", direction="outgoing") == (
        clock.now - 86_400
    )
    assert metrics.health().healthy  # the first cycle has not had its chance yet
    body = metrics.health().body
    assert body["stale"] == ["sms-a/outgoing"]
    clock.now += 30
    metrics.observe_cycle([Report("sms-a", "outgoing", 0)], seconds=1)
    assert metrics.health().healthy


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        (":9108", ("0.0.0.0", 9108)),
        ("[::1]:9108", ("::1", 9108)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.fixture
def served() -> Iterator[tuple[Metrics, Clock, str]]:
    clock = Clock()
    metrics = Metrics(max_age_seconds=3600, clock=clock)
    server = MetricsServer(metrics, "127.0.0.1", 0).start()
    try:
        host, port = server.address
        yield metrics, clock, f"{host}:{port}"
    finally:
        server.stop()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_http_metrics_and_healthz(served: tuple[Metrics, Clock, str]) -> None:
    metrics, clock, address = served
    metrics.observe_cycle([Report("sms-a", "outgoing", 42)], seconds=1)
    status, content_type, text = get(f"http://{address}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    [archived] = [s for s in families["sms_archiver_records_archived"].samples if s.name.endswith("_total")]
    assert archived.labels == {"service": "sms-a", "direction": "outgoing"} and archived.value == 42

    status, content_type, text = get(f"http://{address}/healthz")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(text)["last_success"]["sms-a/outgoing"]["age_seconds"] == 0
    assert probe(address)[0] is True

    clock.now += 3601
    status, _, text = get(f"http://{address}/healthz")
    assert status == 503
    assert json.loads(text)["stale"] == ["sms-a/outgoing"]
    assert probe(address)[0] is False

    assert get(f"http://{address}/")[0] == 404


def test_probe_of_nothing_listening_is_unhealthy() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        healthy, said = probe(f"127.0.0.1:{port}", timeout=2)
    assert not healthy and "healthz" in said


def test_a_service_left_to_another_instance_is_counted_and_not_held_against_health() -> None:
    clock = Clock()
    metrics = Metrics(max_age_seconds=600, clock=clock)
    metrics.observe_cycle([Report("sms-a", "outgoing", 3), Report("sms-b", "outgoing", 2)], seconds=1.0)
    clock.now += 500
    metrics.observe_cycle([Report("sms-a", "outgoing", 1), Report("sms-b", "outgoing", 0, skipped="held")], seconds=1)
    clock.now += 500
    metrics.observe_cycle([Report("sms-a", "outgoing", 1), Report("sms-b", "outgoing", 0, skipped="held")], seconds=1)
    assert sample(metrics, "sms_archiver_services_skipped_total", service="sms-b", direction="outgoing") == 2
    assert metrics.health().healthy, metrics.health()


def test_the_account_of_each_service_is_one_info_series_that_follows_a_move() -> None:
    metrics = Metrics(max_age_seconds=3600)

    def accounts() -> dict[str, str]:
        text, _ = metrics.exposition(None)
        return {
            sample.labels["service"]: sample.labels["account"]
            for family in text_string_to_metric_families(text.decode())
            for sample in family.samples
            if sample.name == "sms_archiver_service_account_info" and sample.value == 1
        }

    metrics.set_service_accounts({"sms-a1-1": "shop", "sms-b1-1": "agency"})
    assert accounts() == {"sms-a1-1": "shop", "sms-b1-1": "agency"}
    # A service moved to another account: one series, the new account's (not both).
    metrics.set_service_accounts({"sms-a1-1": "agency", "sms-c1-1": ""})
    assert accounts() == {"sms-a1-1": "agency", "sms-b1-1": "agency"}
