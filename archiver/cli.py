"""The ``sms-archiver`` command: parse arguments, wire settings to actions, print, exit.

Exit statuses: 0 success; 1 a failure the message explains (OVH, storage, integrity); 2 a wrong
setting or argument; 75 another instance holds the lease (try again later); 130 interrupted.
No business rules live here: each subcommand calls one action module.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import structlog

from archiver.archive import DirectionReport, archive_cycle, backfill
from archiver.config import DIRECTIONS, Settings, load_settings
from archiver.errors import ArchiverError, ConfigError, LeaseHeldError
from archiver.logs import configure_logging, new_run_id
from archiver.reader import archived_services
from archiver.source import OvhSource
from archiver.state import load_state, read_lease, reset_state
from archiver.store import Store, open_store

__all__ = ["EXIT_CODES", "main"]

log = structlog.get_logger()

EXIT_CODES: dict[type[ArchiverError], int] = {ConfigError: 2, LeaseHeldError: 75, ArchiverError: 1}


def exit_code(error: ArchiverError) -> int:
    for kind in type(error).__mro__:
        if kind in EXIT_CODES:
            return EXIT_CODES[kind]
    return 1


# -- output helpers ------------------------------------------------------------------------------


class RichProgress:
    """A progress bar on stderr, for people at a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task: Any = None

    def start(self, description: str, total: int) -> None:
        if total:
            self.bar.start()
            self.task = self.bar.add_task(description, total=total)

    def advance(self, count: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, count)

    def finish(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.bar.stop()
            self.task = None


def _progress(args: argparse.Namespace) -> RichProgress | None:
    return RichProgress() if sys.stderr.isatty() and not args.quiet else None


def _print_reports(reports: Sequence[DirectionReport], title: str) -> None:
    if not sys.stdout.isatty():
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in (
        "service",
        "direction",
        "listed",
        "fetched",
        "rows written",
        "parts",
        "malformed",
        "API calls",
        "s",
    ):
        table.add_column(column, justify="left" if column in ("service", "direction") else "right")
    for report in reports:
        table.add_row(
            report.service,
            report.direction,
            str(report.listed),
            str(report.fetched),
            str(report.rows_written),
            str(report.parts_written),
            str(report.malformed),
            str(report.api_calls),
            f"{report.seconds:.1f}",
        )
    Console().print(table)


# -- wiring --------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace, *, require_storage: bool = True) -> Settings:
    settings = load_settings(args.config, require_storage=require_storage)
    configure_logging(args.log_level or settings.log.level, args.log_format or settings.log.format)
    return settings


@contextmanager
def _source(settings: Settings) -> Iterator[OvhSource]:
    source = OvhSource(settings.ovh)
    try:
        yield source
    finally:
        source.close()


def _parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


# -- subcommands ---------------------------------------------------------------------------------


def cmd_archive(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = open_store(settings.storage)
    with _source(settings) as source:
        reports = archive_cycle(settings, source, store, progress=_progress(args))
    _print_reports(reports, "archive cycle")
    bad = sum(report.malformed for report in reports)
    if bad:
        log.warning("malformed_records_skipped", count=bad, hint="they are retried on every cycle")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.to < args.since:
        raise ConfigError("--to must not be before --from")
    zone = settings.archive.zone
    since = dt.datetime.combine(args.since, dt.time(0), tzinfo=zone)
    # --to is a whole day, inclusive.
    until = dt.datetime.combine(args.to + dt.timedelta(days=1), dt.time(0), tzinfo=zone) - dt.timedelta(seconds=1)
    store = open_store(settings.storage)
    with _source(settings) as source:
        reports = backfill(settings, source, store, since=since, until=until, progress=_progress(args))
    _print_reports(reports, f"backfill {args.since} .. {args.to}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    problems = 0

    def report(what: str, error: Exception | None, detail: str = "") -> None:
        nonlocal problems
        if error is None:
            print(f"ok    {what}{': ' + detail if detail else ''}")
        else:
            problems += 1
            print(f"FAIL  {what}: {error}")

    report("settings", None, f"storage {settings.storage.url}, OVH endpoint {settings.ovh.endpoint}")
    try:
        with _source(settings) as source:
            services = source.list_services()
            report("OVH credentials", None, f"{len(services)} SMS service(s): {', '.join(services) or 'none'}")
            for service in settings.ovh.services:
                try:
                    source.check_service(service)
                    report(f"OVH service {service}", None)
                except ArchiverError as error:
                    report(f"OVH service {service}", error)
    except ArchiverError as error:
        report("OVH API", error)
    try:
        store = open_store(settings.storage)
        check = getattr(store, "check", None)
        if check is not None:
            check()
        report("storage", None, store.describe() + " is reachable and writable")
    except ArchiverError as error:
        report("storage", error)
    return 1 if problems else 0


def _state_services(settings: Settings, store: Store, wanted: str | None) -> list[str]:
    if wanted:
        return [wanted]
    if settings.ovh.services:
        return list(settings.ovh.services)
    return archived_services(store)


def cmd_state_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = open_store(settings.storage)
    document: list[dict[str, Any]] = []
    for service in _state_services(settings, store, args.service):
        lease = read_lease(store, service)
        for direction in DIRECTIONS:
            state = load_state(store, service, direction)
            document.append(
                {
                    "service": service,
                    "direction": direction,
                    "cursor": state.cursor.isoformat() if state.cursor else None,
                    "known_recent": len(state.known),
                    "awaiting_final_status": sum(1 for known in state.known.values() if not known.final),
                    "retry_ids": sorted(state.retry),
                    "interrupted_cycle": state.partial_until.isoformat() if state.partial_until else None,
                    "last_cycle": state.last_cycle,
                    "lease": lease.describe() if lease else None,
                }
            )
    if args.json or not sys.stdout.isatty():
        print(json.dumps(document, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="archive state")
    for column in ("service", "direction", "cursor", "awaiting status", "retry", "last cycle", "lease"):
        table.add_column(column)
    for item in document:
        last = item["last_cycle"]
        table.add_row(
            item["service"],
            item["direction"],
            item["cursor"] or "never archived",
            str(item["awaiting_final_status"]),
            str(len(item["retry_ids"])),
            f"{last.get('finished_at', '')} +{last.get('rows_written', 0)} rows" if last else "",
            item["lease"] or "free",
        )
    Console().print(table)
    return 0


def cmd_state_reset(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not args.yes:
        raise ConfigError(
            "state reset makes the next cycle list everything again (nothing is lost or doubled: rows are "
            "deduplicated by id); add --yes to confirm"
        )
    store = open_store(settings.storage)
    for direction in [args.direction] if args.direction else DIRECTIONS:
        existed = reset_state(store, args.service, direction)
        print(f"{args.service} {direction}: {'cursor reset' if existed else 'no cursor to reset'}")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from archiver.emulator import serve_forever_cli

    return serve_forever_cli(args.emulator_args)


def cmd_demo(args: argparse.Namespace) -> int:
    from archiver.demo import run_demo

    configure_logging(args.log_level or "warning", args.log_format or "console")
    return run_demo(
        storage_url=args.storage_url, outgoing=args.outgoing, incoming=args.incoming, progress=_progress(args)
    )


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sms-archiver",
        description="Keep your OVHcloud SMS history forever, as dated CSV files in S3-compatible storage.",
        epilog="Settings come from --config (TOML), SMS_ARCHIVER_* environment variables and secret files; "
        "see config/sms-archiver.toml and the README.",
    )
    parser.add_argument("--config", metavar="PATH", help="TOML settings file (default: $SMS_ARCHIVER_CONFIG)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override log.level")
    parser.add_argument("--log-format", choices=["auto", "json", "console"], help="override log.format")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    add("archive", cmd_archive, "Run one archive cycle over every configured service and direction.")
    sub = add("backfill", cmd_backfill, "Archive a bounded range of days without moving the cursor.")
    sub.add_argument("--from", dest="since", type=_parse_day, required=True, metavar="YYYY-MM-DD")
    sub.add_argument("--to", type=_parse_day, required=True, metavar="YYYY-MM-DD", help="inclusive")
    add("check-config", cmd_check_config, "Validate settings and check that OVH and the storage answer.")

    state = commands.add_parser("state", help="Show or reset the archive cursors.")
    state_commands = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    show = state_commands.add_parser("show", help="Cursor, pending re-checks and lease of each service.")
    show.set_defaults(handler=cmd_state_show)
    show.add_argument("--service")
    show.add_argument("--json", action="store_true", help="JSON output")
    reset = state_commands.add_parser("reset", help="Forget a cursor so that the next cycle starts over.")
    reset.set_defaults(handler=cmd_state_reset)
    reset.add_argument("--service", required=True)
    reset.add_argument("--direction", choices=DIRECTIONS)
    reset.add_argument("--yes", action="store_true", help="confirm")

    sub = add("emulator", cmd_emulator, "Serve the built-in OVH API emulator on 127.0.0.1 (for trials and tests).")
    sub.add_argument("emulator_args", nargs=argparse.REMAINDER, help="options of the emulator (see --help)")

    sub = add("demo", cmd_demo, "Archive sample data from the built-in OVH emulator: no OVH account needed.")
    sub.add_argument(
        "--storage-url",
        default=None,
        help="where to archive (default: file://$PWD/demo-archive; s3:// works too)",
    )
    sub.add_argument("--outgoing", type=int, default=250, help="sample sent SMS (default 250)")
    sub.add_argument("--incoming", type=int, default=40, help="sample received SMS (default 40)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level or "info", args.log_format or "auto")
    new_run_id()
    try:
        code: int = args.handler(args)
        return code
    except ArchiverError as error:
        print(f"sms-archiver: {error}", file=sys.stderr)
        log.error("command_failed", command=args.command, error_type=type(error).__name__, error=str(error))
        return exit_code(error)
    except KeyboardInterrupt:
        print("sms-archiver: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
