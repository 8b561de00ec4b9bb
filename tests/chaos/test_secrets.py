"""Secrets never leak: every command, at DEBUG, with known secret values; then everything is scanned.

Each subcommand of ``sms-archiver --help`` (``demo`` and ``emulator`` aside: they use no settings)
runs with distinctive values for the OVH application key and secret, the consumer key, the storage
access key pair and the ping URL's token (the ping goes to a closed loopback port, so its failure
warnings are exercised too), from the environment or from a secret-files directory. Then stdout,
stderr, the retrieved files, the daemon's log, ``/metrics`` and ``/healthz``, and every object in the
bucket (body and metadata) are searched for any of them. The error paths (OVH refusing the
signature, a storage endpoint refusing connections, settings that are wrong next to secrets) are
searched the same way.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from archiver.cli import build_parser
from archiver.emulator import EmulatorServer, generate_sample_data
from tests.conftest import S3Target
from tests.integration.helpers import SERVICE, Result, cli_env, iter_all_objects, run_cli, store_from_env
from tests.integration.test_daemon import DaemonProcess, free_port

# Distinctive values: each "core" (the part before -DO-NOT-LEAK) is searched for too, to catch a
# secret shown truncated or with its suffix masked.
SECRETS = {
    "application_key": "ak-Zq81xT-DO-NOT-LEAK",
    "application_secret": "as-Wm47kP-DO-NOT-LEAK",
    "consumer_key": "ck-Hx29vN-DO-NOT-LEAK",
    "access_key_id": "AKIDg7Rb2-DO-NOT-LEAK",
    "secret_access_key": "sak-Pv53qL-DO-NOT-LEAK",
    "ping_token": "ping-TOKEN-Rj6yS-DO-NOT-LEAK",
    "wrong_application_secret": "as-WRONG-c3Tu-DO-NOT-LEAK",
    "erasure_key": "ek-Ty38mW-DO-NOT-LEAK",
}
NEEDLES = {name: (value, value.removesuffix("-DO-NOT-LEAK")) for name, value in SECRETS.items()}

# Commands that use no settings, hence no secret.
NOT_SCANNED = {"demo", "emulator"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    return free_port()


def find_leaks(data: str | bytes, where: str) -> list[str]:
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return [
        f"{name} in {where}" for name, needles in NEEDLES.items() if any(needle.encode() in raw for needle in needles)
    ]


@dataclass
class Scan:
    """What was searched and what was found."""

    leaks: list[str] = field(default_factory=list)
    places: int = 0

    def add(self, data: str | bytes, where: str) -> None:
        self.places += 1
        self.leaks.extend(find_leaks(data, where))

    def result(self, result: Result, where: str) -> None:
        self.add(result.stdout, f"stdout of {where}")
        self.add(result.stderr, f"stderr of {where}")


@pytest.fixture
def secret_emulator() -> Iterator[EmulatorServer]:
    """The OVH emulator, accepting only the distinctive credentials; 400 days of data for retention."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    data = generate_sample_data(services=(SERVICE,), outgoing=80, incoming=15, days=400, now=now)
    with EmulatorServer(
        application_key=SECRETS["application_key"],
        application_secret=SECRETS["application_secret"],
        consumer_key=SECRETS["consumer_key"],
        services=data,
    ) as emulator:
        yield emulator


def ping_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/{SECRETS['ping_token']}"


def secret_env(emulator: EmulatorServer, s3: S3Target, *, via: str, directory: Path, **extra: str) -> dict[str, str]:
    """The environment of every command: DEBUG logs, secrets from the environment or from files."""
    secrets = {
        "SMS_ARCHIVER_OVH__APPLICATION_KEY": SECRETS["application_key"],
        "SMS_ARCHIVER_OVH__APPLICATION_SECRET": SECRETS["application_secret"],
        "SMS_ARCHIVER_OVH__CONSUMER_KEY": SECRETS["consumer_key"],
        "SMS_ARCHIVER_STORAGE__ACCESS_KEY_ID": SECRETS["access_key_id"],
        "SMS_ARCHIVER_STORAGE__SECRET_ACCESS_KEY": SECRETS["secret_access_key"],
        "SMS_ARCHIVER_PING__URL": ping_url(closed_port()),
        "SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY": SECRETS["erasure_key"],
    }
    env = cli_env(
        emulator,
        s3.env,
        SMS_ARCHIVER_LOG__LEVEL="debug",
        SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS="300",
        SMS_ARCHIVER_RETENTION__ENABLED="true",
        **extra,
    )
    if via == "env":
        env.update(secrets)
        return env
    # One file per secret, named both ways the README documents, with the newline `head -n 1` leaves.
    directory.mkdir(parents=True, exist_ok=True)
    for index, (name, value) in enumerate(sorted(secrets.items())):
        env.pop(name, None)
        file_name = name if index % 2 else name.removeprefix("SMS_ARCHIVER_").lower()
        (directory / file_name).write_text(value + "\n", encoding="utf-8")
    env["SMS_ARCHIVER_SECRETS_DIR"] = str(directory)
    return env


