"""The history browser's benchmark (issue 11): 1,000,000 SMS over 12 months, served by ``sms-archiver web``.

    .venv/bin/python bench/web.py                  # 1,000,000 SMS (about 10 minutes on 2 cores)
    .venv/bin/python bench/web.py --rows 20000     # a quick look

Steps, each measured on its own:

1. the archive is written straight into a local directory (no API) with the archiver's own writer
   (``write_parts`` + ``record_parts``), month by month, in passes that each cover a slice of time
   (as cycles write, before compaction: about 4 parts a day);
2. the index is built in a child process (``HistoryIndex.refresh``): wall time and peak RSS;
3. ``sms-archiver web`` is started as a child process, and timed over HTTP on 127.0.0.1: the first
   history page (HTML, 100 rows, the first request the server answers), the same page as JSON, a
   receiver search over the 12 months (HTML and JSON), words in the message, and paging to the very
   last page by the cursor (1000 rows a page); then the server's peak RSS (``VmHWM``).

The figures go to ``bench/results.md`` (section "History browser"), replacing an earlier run's.
Targets: first page < 300 ms, 12-month receiver search < 2 s, peak RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zoneinfo
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SERVICE = "sms-bench0001-1"
RECEIVERS = 20_011  # distinct receivers: a receiver has about 50 SMS in a year of 1,000,000
FIRST_PAGE_MS = 300.0
RECEIVER_SEARCH_MS = 2000.0
RSS_MIB = 200.0
_SECTION = "## History browser (issue 11)"


def _months(count: int, today: dt.date) -> list[tuple[int, int]]:
    year, month = today.year, today.month
    months = []
    for _ in range(count):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        months.append((year, month))
    return sorted(months)


def build_archive(directory: Path, rows: int) -> dict[str, Any]:
    """``rows`` outgoing SMS spread evenly over the 12 full months before this one."""
    from archiver.config import ArchiveSettings, Settings
    from archiver.emulator.data import generate_sample_data
    from archiver.logs import configure_logging
    from archiver.manifest import record_parts
    from archiver.records import Record, format_instant, parse_api_record
    from archiver.store import LocalStore
    from archiver.writer import write_parts

    configure_logging("warning", "json")
    store = LocalStore(directory)
    settings = Settings.model_construct(archive=ArchiveSettings(timezone="UTC"))
    data = generate_sample_data(outgoing=2000, incoming=0, days=30, seed=11, now=dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
    pool = [
        parse_api_record("outgoing", raw, api_zone=zoneinfo.ZoneInfo("Europe/Paris"))
        for raw in next(iter(data.values())).outgoing.values()
    ]
    months = _months(12, dt.datetime.now(dt.UTC).date())
    start = dt.datetime(*months[0], 1, tzinfo=dt.UTC)
    last = months[-1]
    end = dt.datetime(last[0] + (last[1] == 12), last[1] % 12 + 1, 1, tzinfo=dt.UTC)
    span = (end - start).total_seconds()
    passes = max(12, 4 * (end - start).days)  # consecutive slices of time: about 4 parts a day
    parts = 0
    for number in range(passes):
        records = []
        for index in range(number * rows // passes, (number + 1) * rows // passes):
            model = pool[index % len(pool)]
            created = start + dt.timedelta(seconds=int(index * span / rows))
            fields = list(model.fields)
            fields[0] = str(40_000_000_000 + index * 3)
            fields[1] = format_instant(created)
            fields[3] = f"+336{index % RECEIVERS:08d}"
            if fields[9]:
                fields[9] = format_instant(created + dt.timedelta(seconds=4))
            if fields[10]:
                fields[10] = format_instant(created + dt.timedelta(seconds=19))
            records.append(Record("outgoing", int(fields[0]), created, tuple(fields), model.final))
        entries = write_parts(store, settings.archive, SERVICE, "outgoing", records)
        record_parts(store, SERVICE, "outgoing", entries)
        parts += len(entries)
    return {"rows": rows, "parts": parts, "months": len(months), "receiver": f"+336{7:08d}"}


def _env(directory: Path, cache: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMS_ARCHIVER_")}
    env.update(
        SMS_ARCHIVER_STORAGE__URL=directory.as_uri(),
        SMS_ARCHIVER_WEB__CACHE_DIR=str(cache),
        SMS_ARCHIVER_SECRETS_DIR="/nonexistent-sms-archiver-secrets",
        SMS_ARCHIVER_LOG__FORMAT="json",
        SMS_ARCHIVER_LOG__LEVEL="warning",
    )
    return env


def build_index_child() -> None:
    """In the child: build the index of the archive the environment names."""
    from archiver.config import load_settings
    from archiver.store import open_store
    from archiver.web.index import HistoryIndex

    settings = load_settings()
    index = HistoryIndex(open_store(settings.storage), settings.archive.zone, Path(settings.web.cache_dir or "."))
    result = index.refresh()
    print(json.dumps({"rows": result.rows, "months": result.rebuilt, "bytes": index.path.stat().st_size}))


def _measured(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and standard output of a child process."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read() if process.stdout else ""
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command} failed ({process.returncode})")
    return time.monotonic() - started, usage.ru_maxrss / 1024, output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed_get(url: str) -> tuple[float, bytes]:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=120) as response:  # 127.0.0.1 only
        body = response.read()
    return (time.monotonic() - started) * 1000, body


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("sms-archiver web ended early")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("sms-archiver web did not listen in time")


def _peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def serve_and_time(env: dict[str, str], receiver: str, rows: int) -> dict[str, Any]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "archiver", "web", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    timings: dict[str, Any] = {}
    try:
        _wait_listening(port, process)
        timings["first page (HTML, 100 rows, first request)"], page = _timed_get(base + "/")
        assert page.count(b'<td class="date">') == 100
        timings["first page (JSON, 100 rows)"], _ = _timed_get(base + "/api/sms")
        query = urllib.parse.urlencode({"receiver": receiver})
        timings["receiver search, 12 months (HTML)"], page = _timed_get(f"{base}/?{query}")
        timings["receiver search, 12 months (JSON)"], body = _timed_get(f"{base}/api/sms?{query}&limit=1000")
        timings["receiver rows"] = len(json.loads(body)["items"])
        timings["words in the message, 12 months (JSON, 100 rows)"], _ = _timed_get(
            f"{base}/api/sms?{urllib.parse.urlencode({'q': 'Bonjour prête'})}"
        )
        timings["words matching nothing (a scan of every message)"], body = _timed_get(
            f"{base}/api/sms?{urllib.parse.urlencode({'q': 'zzyzx-nowhere'})}"
        )
        assert json.loads(body)["items"] == []
        timings["overview of one receiver, 12 months"], _ = _timed_get(f"{base}/overview?{query}")
        timings["overview of everything, 12 months"], _ = _timed_get(f"{base}/overview")
        after: str | None = None
        pages = 0
        seen = 0
        started = time.monotonic()
        last_ms = 0.0
        while True:
            url = f"{base}/api/sms?limit=1000" + (f"&after={after}" if after else "")
            last_ms, body = _timed_get(url)
            document = json.loads(body)
            pages += 1
            seen += len(document["items"])
            after = document["next"]
            if after is None:
                break
        timings["paging to the end: pages"] = pages
        timings["paging to the end: rows"] = seen
        timings["paging to the end: seconds"] = time.monotonic() - started
        timings["last page (JSON, 1000 rows)"] = last_ms
        timings["last page (HTML, 100 rows)"], _ = _timed_get(f"{base}/?order=asc")
        timings["server peak RSS MiB"] = _peak_rss_mib(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert seen == rows, f"paging gave {seen} rows, not {rows}"
    return timings


def _write_results(path: Path, lines: list[str]) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if _SECTION in text:
        head, _sep, rest = text.partition(_SECTION)
        following = rest.find("\n## ")
        text = head + (rest[following + 1 :] if following >= 0 else "")
    text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory, removed at the end")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument("--build-index-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_index_child:
        build_index_child()
        return 0
    with tempfile.TemporaryDirectory(prefix="sms-web-bench-") as temporary:
        work = args.workdir or Path(temporary)
        archive, cache = work / "archive", work / "cache"
        started = time.monotonic()
        built = build_archive(archive, args.rows)
        write_seconds = time.monotonic() - started
        print(f"archive written: {built} in {write_seconds:.0f} s", flush=True)
        env = _env(archive, cache)
        index_seconds, index_rss, output = _measured([sys.executable, __file__, "--build-index-child"], env)
        indexed = json.loads(output.strip().splitlines()[-1])
        print(f"index built: {indexed} in {index_seconds:.1f} s, peak RSS {index_rss:.0f} MiB", flush=True)
        timings = serve_and_time(env, built["receiver"], args.rows)
        print(json.dumps(timings, indent=2), flush=True)
    rss = timings["server peak RSS MiB"]
    first = timings["first page (HTML, 100 rows, first request)"]
    search = timings["receiver search, 12 months (HTML)"]

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = [
        _SECTION,
        "",
        f"`bench/web.py --rows {args.rows}` on {os.cpu_count()} cores, {dt.datetime.now(dt.UTC):%Y-%m-%d}: "
        f"an archive of {built['rows']:,} sent SMS over {built['months']} months ({built['parts']:,} parts), "
        f"written by the archiver's writer in {write_seconds:.0f} s; `sms-archiver web` over HTTP on 127.0.0.1.",
        "",
        "| measure | figure | target |",
        "|---|---:|---|",
        f"| index build (first start; {indexed['rows']:,} rows, {indexed['bytes'] / 1e6:.0f} MB on disk) | "
        f"{index_seconds:.1f} s, peak RSS {index_rss:.0f} MiB | (once; then only changed months) |",
        f"| first history page (HTML, 100 rows, the server's first request) | {first:.0f} ms | "
        f"< {FIRST_PAGE_MS:.0f} ms: {met(first < FIRST_PAGE_MS)} |",
        f"| first page as JSON (100 rows) | {timings['first page (JSON, 100 rows)']:.0f} ms | |",
        f"| receiver search over 12 months (HTML; {timings['receiver rows']} SMS) | {search:.0f} ms | "
        f"< {RECEIVER_SEARCH_MS:.0f} ms: {met(search < RECEIVER_SEARCH_MS)} |",
        f"| receiver search over 12 months (JSON, all rows) | "
        f"{timings['receiver search, 12 months (JSON)']:.0f} ms | |",
        f"| words in the message over 12 months (JSON, first 100) | "
        f"{timings['words in the message, 12 months (JSON, 100 rows)']:.0f} ms | |",
        f"| words matching nothing (every message scanned) | "
        f"{timings['words matching nothing (a scan of every message)']:.0f} ms | |",
        f"| overview (charts and months) of one receiver, 12 months | "
        f"{timings['overview of one receiver, 12 months']:.0f} ms | |",
        f"| overview of all 12 months | {timings['overview of everything, 12 months']:.0f} ms | |",
        f"| last page reached by paging (JSON, 1000 rows; page {timings['paging to the end: pages']:,}) | "
        f"{timings['last page (JSON, 1000 rows)']:.0f} ms | |",
        f"| paging through all {timings['paging to the end: rows']:,} SMS, 1000 a page | "
        f"{timings['paging to the end: seconds']:.1f} s | every SMS once: met |",
        f"| oldest page (HTML, order=asc) | {timings['last page (HTML, 100 rows)']:.0f} ms | |",
        f"| server peak RSS (VmHWM, after all of the above) | {rss:.0f} MiB | "
        f"< {RSS_MIB:.0f} MiB: {met(rss < RSS_MIB)} |",
        "",
        "The index is a SQLite file in `SMS_ARCHIVER_WEB__CACHE_DIR`, built from the reader's rows; its build",
        "is the first start's cost (`sms-archiver web` starts it in the background at once; a request that",
        "comes first waits for it). Later starts and requests re-read only months whose parts changed.",
    ]
    _write_results(args.output, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
