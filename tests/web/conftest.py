"""An archive written by the real pipeline (emulator -> ``sms-archiver archive``), and the browser over it.

The sample data holds the emulator's nasty messages (quotes, ``;``, newlines, emoji, formulas), plus
messages made of HTML, and one SMS archived twice (its delivery status changed between two cycles).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from archiver.config import ArchiveSettings, Settings, StorageSettings, WebSettings
from archiver.emulator import EmulatorServer, generate_sample_data
from archiver.web.serve import WebServer, build_context
from tests.integration.helpers import CREDENTIALS, PARIS, api_truth, cli_env, local_storage_env, run_cli

SERVICES = ("sms-web00001-1", "sms-web00002-1")
HTML_MESSAGES = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<img src=x onerror="window.xssRan=1"><b>bold?</b> & "quotes" \'too\'',
)


@dataclass
class Archive:
    directory: Path
    env: dict[str, str]  # for the CLI
    truth: dict[tuple[str, str, int], dict[str, str]]  # (service, direction, id) -> the API's record as CSV columns
    html_ids: list[int]  # outgoing ids of the first service whose message is HTML
    twice: int  # an outgoing id of the first service archived in two versions
    receiver: str  # a receiver with several SMS


def _truth(emulator: EmulatorServer) -> dict[tuple[str, str, int], dict[str, str]]:
    from archiver.records import COLUMNS

    truth = {}
    for service in SERVICES:
        for direction, rows in api_truth(emulator, service).items():
            for sms_id, fields in rows.items():
                truth[(service, direction, sms_id)] = dict(zip(COLUMNS[direction], fields, strict=True))
    return truth


@pytest.fixture(scope="package")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    directory = tmp_path_factory.mktemp("web") / "archive"
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    data = generate_sample_data(services=SERVICES, outgoing=400, incoming=80, days=75, now=now)
    first = data[SERVICES[0]].outgoing
    html_ids = sorted(first)[5 : 5 + len(HTML_MESSAGES)]
    for sms_id, message in zip(html_ids, HTML_MESSAGES, strict=True):
        first[sms_id]["message"] = message
    # Pending, and young enough for the next cycle's re-check (the lookback): it gets a second version.
    recent = now - dt.timedelta(hours=48)
    pending = [
        sms_id
        for sms_id, raw in first.items()
        if raw.get("ptt") in (1, 2, 3)
        and not raw.get("deliveredAt")
        and dt.datetime.fromisoformat(raw["creationDatetime"]) > recent
    ]
    assert pending, "the sample data should hold young SMS still pending"
    twice = pending[0]
    with EmulatorServer(**CREDENTIALS, services=data) as emulator:
        env = cli_env(emulator, local_storage_env(directory), SMS_ARCHIVER_ARCHIVE__TIMEZONE="Europe/Paris")
        result = run_cli("archive", env=env)
        assert result.code == 0, result.stderr
        created = dt.datetime.fromisoformat(first[twice]["creationDatetime"])
        delivered = (created + dt.timedelta(minutes=3)).isoformat()
        emulator.update_outgoing(SERVICES[0], twice, ptt=4, deliveredAt=delivered)
        result = run_cli("archive", env=env)
        assert result.code == 0, result.stderr
        truth = _truth(emulator)
    receivers: dict[str, int] = {}
    for (_service, direction, _id), row in truth.items():
        if direction == "outgoing":
            receivers[row["receiver"]] = receivers.get(row["receiver"], 0) + 1
    receiver = max(receivers, key=lambda number: receivers[number])
    yield Archive(
        directory,
        {k: v for k, v in env.items() if not k.startswith("SMS_ARCHIVER_OVH")},
        truth,
        html_ids,
        twice,
        receiver,
    )


def web_settings(directory: Path, cache: Path, **web: Any) -> Settings:
    return Settings(
        storage=StorageSettings(url=directory.as_uri()),
        archive=ArchiveSettings(timezone="Europe/Paris"),
        web=WebSettings(cache_dir=str(cache), **web),
    )


@pytest.fixture
def start_web(tmp_path: Path) -> Iterator[Any]:
    """Start the browser on 127.0.0.1 (a free port) over an archive; stopped at teardown."""
    servers: list[WebServer] = []

    def start(directory: Path, **web: Any) -> str:
        settings = web_settings(directory, tmp_path / f"cache{len(servers)}", **web)
        server = WebServer(build_context(settings, min_refresh_seconds=0), "127.0.0.1", 0).start()
        servers.append(server)
        return server.url.rstrip("/")

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def web(archive: Archive, start_web: Any) -> str:
    url: str = start_web(archive.directory)
    return url


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def get(url: str, headers: Mapping[str, str] | None = None) -> Answer:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def paris_day(row: Mapping[str, str]) -> dt.date:
    return dt.datetime.fromisoformat(row["date"]).astimezone(PARIS).date()