def scan_bucket(scan: Scan, s3: S3Target) -> int:
    """Every object of the bucket (inside the archive's prefix or not): body and metadata. Returns the count."""
    client = s3.client()
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
        for entry in page.get("Contents", []):
            response = client.get_object(Bucket=s3.bucket, Key=entry["Key"])
            body = response["Body"].read()
            scan.add(entry["Key"], f"key {entry['Key']}")
            scan.add(body, f"object {entry['Key']}")
            scan.add(repr(response.get("Metadata", {})), f"metadata of {entry['Key']}")
            count += 1
    return count


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def subcommands() -> set[str]:
    """Every command of ``sms-archiver --help``, with ``state``'s actions as ``state show`` / ``state reset``."""
    names: set[str] = set()
    commands = next(action for action in build_parser()._actions if action.dest == "command")
    for name, sub in getattr(commands, "choices", {}).items():
        nested = [action for action in sub._actions if action.dest == f"{name}_command"]
        names.update(f"{name} {child}" for child in nested[0].choices) if nested else names.add(name)
    return names


def run_daemon_and_scan(scan: Scan, env: Mapping[str, str]) -> None:
    """``sms-archiver run`` until its first archive job is over; then metrics, /healthz, SIGTERM; all scanned."""
    port = free_port()
    daemon_env = {
        **env,
        "SMS_ARCHIVER_SCHEDULE__ARCHIVE": "1h",
        "SMS_ARCHIVER_METRICS__LISTEN": f"127.0.0.1:{port}",
    }
    with DaemonProcess(daemon_env) as daemon:
        try:
            daemon.wait_for("job_finished", timeout=60, job="archive")
            daemon.wait_for("ping_failed", timeout=30)
            for path in ("/metrics", "/healthz"):
                status, body = fetch(f"http://127.0.0.1:{port}{path}")
                assert status in (200, 503), (path, status)
                scan.add(body, f"daemon {path}")
        finally:
            daemon.signal(signal.SIGTERM)
            code = daemon.wait_exit(timeout=60)
        scan.add(daemon.output(), "the daemon's stdout and stderr")
        assert code == 0, daemon.output()[-3000:]


def run_web_and_scan(scan: Scan, env: Mapping[str, str], directory: Path) -> None:
    """``sms-archiver web`` over the archive: its pages, API and CSV, and its output, all scanned."""
    directory.mkdir()
    log_path = directory / "web.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "archiver", "web", "--port", "0"],
            env={**env, "SMS_ARCHIVER_WEB__CACHE_DIR": str(directory / "cache")},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # the URL, printed first
            scan.add(line.encode(), "web's stdout")
            url = line.split()[3]
            assert url.startswith("http://127.0.0.1:"), line
            for path in ("", "overview", "api/sms?limit=1000", "api/months", "export.csv"):
                status, body = fetch(url + path)
                assert status == 200, (path, status)
                scan.add(body, f"web /{path}")
        finally:
            process.terminate()
            process.wait(timeout=30)
    scan.add(log_path.read_bytes(), "web's stderr")


