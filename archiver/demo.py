"""``sms-archiver demo``: the whole pipeline against the built-in OVH emulator, no account needed.

It starts the emulator with generated sample data on 127.0.0.1, runs an archive cycle into a local
directory (or the storage URL given), runs a second one to show that it is incremental, and says
where the CSV files are and how to open them. The OVH settings of the environment are ignored on
purpose, so a demo can never touch a real account; storage settings are honoured for s3:// URLs.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
from pathlib import Path

from pydantic import SecretStr

from archiver.actions.archive import Progress, run_archive
from archiver.config import ArchiveSettings, LeaseSettings, LogSettings, OvhSettings, Settings, load_settings
from archiver.emulator import DEMO_CREDENTIALS, EmulatorServer, generate_sample_data
from archiver.errors import ConfigError
from archiver.source import OvhSource
from archiver.store import open_store
from archiver.store.layout import parse_part_key

__all__ = ["demo_settings", "run_demo"]


def demo_settings(emulator_url: str, storage_url: str) -> Settings:
    """Settings pointing at the emulator, with limits suited to a local server."""
    storage = load_settings(require_storage=False).storage.model_copy(update={"url": storage_url})
    return Settings.model_construct(
        ovh=OvhSettings(
            endpoint=emulator_url,
            application_key=SecretStr(DEMO_CREDENTIALS.application_key),
            application_secret=SecretStr(DEMO_CREDENTIALS.application_secret),
            consumer_key=SecretStr(DEMO_CREDENTIALS.consumer_key),
            max_requests_per_second=200,
            concurrency=8,
        ),
        archive=ArchiveSettings(),
        storage=storage,
        lease=LeaseSettings(),
        log=LogSettings(),
    )


def run_demo(
    *, storage_url: str | None, outgoing: int, incoming: int, progress: Progress | None, web: bool = False
) -> int:
    storage_url = storage_url or (Path.cwd() / "demo-archive").as_uri()
    now = dt.datetime.now(dt.UTC)
    # Sample data ends 20 minutes ago, so all of it is past the default 15-minute settle delay.
    data = generate_sample_data(outgoing=outgoing, incoming=incoming, now=now - dt.timedelta(minutes=20))
    server = EmulatorServer(
        application_key=DEMO_CREDENTIALS.application_key,
        application_secret=DEMO_CREDENTIALS.application_secret,
        consumer_key=DEMO_CREDENTIALS.consumer_key,
        services=data,
    )
    with server:
        settings = demo_settings(server.url, storage_url)
        try:
            store = open_store(settings.storage)
        except ConfigError as error:
            # The URL came from --storage-url (or its default), not from the variable the store names.
            raise ConfigError(str(error).replace("SMS_ARCHIVER_STORAGE__URL", "--storage-url")) from None
        # A second demo run into the same archive continues it: the cycles are not its first.
        earlier = any(parse_part_key(info.key) for info in store.list(""))
        print(f"OVH API emulator on {server.url} with {outgoing} sent and {incoming} received sample SMS")
        print(f"archiving into {store.describe()}" + (" (which holds an earlier demo's archive)" if earlier else ""))
        print()
        with OvhSource(settings.ovh) as source:
            first = run_archive(settings, source, store, progress=progress)
            second = run_archive(settings, source, store, progress=progress)
    labels = ("this cycle  ", "next cycle  ") if earlier else ("first cycle ", "second cycle")
    for label, reports in zip(labels, (first, second), strict=True):
        rows = sum(report.rows_written for report in reports)
        calls = sum(report.api_calls for report in reports)
        rechecked = sum(report.rechecked for report in reports)
        print(f"{label}: {rows:5d} rows written, {calls:4d} OVH API calls ({rechecked} re-checks of pending statuses)")
    parts = [info.key for info in store.list("") if parse_part_key(info.key)]
    print(f"\n{len(parts)} CSV part(s) in {store.describe()}, for example:")
    for key in parts[:3]:
        print(f"  {key}")
    if parts and storage_url.startswith("file://"):
        example = Path(storage_url.removeprefix("file://")) / parts[-1]
        print(
            f"\nLook at one (the archive's exact bytes, for scripts and keeping):  head -5 {os.path.relpath(example)}"
        )
    if parts:
        month = parts[-1].split("/year=")[1][:4] + "-" + parts[-1].split("/month=")[1][:2]
        command = f"SMS_ARCHIVER_STORAGE__URL={shlex.quote(storage_url)} {own_command()} retrieve"
        print(
            "\nA whole month as one clean CSV (each SMS once, sorted):\n"
            f"  {command} --month {month} -o {month}.csv\n"
            "The same month for Excel or LibreOffice (phone numbers keep their '+', dates are dates, no formulas):\n"
            f"  {command} --month {month} --format xlsx -o {month}.xlsx"
        )
    if web:
        from archiver.web.serve import serve_demo

        serve_demo(settings, store)
    return 0


def own_command() -> str:
    """How to run sms-archiver again from any shell (quoted for it): the full path of this installation's script.

    A newcomer's shell rarely has the virtual environment activated, so a bare ``sms-archiver``
    would not be found; the script sits beside the running interpreter.
    """
    script = Path(sys.executable).parent / "sms-archiver"
    if script.is_file() and os.access(script, os.X_OK):
        return shlex.quote(str(script))
    argv0 = Path(sys.argv[0])
    if argv0.name == "sms-archiver" and argv0.is_file():
        return shlex.quote(str(argv0.absolute()))
    return f"{shlex.quote(sys.executable)} -m archiver"
