"""The fleet benchmark of issue 12: 1, 2 and 4 daemons on one bucket share 400 services.

One OVH emulator (``python -m archiver.emulator``, a child process) holds ``--fleet-services``
services with a few SMS each, both directions; one S3 server (``moto_server``, a child process on
127.0.0.1) holds a fresh bucket per run. For N = 1, 2 and 4, N ``sms-archiver run`` daemons start
at once on that bucket, with nothing configured to split the services: each takes the lease of
the services nobody holds and skips the others (``service_skipped``). The archive job runs at
start-up and then once a day, so each daemon makes one cycle; once every service and direction
is archived (each daemon's JSON log says ``cursor_advanced`` for the pairs it did) and every
daemon's cycle ended, they are stopped with SIGTERM (killed if still alive after a bound).

Measured per N: the wall time from the daemons' start to the last pair archived (the
``cursor_advanced`` timestamps of the logs), the services each daemon archived and skipped, each
daemon's peak RSS (``os.wait4``), the API requests (the emulator's counter); then exactness:
every month of every service and direction is retrieved (``run_retrieve``, the code behind
``sms-archiver retrieve``, in this process, from the S3 server) and every id the emulator lists
must come out exactly once, and no other. The wall time ratios 1/2 and 1/4 come from one run.

Run it alone: ``.venv/bin/python bench/fleet.py [--services 400] [--output FILE]``; or as the
``fleet`` case of ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "bench")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from run import (  # noqa: E402  (bench/ is not a package: run.py is found on the path set above)
    Case,
    Emulator,
    EmulatorSpec,
    Settings,
    Target,
    _archiver_command,
    _clean_env,
    _log,
    stop_child,
)

PROCESS_COUNTS = (1, 2, 4)
OUTGOING_PER_SERVICE = 20
INCOMING_PER_SERVICE = 5
DIRECTIONS = ("outgoing", "incoming")
HISTORY_DAYS = 3
# Every wait is bounded: the whole fleet's first cycle, each daemon's stop, the S3 server's start.
FLEET_TIMEOUT_SECONDS = 1800.0
STOP_TIMEOUT_SECONDS = 90.0
MOTO_START_SECONDS = 60.0
POLL_SECONDS = 0.2
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


def service_names(count: int) -> list[str]:
    return [f"sms-fleet{index:05d}-1" for index in range(count)]


# --- the S3 server -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MotoServer:
    """``moto_server`` as a child process on 127.0.0.1 (a free port), stopped on exit."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint_url = ""

    def __enter__(self) -> MotoServer:
        port = _free_port()
        script = Path(sys.executable).parent / "moto_server"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
        env = _clean_env({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "-H", "127.0.0.1", "-p", str(port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.endpoint_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + MOTO_START_SECONDS
        while True:
            try:
                with urllib.request.urlopen(self.endpoint_url + "/", timeout=5):  # 127.0.0.1 only
                    break
            except urllib.error.HTTPError:
                break  # it answers: it is up
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"bench: moto_server did not start; see {self.log_path}") from None
                time.sleep(0.1)
        return self

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_child(process)

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def storage_env(endpoint_url: str, bucket: str) -> dict[str, str]:
    return {
        "SMS_ARCHIVER_STORAGE__URL": f"s3://{bucket}/archive",
        "SMS_ARCHIVER_STORAGE__ENDPOINT_URL": endpoint_url,
        "SMS_ARCHIVER_STORAGE__REGION": "us-east-1",
        "SMS_ARCHIVER_STORAGE__ACCESS_KEY_ID": CREDENTIALS["access_key_id"],
        "SMS_ARCHIVER_STORAGE__SECRET_ACCESS_KEY": CREDENTIALS["secret_access_key"],
        "SMS_ARCHIVER_STORAGE__ADDRESSING_STYLE": "path",
    }


# --- the daemons -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Daemon:
    """One ``sms-archiver run`` child, and what its JSON log said so far."""

    index: int
    process: subprocess.Popen[bytes]
    log_path: Path
    offset: int = 0
    pairs: dict[tuple[str, str], float] = field(default_factory=dict)  # (service, direction) -> first cycle's end
    cycles: int = 0  # cursor_advanced events: a pair may be cycled again once its first holder released it
    rows_written: int = 0
    skipped: set[str] = field(default_factory=set)
    cycle_outcome: str | None = None  # job_finished | job_failed | job_interrupted (the first archive job)
    errors: list[str] = field(default_factory=list)
    returncode: int | None = None
    peak_rss_mib: float = 0.0
    cpu_seconds: float = 0.0

    def read_log(self) -> None:
        """Take in the complete lines the daemon wrote since the last read."""
        with self.log_path.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
        complete = data.rfind(b"\n") + 1
        self.offset += complete
        for line in data[:complete].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            name = event.get("event")
            if name == "cursor_advanced":
                self.pairs.setdefault((str(event["service"]), str(event["direction"])), _epoch(event.get("timestamp")))
                self.cycles += 1
                self.rows_written += int(event.get("rows_written") or 0)
            elif name == "service_skipped":
                self.skipped.add(str(event["service"]))
            elif name in ("job_finished", "job_failed", "job_interrupted") and event.get("job") == "archive":
                self.cycle_outcome = self.cycle_outcome or name
            if event.get("level") in ("error", "critical"):
                self.errors.append(f"{name}: {event.get('error') or event.get('reason') or ''}"[:300])

    def reap(self) -> bool:
        """Whether the child has exited (its rusage taken); never blocks."""
        if self.returncode is not None:
            return True
        pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
        if not pid:
            return False
        self._took(status, usage)
        return True

    def note_peak_rss(self) -> None:
        """Read the running daemon's peak RSS (VmHWM) from /proc.

        Not ``wait4``'s ``ru_maxrss``: for a child started by fork and exec it keeps the forked image's
        size, which here is this benchmark's own (boto3 loaded), not the daemon's.
        """
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text(encoding="ascii").splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_mib = int(line.split()[1]) / 1024
        except OSError:
            pass

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT_SECONDS``; reaped by wait4 only (the pid stays ours)."""
        if self.reap():
            return
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while not self.reap():
            if time.monotonic() > deadline:
                self.process.kill()
                _, status, usage = os.wait4(self.process.pid, 0)
                self._took(status, usage)
                return
            time.sleep(0.05)

    def _took(self, status: int, usage: Any) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        self.process.returncode = self.returncode
        self.cpu_seconds = usage.ru_utime + usage.ru_stime

    @property
    def services(self) -> set[str]:
        return {service for service, _ in self.pairs}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a running process has used so far (/proc/PID/stat), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command's closing parenthesis: state is field 3, utime and stime fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _epoch(stamp: object) -> float:
    if isinstance(stamp, str):
        try:
            return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()


def daemon_env(emulator: Emulator, storage: dict[str, str]) -> dict[str, str]:
    return _clean_env(
        {
            "SMS_ARCHIVER_OVH__ENDPOINT": emulator.url,
            "SMS_ARCHIVER_OVH__APPLICATION_KEY": emulator.credentials["application_key"],
            "SMS_ARCHIVER_OVH__APPLICATION_SECRET": emulator.credentials["application_secret"],
            "SMS_ARCHIVER_OVH__CONSUMER_KEY": emulator.credentials["consumer_key"],
            "SMS_ARCHIVER_OVH__MAX_REQUESTS_PER_SECOND": "1000",
            "SMS_ARCHIVER_OVH__FETCH": "batch",
            "SMS_ARCHIVER_ARCHIVE__DIRECTIONS": ",".join(DIRECTIONS),
            "SMS_ARCHIVER_ARCHIVE__SETTLE_SECONDS": "0",
            # One cycle at start-up, the next a day later: the bench stops the daemons long before.
            "SMS_ARCHIVER_SCHEDULE__ARCHIVE": "1d",
            "SMS_ARCHIVER_SECRETS_DIR": "/nonexistent-sms-archiver-secrets",
            "SMS_ARCHIVER_LOG__FORMAT": "json",
            "SMS_ARCHIVER_LOG__LEVEL": "info",
            # Never a real AWS configuration or an instance metadata service.
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/sms-archiver-bench/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/sms-archiver-bench/aws-credentials",
            **storage,
        }
    )


@dataclass(slots=True)
class FleetRun:
    processes: int
    wall: float
    daemons: list[Daemon]
    requests: int
    by_route: dict[str, int]
    by_status: dict[str, int]
    complete: bool
    servers_cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of the shared servers meanwhile


def run_fleet(
    emulator: Emulator, storage: dict[str, str], processes: int, services: Sequence[str], workdir: Path, moto_pid: int
) -> FleetRun:
    """Start ``processes`` daemons at once; wait until every pair is archived and every first cycle ended."""
    env = daemon_env(emulator, storage)
    wanted = {(service, direction) for service in services for direction in DIRECTIONS}
    emulator.reset_stats()
    servers = {"S3 server": moto_pid, "emulator": emulator.process.pid if emulator.process else 0}
    cpu_before = {name: cpu_seconds(pid) for name, pid in servers.items()}
    daemons: list[Daemon] = []
    started = time.time()
    try:
        for index in range(processes):
            log_path = workdir / f"fleet-{processes}-daemon-{index}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [*_archiver_command(), "run"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            daemons.append(Daemon(index, process, log_path))
        deadline = time.monotonic() + FLEET_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for daemon in daemons:
                daemon.read_log()
            done = set().union(*(daemon.pairs.keys() for daemon in daemons))
            cycles_ended = all(daemon.cycle_outcome for daemon in daemons)
            if (wanted <= done and cycles_ended) or any(daemon.reap() for daemon in daemons):
                break
            time.sleep(POLL_SECONDS)
        stats = emulator.stats()
        servers_cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in servers.items()}
    finally:
        for daemon in daemons:
            if daemon.returncode is None:
                daemon.note_peak_rss()
            daemon.stop()
    for daemon in daemons:
        daemon.read_log()
    first: dict[tuple[str, str], float] = {}
    for daemon in daemons:
        for pair, when in daemon.pairs.items():
            first[pair] = min(when, first.get(pair, when))
    complete = wanted <= first.keys()
    # Until the last pair's first cycle ended: every SMS is in the archive from then on.
    wall = (max(first.values()) - started) if first else time.time() - started
    return FleetRun(
        processes=processes,
        wall=wall,
        daemons=daemons,
        requests=int(stats["total"]),
        by_route=stats["by_route"],
        by_status=stats["by_status"],
        complete=complete,
        servers_cpu=servers_cpu,
    )


# --- exactness ---------------------------------------------------------------------------------------


def api_ids(emulator: Emulator, services: Sequence[str]) -> dict[tuple[str, str], set[int]]:
    """Every id the emulator lists, per service and direction (python-ovh, one client per thread)."""
    import ovh.client

    ovh.client.ENDPOINTS["bench-fleet-emulator"] = emulator.url  # python-ovh knows endpoints by name
    local = threading.local()

    def listing(pair: tuple[str, str]) -> tuple[tuple[str, str], set[int]]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = ovh.Client(
                endpoint="bench-fleet-emulator",
                application_key=emulator.credentials["application_key"],
                application_secret=emulator.credentials["application_secret"],
                consumer_key=emulator.credentials["consumer_key"],
            )
        service, direction = pair
        return pair, set(client.get(f"/sms/{service}/{direction}"))

    pairs = [(service, direction) for service in services for direction in DIRECTIONS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(listing, pairs))


@dataclass(slots=True)
class Exactness:
    expected: int = 0
    retrieved: int = 0
    distinct: int = 0
    duplicated: int = 0  # ids retrieved more than once (extra copies)
    missing: int = 0
    unexpected: int = 0
    months: int = 0

    @property
    def exact(self) -> bool:
        return self.expected > 0 and self.duplicated == self.missing == self.unexpected == 0


def check_exactness(storage: dict[str, str], truth: dict[tuple[str, str], set[int]]) -> Exactness:
    """Retrieve every archived month of every pair; each listed id must come out exactly once."""
    from archiver.actions.retrieve import OutputFormat, run_retrieve
    from archiver.config import StorageSettings
    from archiver.reader import archived_months
    from archiver.store import open_store

    values = {key.removeprefix("SMS_ARCHIVER_STORAGE__").lower(): value for key, value in storage.items()}
    store = open_store(StorageSettings.model_validate(values))

    def retrieved(pair: tuple[str, str]) -> tuple[tuple[str, str], Counter[int], int]:
        service, direction = pair
        months = archived_months(store, service, direction)  # type: ignore[arg-type]
        if not months:
            return pair, Counter(), 0
        output = io.BytesIO()
        run_retrieve(store, service, direction, months, output, OutputFormat())  # type: ignore[arg-type]
        reader = csv.reader(io.StringIO(output.getvalue().decode("utf-8"), newline=""), delimiter=";")
        header = next(reader, [])
        column = header.index("id") if "id" in header else 0
        return pair, Counter(int(row[column]) for row in reader if row), len(months)

    result = Exactness()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for pair, counts, months in pool.map(retrieved, sorted(truth)):
            expected = truth[pair]
            result.expected += len(expected)
            result.retrieved += sum(counts.values())
            result.distinct += len(counts)
            result.duplicated += sum(count - 1 for count in counts.values())
            result.missing += len(expected - counts.keys())
            result.unexpected += len(counts.keys() - expected)
            result.months += months
    return result


# --- the cases ---------------------------------------------------------------------------------------


def fleet_cases(settings: Settings, service_count: int, process_counts: Sequence[int] = PROCESS_COUNTS) -> list[Case]:
    """One row per fleet size: wall time, services per daemon, exactness; the last rows carry the ratios."""
    services = service_names(service_count)
    spec = EmulatorSpec(
        outgoing=service_count * OUTGOING_PER_SERVICE,
        incoming=service_count * INCOMING_PER_SERVICE,
        days=HISTORY_DAYS,
        latency_ms=settings.latency_ms,
        rate_limit=None,
        seed=5,
        services=service_count,
        service_names=tuple(services),
    )
    _log(f"fleet: emulator with {service_count} services, {settings.latency_ms:g} ms latency; moto_server")
    cases: list[Case] = []
    walls: dict[int, float] = {}
    with (
        Emulator(spec, settings.workdir / "emulator-fleet.log") as emulator,
        MotoServer(settings.workdir / "moto-fleet.log") as moto,
    ):
        truth = api_ids(emulator, services)
        client = moto.client()
        for processes in process_counts:
            bucket = f"bench-fleet-{processes}-{uuid.uuid4().hex[:8]}"
            client.create_bucket(Bucket=bucket)
            storage = storage_env(moto.endpoint_url, bucket)
            _log(f"fleet: {processes} daemon(s) on bucket {bucket}")
            moto_pid = moto.process.pid if moto.process else 0
            run = run_fleet(emulator, storage, processes, services, settings.workdir, moto_pid)
            _log(f"fleet: {processes} daemon(s) archived every pair in {run.wall:.1f} s; retrieving every month")
            exact = check_exactness(storage, truth)
            walls[processes] = run.wall
            cases.append(_case(run, exact, service_count))
    for case in cases:
        processes = int(case.details["processes"])
        if processes != min(walls):
            ratio = walls[min(walls)] / walls[processes]
            case.details["ratio"] = ratio
            case.targets.append(Target(f"wall, {min(walls)} / {processes} daemons: {ratio:.2f}x", None))
    return cases


def _case(run: FleetRun, exact: Exactness, service_count: int) -> Case:
    per_daemon = [len(daemon.services) for daemon in run.daemons]
    skipped = [len(daemon.skipped) for daemon in run.daemons]
    archived = len(set().union(*(daemon.services for daemon in run.daemons)))
    failures = [daemon.index for daemon in run.daemons if daemon.cycle_outcome != "job_finished"]
    targets = [
        Target(
            f"every SMS archived exactly once: {exact.distinct:,} of {exact.expected:,} ids retrieved from "
            f"{exact.months:,} service/direction months,"
            f" {exact.duplicated} twice, {exact.missing} missing, {exact.unexpected} unexpected",
            exact.exact and run.complete,
        ),
        Target(
            "services per daemon " + " + ".join(map(str, per_daemon)) + f" ({archived} distinct of {service_count};"
            f" skipped, held by another: {' + '.join(map(str, skipped))}; rows written "
            + " + ".join(f"{daemon.rows_written:,}" for daemon in run.daemons)
            + ")",
            archived == service_count,
        ),
    ]
    daemons_cpu = " + ".join(f"{daemon.cpu_seconds:.0f}" for daemon in run.daemons)
    servers_cpu = ", ".join(f"{name} {seconds:.0f}" for name, seconds in run.servers_cpu.items())
    targets.append(Target(f"CPU s: daemons {daemons_cpu}; {servers_cpu}", None))
    if failures:
        targets.append(Target(f"daemons whose cycle did not finish: {failures}", False))
    return Case(
        case=f"fleet, {service_count} services x 2",
        n=exact.expected,
        strategy=f"{run.processes} daemon{'s' if run.processes > 1 else ''}",
        rows=exact.distinct,
        wall=run.wall,
        requests=run.requests,
        peak_rss_mib=max((daemon.peak_rss_mib for daemon in run.daemons), default=0.0),
        targets=targets,
        by_route=run.by_route,
        by_status=run.by_status,
        details={
            "processes": run.processes,
            "services_per_daemon": per_daemon,
            "skipped_per_daemon": skipped,
            "pairs_per_daemon": [len(daemon.pairs) for daemon in run.daemons],
            "cycles_per_daemon": [daemon.cycles for daemon in run.daemons],
            "rows_written_per_daemon": [daemon.rows_written for daemon in run.daemons],
            "peak_rss_mib": [daemon.peak_rss_mib for daemon in run.daemons],
            "cpu_seconds": [daemon.cpu_seconds for daemon in run.daemons],
            "servers_cpu_seconds": run.servers_cpu,
            "returncodes": [daemon.returncode for daemon in run.daemons],
            "errors": [error for daemon in run.daemons for error in daemon.errors][:20],
            "exactness": {
                "expected": exact.expected,
                "retrieved": exact.retrieved,
                "distinct": exact.distinct,
                "duplicated": exact.duplicated,
                "missing": exact.missing,
                "unexpected": exact.unexpected,
                "months": exact.months,
            },
        },
    )


# --- alone -------------------------------------------------------------------------------------------


@contextmanager
def _scratch(path: Path | None) -> Iterator[Path]:
    import tempfile

    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="sms-archiver-fleet-") as name:
        yield Path(name)


def main(argv: Sequence[str] | None = None) -> int:
    import run as bench_run

    parser = argparse.ArgumentParser(prog="bench/fleet.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=400)
    parser.add_argument("--processes", default="1,2,4", help="fleet sizes, e.g. 1,2,4")
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--output", type=Path, help="the markdown table (default: standard output)")
    args = parser.parse_args(argv)
    counts = tuple(int(item) for item in args.processes.split(",") if item.strip())
    with _scratch(args.workdir) as workdir:
        settings = bench_run.settings_from(
            bench_run.build_parser().parse_args(["--latency-ms", str(args.latency_ms)]), workdir
        )
        load_before = bench_run._load()
        started = time.perf_counter()
        cases = fleet_cases(settings, args.services, counts)
        meta = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
            "total_seconds": time.perf_counter() - started,
            "load_before": load_before,
            "load_after": bench_run._load(),
            "machine": bench_run._machine(),
            "command": " ".join([".venv/bin/python", "bench/fleet.py", *(argv or sys.argv[1:])]),
            "notes": [],
        }
        table = bench_run.render(cases, settings, meta)
        details = json.dumps([case.details for case in cases], indent=1, default=str)
    if args.output:
        args.output.write_text(table + "\n```json\n" + details + "\n```\n", encoding="utf-8")
    else:
        print(table)
        print(details)
    return 0 if all(case.met is not False for case in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