@pytest.mark.parametrize("via", ["env", "files"])
def test_every_command_at_debug_leaks_no_secret(
    secret_emulator: EmulatorServer, s3_bucket: S3Target, tmp_path: Path, via: str
) -> None:
    env = secret_env(secret_emulator, s3_bucket, via=via, directory=tmp_path / "credentials")
    today = dt.date.today()
    first_month = (today - dt.timedelta(days=410)).strftime("%Y-%m")
    last_month = today.strftime("%Y-%m")
    retrieved = tmp_path / "retrieved.csv"
    scan = Scan()
    ran: set[str] = set()

    def run(*args: str) -> Result:
        result = run_cli(*args, env=env, timeout=120)
        name = " ".join(args[:2]) if args[0] in ("state", "hold") else args[0]
        ran.add(name)
        scan.result(result, " ".join(args))
        assert result.code == 0, f"{' '.join(args)} exited {result.code}:\n{result.stderr[-3000:]}"
        return result

    archived = run("archive")
    assert any('"ping_failed"' in line for line in archived.stderr.splitlines()), "the ping path did not run"
    assert any('"level": "debug"' in line for line in archived.stderr.splitlines()), "not at DEBUG"
    run("backfill", "--from", (today - dt.timedelta(days=30)).isoformat(), "--to", today.isoformat())
    # Read-only commands, two at a time.
    read_only = [
        ("check-config",),
        ("state", "show"),
        ("state", "show", "--json"),
        ("months", "--json"),
        ("retrieve", "--month", first_month, "--until-month", last_month),
        ("retrieve", "--month", first_month, "--until-month", last_month, "--excel", "-o", str(retrieved)),
        ("verify",),
        ("status",),
        ("status", "--json"),
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(run, *args) for args in read_only]:
            future.result()
    assert retrieved.stat().st_size > 1000
    scan.add(retrieved.read_bytes(), "the file retrieve wrote")
    run("compact")
    hold = run("hold", "add", "--receiver", "+33612345678", "--reason", "case 1").stdout.strip()
    run("retention")  # dry run
    applied = run("retention", "--apply", "--json")
    assert secret_emulator.deleted, f"retention --apply deleted nothing:\n{applied.stdout[:2000]}"
    number = next(iter(secret_emulator.outgoing(SERVICE).values()))["receiver"]
    run("erase", "--number", number)  # dry run
    run("erase", "--number", number, "--yes", "--at-ovh", "--json")
    for args in (("hold", "list", "--json"), ("hold", "remove", hold, "--reason", "closed"), ("hold", "list")):
        run(*args)
    run("audit")
    run("audit", "--json")
    run("state", "reset", "--service", SERVICE, "--yes")

    run_daemon_and_scan(scan, env)
    ran.add("run")
    run_web_and_scan(scan, env, tmp_path / "web")
    ran.add("web")
    assert subcommands() - NOT_SCANNED <= ran, f"commands not run: {subcommands() - NOT_SCANNED - ran}"

    objects = scan_bucket(scan, s3_bucket)
    assert objects > 20
    # The same objects through the archiver's own store (what every reader sees).
    store = store_from_env(s3_bucket.env)
    for key, data in iter_all_objects(store):
        scan.add(data, f"store object {key}")
    assert not scan.leaks, "secrets leaked:\n" + "\n".join(dict.fromkeys(scan.leaks))
    assert scan.places > 2 * objects


# -- error paths ---------------------------------------------------------------------------------


def test_a_rejected_signature_leaks_nothing(
    secret_emulator: EmulatorServer, s3_bucket: S3Target, tmp_path: Path
) -> None:
    env = secret_env(
        secret_emulator,
        s3_bucket,
        via="env",
        directory=tmp_path,
        SMS_ARCHIVER_OVH__MAX_RETRIES="1",
    )
    env["SMS_ARCHIVER_OVH__APPLICATION_SECRET"] = SECRETS["wrong_application_secret"]
    scan = Scan()
    today = dt.date.today().isoformat()
    for args in (
        ("archive",),
        ("check-config",),
        ("backfill", "--from", today, "--to", today),
        ("retention",),
        ("run",),
    ):
        result = run_cli(*args, env=env, timeout=120)
        scan.result(result, " ".join(args))
        assert result.code == 1, f"{args}: exit {result.code}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr
        if args != ("check-config",):
            assert "SMS_ARCHIVER_OVH__" in result.stderr or "credentials" in result.stderr, result.stderr[-2000:]
    assert secret_emulator.stats.status_count(400) >= 4, "the emulator did not reject signatures"
    scan_bucket(scan, s3_bucket)
    assert not scan.leaks, "secrets leaked:\n" + "\n".join(dict.fromkeys(scan.leaks))


def test_a_storage_endpoint_refusing_connections_leaks_nothing(
    secret_emulator: EmulatorServer, s3_bucket: S3Target, tmp_path: Path
) -> None:
    env = secret_env(
        secret_emulator,
        s3_bucket,
        via="env",
        directory=tmp_path,
        SMS_ARCHIVER_STORAGE__ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}",
        SMS_ARCHIVER_STORAGE__MAX_ATTEMPTS="2",
        SMS_ARCHIVER_STORAGE__TIMEOUT_SECONDS="5",
    )
    scan = Scan()
    month = dt.date.today().strftime("%Y-%m")
    commands = (
        ("archive",),
        ("check-config",),
        ("status",),
        ("months",),
        ("verify",),
        ("retrieve", "--month", month, "--service", SERVICE),
        ("compact",),
        ("retention",),
        ("state", "show", "--service", SERVICE),
        ("run",),
    )
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda args: (args, run_cli(*args, env=env, timeout=120)), commands))
    for args, result in results:
        scan.result(result, " ".join(args))
        assert result.code == 1, f"{args}: exit {result.code}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert not scan.leaks, "secrets leaked:\n" + "\n".join(dict.fromkeys(scan.leaks))


