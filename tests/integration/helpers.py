"""Shared pieces of the integration tests: the emulator with data, the CLI as a subprocess, the truth."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import io
import json
import os
import subprocess
import sys
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archiver.config import StorageSettings
from archiver.emulator import EmulatorServer, generate_sample_data
from archiver.errors import StorageError
from archiver.naming import DIRECTIONS, Direction
from archiver.reader import archived_months, iter_records
from archiver.records import Record, format_instant, parse_api_record
from archiver.store import Store, open_store
from archiver.store.layout import parse_part_key

SERVICE = "sms-test12345-1"
CREDENTIALS = {
    "application_key": "it-app-key-7f3a",
    "application_secret": "it-app-secret-9c1e-DO-NOT-LEAK",
    "consumer_key": "it-consumer-key-44b2-DO-NOT-LEAK",
}
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def make_emulator(*, outgoing: int = 120, incoming: int = 30, days: int = 40, **kwargs: Any) -> EmulatorServer:
    # Data ends an hour ago: all of it is past the default settle delay.
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    data = generate_sample_data(services=(SERVICE,), outgoing=outgoing, incoming=incoming, days=days, now=now)
    return EmulatorServer(**CREDENTIALS, services=data, **kwargs)


def cli_env(emulator: EmulatorServer, storage_env: Mapping[str, str], **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMS_ARCHIVER_")}
    env.update(
        {
            "SMS_ARCHIVER_OVH__ENDPOINT": emulator.url,
            "SMS_ARCHIVER_OVH__APPLICATION_KEY": CREDENTIALS["application_key"],
            "SMS_ARCHIVER_OVH__APPLICATION_SECRET": CREDENTIALS["application_secret"],
            "SMS_ARCHIVER_OVH__CONSUMER_KEY": CREDENTIALS["consumer_key"],
            "SMS_ARCHIVER_OVH__MAX_REQUESTS_PER_SECOND": "500",
            "SMS_ARCHIVER_OVH__CONCURRENCY": "8",
            "SMS_ARCHIVER_SECRETS_DIR": "/nonexistent-sms-archiver-secrets",
            "SMS_ARCHIVER_LOG__FORMAT": "json",
        }
    )
    env.update(storage_env)
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found


def run_cli(*args: str, env: Mapping[str, str], timeout: float = 120) -> Result:
    completed = subprocess.run(
        [sys.executable, "-m", "archiver", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


def local_storage_env(directory: Path) -> dict[str, str]:
    return {"SMS_ARCHIVER_STORAGE__URL": directory.as_uri()}


def store_from_env(storage_env: Mapping[str, str]) -> Store:
    values = {key.removeprefix("SMS_ARCHIVER_STORAGE__").lower(): value for key, value in storage_env.items()}
    return open_store(StorageSettings.model_validate(values))


def api_truth(emulator: EmulatorServer, service: str = SERVICE) -> dict[Direction, dict[int, tuple[str, ...]]]:
    """What the API holds, as archive rows."""
    truth: dict[Direction, dict[int, tuple[str, ...]]] = {}
    for direction in DIRECTIONS:
        records = emulator.outgoing(service) if direction == "outgoing" else emulator.incoming(service)
        truth[direction] = {
            sms_id: parse_api_record(direction, raw, api_zone=PARIS).fields for sms_id, raw in records.items()
        }
    return truth


def archive_contents(store: Store, service: str = SERVICE) -> dict[Direction, dict[int, tuple[str, ...]]]:
    """What the archive holds, as every reader sees it (one row per id, newest version)."""
    contents: dict[Direction, dict[int, tuple[str, ...]]] = {}
    for direction in DIRECTIONS:
        rows: dict[int, tuple[str, ...]] = {}
        for year, month in archived_months(store, service, direction):
            for record in iter_records(store, service, direction, year, month):
                assert record.id not in rows, f"id {record.id} returned twice"
                rows[record.id] = record.fields
        contents[direction] = rows
    return contents


def part_keys(store: Store) -> list[str]:
    return [info.key for info in store.list("") if parse_part_key(info.key)]


def raw_row_count(store: Store) -> int:
    """Rows across every part, duplicates included."""
    total = 0
    for key in part_keys(store):
        data = store.get(key)
        if key.endswith(".gz"):
            data = gzip.decompress(data)
        total += sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=";")) - 1
    return total


def iter_all_objects(store: Store) -> Iterator[tuple[str, bytes]]:
    for info in store.list(""):
        yield info.key, store.get(info.key)


class FailingStore:
    """A real store that fails at a chosen call, as a crash at that moment would."""

    def __init__(self, inner: Store, *, method: str, match: str, after: int = 0) -> None:
        """Fail the ``after + 1``-th and later ``method`` calls ("put" or "delete") on keys containing ``match``."""
        self.inner, self.method, self.match, self.after, self.seen = inner, method, match, after, 0

    def _maybe_fail(self, method: str, key: str) -> None:
        if method == self.method and self.match in key:
            self.seen += 1
            if self.seen > self.after:
                raise StorageError(f"injected crash at {method} {key}")

    def put(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None, lock: bool = False) -> Any:
        self._maybe_fail("put", key)
        return self.inner.put(key, data, metadata=metadata, lock=lock)

    def delete(self, key: str) -> None:
        self._maybe_fail("delete", key)
        return self.inner.delete(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class StoreWrapper:
    """A store in front of another: tests give the archiver a store that misbehaves in one way."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def older_versions_dated_a_month_later(emulator: EmulatorServer) -> tuple[list[tuple[int, Any]], list[Record]]:
    """Every tenth outgoing SMS of the API, and an older version of each dated a month later.

    What a bad export could leave: written last, these versions are the newest for every reader, in
    another month than the API's. Returns the API's raw records and the moved versions.
    """
    raws = sorted(emulator.outgoing(SERVICE).items())[::10]
    moved = []
    for _sms_id, raw in raws:
        record = parse_api_record("outgoing", raw, api_zone=PARIS)
        created = record.created + dt.timedelta(days=31, hours=1)
        fields = list(record.fields)
        fields[1] = format_instant(created)
        fields[8] = "an older version, dated wrong"
        moved.append(dataclasses.replace(record, created=created, fields=tuple(fields)))
    return raws, moved