def test_an_ovh_endpoint_refusing_connections_leaks_nothing(s3_bucket: S3Target, tmp_path: Path) -> None:
    with EmulatorServer(
        application_key=SECRETS["application_key"],
        application_secret=SECRETS["application_secret"],
        consumer_key=SECRETS["consumer_key"],
    ) as emulator:
        env = secret_env(emulator, s3_bucket, via="files", directory=tmp_path / "credentials")
    # The emulator is stopped: its port now refuses connections.
    env["SMS_ARCHIVER_OVH__MAX_RETRIES"] = "1"
    scan = Scan()
    for args in (("archive",), ("check-config",)):
        result = run_cli(*args, env=env, timeout=120)
        scan.result(result, " ".join(args))
        assert result.code == 1, f"{args}: exit {result.code}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr
    assert not scan.leaks, "secrets leaked:\n" + "\n".join(dict.fromkeys(scan.leaks))


# -- a wrong setting next to secrets: the message must not echo them ------------------------------

URL = "http://127.0.0.1:9/" + SECRETS["ping_token"]


@dataclass(frozen=True)
class Misconfigured:
    id: str
    env: dict[str, str] = field(default_factory=dict)
    toml: str | None = None
    unset: tuple[str, ...] = ()  # variables to leave out (an environment section would hide the file's)


MISCONFIGURED = [
    Misconfigured("env-other-ping-field", {"SMS_ARCHIVER_PING__URL": URL, "SMS_ARCHIVER_PING__TIMEOUT_SECONDS": "0"}),
    Misconfigured(
        "env-section-json",
        {"SMS_ARCHIVER_OVH": f'{{"application_secret": "{SECRETS["application_secret"]}", "concurrency": "x"}}'},
    ),
    Misconfigured("env-section-not-json", {"SMS_ARCHIVER_PING": URL}),
    Misconfigured(
        "endpoint-with-credentials",
        {
            "SMS_ARCHIVER_STORAGE__URL": "s3://bucket-name/x",
            "SMS_ARCHIVER_STORAGE__ENDPOINT_URL": f"http://{SECRETS['access_key_id']}:{SECRETS['secret_access_key']}"
            "@127.0.0.1:9",
        },
    ),
    Misconfigured("toml-secret-as-list", toml=f'[ovh]\napplication_secret = ["{SECRETS["application_secret"]}"]\n'),
    Misconfigured("toml-ping-url-next-to-a-wrong-timeout", toml=f'[ping]\nurl = "{URL}"\ntimeout_seconds = "soon"\n'),
    Misconfigured(
        "toml-unknown-key-next-to-secret", toml=f'[ovh]\nconsumer_key = "{SECRETS["consumer_key"]}"\nfoo = 1\n'
    ),
    Misconfigured(
        "toml-half-key-pair",
        toml=f'[storage]\nurl = "s3://bucket-name/x"\nsecret_access_key = "{SECRETS["secret_access_key"]}"\n',
    ),
    Misconfigured(
        "toml-ping-section-as-string",
        toml=f'ping = "{URL}"\n',
    ),
    Misconfigured(
        "toml-ovh-section-as-string",
        toml=f'ovh = "{SECRETS["application_secret"]}"\n',
        unset=("SMS_ARCHIVER_OVH__ENDPOINT",),
    ),
]


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=case.id) for case in MISCONFIGURED],
)
def test_a_wrong_setting_next_to_secrets_does_not_echo_them(case: Misconfigured, tmp_path: Path) -> None:
    # These commands stop at the settings: no emulator, and the OVH endpoint is a closed port anyway.
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMS_ARCHIVER_")}
    env.update(
        {
            "SMS_ARCHIVER_OVH__ENDPOINT": f"http://127.0.0.1:{closed_port()}/1.0",
            "SMS_ARCHIVER_STORAGE__URL": (tmp_path / "archive").as_uri(),
            "SMS_ARCHIVER_SECRETS_DIR": "/nonexistent-sms-archiver-secrets",
            "SMS_ARCHIVER_LOG__FORMAT": "json",
            **case.env,
        }
    )
    for name in case.unset:
        del env[name]
    if case.toml is not None:
        path = tmp_path / "config.toml"
        path.write_text(case.toml, encoding="utf-8")
        env["SMS_ARCHIVER_CONFIG"] = str(path)
    result = run_cli("--log-level", "debug", "archive", env=env, timeout=60)
    assert result.code != 0
    leaks = find_leaks(result.stdout + result.stderr, case.id)
    assert not leaks, f"{leaks}:\n{result.stderr}"


def test_secret_scan_finds_what_it_looks_for() -> None:
    """The scanner itself: a leak, even truncated, is found; look-alikes are not."""
    assert find_leaks(f"x {SECRETS['consumer_key']} y", "t") == ["consumer_key in t"]
    assert find_leaks(SECRETS["ping_token"].removesuffix("-DO-NOT-LEAK").encode(), "t") == ["ping_token in t"]
    assert find_leaks("**********", "t") == []
    assert "state show" in subcommands() and "state reset" in subcommands() and "run" in subcommands()
