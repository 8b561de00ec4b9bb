"""The ``sms-archiver`` command: parse arguments, wire settings to actions, print, exit.

Exit statuses: 0 success; 1 a failure the message explains (OVH, storage, integrity); 2 a wrong
setting or argument; 75 another instance holds the lease (try again later); 130 interrupted; 141 the
reader of standard output went away (``| head``), quietly, without a traceback.
No business rules live here: each subcommand calls one action module.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from archiver.archive import DirectionReport, archive_cycle, backfill, every_service_held
from archiver.compact import compact_archive
from archiver.config import DIRECTIONS, Direction, Settings, load_settings
from archiver.errors import ArchiverError, ConfigError, LeaseHeldError
from archiver.layout import check_service_name
from archiver.logs import configure_logging, new_run_id
from archiver.ping import Pinger
from archiver.reader import archived_services, iter_records, summarize_months
from archiver.records import COLUMNS
from archiver.retention import RetentionReport, run_retention
from archiver.retrieve import OutputFormat, month_range, parse_month, retrieve
from archiver.source import CLOCK_TOLERANCE_SECONDS, OvhSource
from archiver.state import load_state, read_lease, reset_state
from archiver.store import LocalStore, Store, open_store
from archiver.tables import add_columns, table_console
from archiver.verify import verify_archive

__all__ = ["EXIT_CODES", "main"]

log = structlog.get_logger()

EXIT_CODES: dict[type[ArchiverError], int] = {ConfigError: 2, LeaseHeldError: 75, ArchiverError: 1}
# The reader of our standard output went away (``sms-archiver retrieve ... | head``): 128 + SIGPIPE, the
# status a shell reports for a program that SIGPIPE ended, such as ``yes`` in ``yes | head -1``.
EXIT_BROKEN_PIPE = 141


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
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        # Elapsed time from the start, the rate, and an estimate: at OVH's default 1 request/s a long
        # backfill must say early how long it will take. The rate and the estimate average over the
        # last minute (speed_estimate_period), so they appear after a few records and stay steady.
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
            speed_estimate_period=60,
        )
        self.task: Any = None

    def start(self, description: str, total: int) -> None:
        if total:
            self.bar.start()
            self.task = self.bar.add_task(description, total=total, rate=records_rate(None))

    def advance(self, count: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, count)
            task = next(task for task in self.bar.tasks if task.id == self.task)
            self.bar.update(self.task, rate=records_rate(task.speed))

    def finish(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.bar.stop()
            self.task = None


def records_rate(per_second: float | None) -> str:
    """A rate of records for the progress bar: ``12.3/s``, ``0.52/s``, or ``…/s`` before it is known."""
    if per_second is None:
        return "…/s"
    return f"{per_second:.2f}/s" if per_second < 10 else f"{per_second:,.0f}/s"


def _progress(args: argparse.Namespace) -> RichProgress | None:
    return RichProgress() if sys.stderr.isatty() and not args.quiet else None


def _print_reports(reports: Sequence[DirectionReport], title: str) -> None:
    if not sys.stdout.isatty():
        return
    from rich.table import Table

    table = Table(title=title)
    columns = ("service", "direction", "listed", "fetched", "rows written", "parts", "malformed", "API calls", "s")
    add_columns(table, columns, right=columns[2:])
    for report in reports:
        if report.skipped:
            table.add_row(report.service, report.direction, "skipped: another instance holds its lease")
            continue
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
    table_console().print(table)


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


def _delimiter(text: str) -> str:
    text = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(text) != 1 or text in '"\r\n':
        raise argparse.ArgumentTypeError("one character other than a quote or a line break (e.g. ; , or tab)")
    return text


def _parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


# -- subcommands ---------------------------------------------------------------------------------


def cmd_archive(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = open_store(settings.storage)
    # The systemd timer and cron users run this one-shot: it pings the dead man's switch too.
    pinger = Pinger(settings.ping)
    pinger.start()
    try:
        with _source(settings) as source:
            reports = archive_cycle(settings, source, store, progress=_progress(args))
        if (held := every_service_held(reports)) is not None:
            raise LeaseHeldError(held)
    except ArchiverError as error:
        pinger.fail(str(error))
        raise
    else:
        pinger.success(f"{sum(report.rows_written for report in reports)} rows written")
    finally:
        pinger.close()
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
            offset = source.clock_offset_seconds()
            clock = f"OVH's clock minus this machine's: {offset} s"
            if abs(offset) > CLOCK_TOLERANCE_SECONDS:
                clock += " (windows and cutoffs use OVH's clock; synchronise this machine's with NTP)"
            report("clock", None, clock)
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
        store.check()
        report("storage", None, store.describe() + " is reachable and writable")
        if store.conditional_writes_supported:
            report("conditional writes", None, "enforced by the store: the single-writer lease is a real fence")
        else:
            report(
                "conditional writes",
                None,
                f"emulated ({store.emulation_reason}): best effort, each write read back, fencing tokens on state",
            )
    except ArchiverError as error:
        report("storage", error)
    return 1 if problems else 0


def _state_services(settings: Settings, store: Store, wanted: str | None) -> list[str]:
    if wanted:
        return [wanted]
    return sorted(set(settings.ovh.services) | set(archived_services(store)))


def cmd_state_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _reading_store(settings)
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
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    from rich.table import Table

    table = Table(title="archive state")
    add_columns(table, ("service", "direction", "cursor", "awaiting status", "retry", "last cycle", "lease"))
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
    table_console().print(table)
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


def _holds_service(store: Store, service: str) -> bool:
    """Whether the archive has a folder or a cursor for ``service`` (reads one key, not the whole listing)."""
    try:
        check_service_name(service)
    except ValueError:
        return False
    for prefix in (f"{service}/", f"_state/{service}/"):
        for _info in store.list(prefix):
            return True
    return False


def _services_in(settings: Settings, store: Store, wanted: str | None) -> list[str]:
    """The configured services and those the archive holds; only ``wanted`` if given (and known)."""
    if wanted and (wanted in settings.ovh.services or _holds_service(store, wanted)):
        return [wanted]
    known = sorted(set(settings.ovh.services) | set(archived_services(store)))
    if wanted:
        if wanted not in known:
            raise ConfigError(
                f"--service {wanted}: no such service in the archive at {store.describe()} nor in the settings; "
                + (f"known: {', '.join(known)}" if known else "the archive holds no service yet")
            )
        return [wanted]
    return known


def _reading_store(settings: Settings) -> Store:
    """The store, for a command that only reads: a local archive directory that does not exist is an error.

    Writers create the directory on their first write; a reader would silently show an empty archive.
    """
    store = open_store(settings.storage)
    if isinstance(store, LocalStore) and not store.directory.is_dir():
        raise ConfigError(
            f"SMS_ARCHIVER_STORAGE__URL (storage.url): {store.describe()}: no such directory; "
            "check the path, or run 'sms-archiver archive' or 'backfill' to start an archive there"
        )
    return store


def _note_if_empty(store: Store, services: list[str]) -> None:
    if not services:
        print(f"note: nothing archived yet in {store.describe()}", file=sys.stderr)


def _one_service(settings: Settings, store: Store, wanted: str | None) -> str:
    services = _services_in(settings, store, wanted)
    if len(services) == 1:
        return services[0]
    if not services:
        raise ConfigError(
            f"the archive at {store.describe()} holds no service yet (run 'sms-archiver archive' or 'backfill' first)"
        )
    raise ConfigError(f"the archive holds several services; choose one with --service: {', '.join(services)}")


def _directions(args: argparse.Namespace) -> list[Direction]:
    return [args.direction] if args.direction else list(DIRECTIONS)


def cmd_months(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _reading_store(settings)
    services = _services_in(settings, store, args.service)
    _note_if_empty(store, services)
    summaries = [
        summary
        for service in services
        for direction in _directions(args)
        for summary in summarize_months(store, service, direction)
    ]
    if args.json:
        print(json.dumps([asdict(summary) for summary in summaries], indent=2))
        return 0
    from rich.table import Table

    table = Table(title=f"archived months in {store.describe()}")
    add_columns(
        table,
        ("service", "direction", "month", "rows", "days", "parts", "size"),
        right=("rows", "days", "parts", "size"),
    )
    for item in summaries:
        table.add_row(
            item.service,
            item.direction,
            item.month,
            str(item.rows),
            str(item.days),
            str(item.parts),
            _human_size(item.bytes),
        )
    table_console().print(table)
    return 0


def _human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def cmd_retrieve(args: argparse.Namespace) -> int:
    first = parse_month(args.month)
    months = month_range(first, parse_month(args.until_month, option="--until-month") if args.until_month else first)
    settings = _settings(args)
    store = _reading_store(settings)
    service = _one_service(settings, store, args.service)
    filters = {
        column: value
        for column, value in (("sender", args.sender), ("receiver", args.receiver), ("tag", args.tag))
        if value is not None
    }
    if args.format == "xlsx":
        return _retrieve_workbook(args, settings, store, service, months, filters)
    fmt = OutputFormat(
        delimiter=args.delimiter or settings.archive.delimiter,
        gzip=args.gzip,
        excel=args.excel,
        neutralize_formulas=args.neutralize_formulas,
        filters=filters,
    )
    count = _write_output(args, lambda output: retrieve(store, service, args.direction, months, output, fmt))
    _note_retrieved(args, service, count)
    return 0


def _write_output(args: argparse.Namespace, write: Callable[[BinaryIO], int]) -> int:
    """Run ``write`` on standard output or on ``--output``; return what it returns (the row count)."""
    if args.output in (None, "-"):
        return write(sys.stdout.buffer)
    # Write beside the target and rename at the end: a failure never leaves a half file behind.
    target = Path(args.output)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as output:
            count = write(output)
        partial.replace(target)
    except OSError as error:
        raise ArchiverError(f"cannot write {target}: {error.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    return count


def _retrieve_workbook(
    args: argparse.Namespace,
    settings: Settings,
    store: Store,
    service: str,
    months: list[tuple[int, int]],
    filters: dict[str, str],
) -> int:
    """``retrieve --format xlsx``: the same records as the CSV, as a workbook (archiver.xlsx)."""
    from archiver.xlsx import write_workbook

    csv_only = [
        option
        for option, given in (
            ("--gzip", args.gzip),
            ("--excel", args.excel),
            ("--delimiter", args.delimiter),
            ("--neutralize-formulas", args.neutralize_formulas),
        )
        if given
    ]
    if csv_only:
        raise ConfigError(f"{', '.join(csv_only)}: for --format csv only (a workbook needs none of them)")
    if args.output in (None, "-") and sys.stdout.isatty():
        raise ConfigError("--format xlsx writes a binary file: give --output FILE.xlsx (or redirect the output)")
    columns = COLUMNS[args.direction]
    unknown = [column for column in filters if column not in columns]
    if unknown:
        raise ConfigError(f"{args.direction} records have no {', '.join(unknown)} column to filter on")
    records = (
        record
        for year, month in months
        for record in iter_records(store, service, args.direction, year, month)
        if all(record.get(column) == wanted for column, wanted in filters.items())
    )
    count = _write_output(
        args, lambda output: write_workbook(records, args.direction, output, zone=settings.archive.zone)
    )
    _note_retrieved(args, service, count)
    return 0


def _note_retrieved(args: argparse.Namespace, service: str, count: int) -> None:
    span = args.month + (f"..{args.until_month}" if args.until_month else "")
    if count == 0:
        print(f"note: no archived {args.direction} SMS for {service} in {span}: header only", file=sys.stderr)
    else:
        log.info("retrieved", service=service, direction=args.direction, months=span, rows=count)


def cmd_verify(args: argparse.Namespace) -> int:
    months = [parse_month(args.month)] if args.month else None
    settings = _settings(args)
    store = _reading_store(settings)
    services = _services_in(settings, store, args.service)
    checks = [
        check for service in services for check in verify_archive(settings, store, service=service, months=months)
    ]
    problems = [problem for check in checks for problem in check.problems]
    if args.json:
        document = [
            {
                "service": check.service,
                "direction": check.direction,
                "month": check.label,
                "parts": check.parts,
                "rows": check.rows,
                "bytes": check.bytes,
                "problems": [asdict(problem) for problem in check.problems],
            }
            for check in checks
        ]
        print(json.dumps(document, indent=2))
    else:
        from rich.table import Table

        table = Table(title=f"verify {store.describe()}")
        add_columns(table, ("service", "direction", "month", "parts", "rows", "result"))
        for check in checks:
            result = "ok" if not check.problems else f"{len(check.problems)} problem(s)"
            table.add_row(check.service, check.direction, check.label, str(check.parts), str(check.rows), result)
        console = table_console()
        console.print(table)
        for problem in problems:
            console.print(f"[red]{problem.kind}[/red] {problem.key}: {problem.detail}", markup=True, highlight=False)
    for problem in problems:
        log.error("verify_problem", kind=problem.kind, key=problem.key, detail=problem.detail)
    if not checks:
        archived = ", ".join(services) if services else "no service"
        print(f"note: nothing to verify in {store.describe()} ({archived}; no archived month)", file=sys.stderr)
    return 1 if problems else 0


def cmd_compact(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = open_store(settings.storage)
    report = compact_archive(settings, store)
    log.info("compaction_done", **asdict(report) | {"days": len(report.days)})
    if sys.stdout.isatty():
        print(f"{report.days_compacted} day(s) compacted: {report.parts_merged} parts merged, {report.rows} rows")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.retention.delete_after_days is None:
        raise ConfigError(
            "invalid settings:\n  SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS: required: retention deletes nothing "
            "without a policy (e.g. 365)"
        )
    if args.apply and not settings.retention.enabled:
        raise ConfigError(
            "invalid settings:\n  SMS_ARCHIVER_RETENTION__ENABLED: must be true to delete at OVH (--apply); "
            "without --apply, retention only shows what it would do"
        )
    store = open_store(settings.storage)
    with _source(settings) as source:
        report = run_retention(
            settings, source, store, apply=args.apply, services=[args.service] if args.service else None
        )
    if args.json or not sys.stdout.isatty():
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_retention(report, limit=args.limit)
    if report.capped:
        raise ArchiverError(
            f"{report.capped} more record(s) were eligible past the cap of "
            f"{settings.retention.max_deletions_per_run} deletions per run and were kept; run again, or raise "
            "SMS_ARCHIVER_RETENTION__MAX_DELETIONS_PER_RUN"
        )
    return 0


def _print_retention(report: RetentionReport, *, limit: int) -> None:
    from collections import Counter

    from rich.table import Table

    title = "retention: deleted at OVH" if report.applied else "retention dry run: nothing deleted (add --apply)"
    table = Table(title=title)
    add_columns(table, ("service", "direction", "id", "date", "action", "reason"))
    for decision in report.decisions[:limit]:
        table.add_row(
            decision.service,
            decision.direction,
            str(decision.id),
            decision.date,
            decision.action,
            decision.reason,
        )
    console = table_console()
    console.print(table)
    if len(report.decisions) > limit:
        console.print(f"... {len(report.decisions) - limit} more (use --json for all)")
    reasons = Counter((decision.action, decision.reason.split(":")[0]) for decision in report.decisions)
    for (action, reason), count in sorted(reasons.items()):
        console.print(f"{count:7d}  {action:8s} {reason}")
    for name, count in sorted(report.younger.items()):
        console.print(f"{count:7d}  keep     younger than the policy ({name})")
    for purge in report.purges:
        verb = "purged" if purge.action == "purged" else "would purge"
        console.print(f"archive: {verb} {purge.service}/{purge.direction} {purge.month} ({purge.objects} objects)")


def cmd_run(args: argparse.Namespace) -> int:
    from archiver.daemon import run_daemon

    return run_daemon(_settings(args), config_path=args.config)


def cmd_status(args: argparse.Namespace) -> int:
    from archiver.status import show_status

    settings = _settings(args)
    return show_status(settings, _reading_store(settings), as_json=args.json)


def cmd_web(args: argparse.Namespace) -> int:
    from archiver.web.serve import serve

    settings = _settings(args)
    _reading_store(settings)
    return serve(settings, host=args.host, port=args.port)


def cmd_emulator(args: argparse.Namespace) -> int:
    from archiver.emulator import serve_forever_cli

    return serve_forever_cli(args.emulator_args)


def cmd_demo(args: argparse.Namespace) -> int:
    from archiver.demo import run_demo

    configure_logging(args.log_level or "warning", args.log_format or "console")
    return run_demo(
        storage_url=args.storage_url,
        outgoing=args.outgoing,
        incoming=args.incoming,
        progress=_progress(args),
        # The history browser, on a terminal only: a script or CI running the demo must not block.
        web=not args.no_web and sys.stdin.isatty() and sys.stdout.isatty(),
    )


# -- parser --------------------------------------------------------------------------------------


def _version() -> str:
    """The installed distribution's version (its metadata), whatever the checkout holds."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sms-archiver")
    except PackageNotFoundError:
        return "(not installed: run from a source tree)"


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    add("archive", cmd_archive, "Run one archive cycle over every configured service and direction.")
    add("run", cmd_run, "Run the daemon: archive on a schedule, compact, verify, retention; sd_notify, metrics, pings.")
    sub = add("status", cmd_status, "Last cycle, cursor and lease of each service and direction; daemons' next runs.")
    sub.add_argument("--json", action="store_true", help="JSON output")
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

    sub = add("months", cmd_months, "List the archived months with their rows, parts and sizes.")
    sub.add_argument("--service", help="one SMS service (default: all)")
    sub.add_argument("--direction", choices=DIRECTIONS, help="default: both")
    sub.add_argument("--json", action="store_true", help="JSON output")

    sub = add(
        "retrieve",
        cmd_retrieve,
        "Write one or more archived months as one CSV (or an Excel workbook), each SMS once (newest version).",
    )
    sub.add_argument("--month", required=True, metavar="YYYY-MM", help="the (first) month")
    sub.add_argument("--until-month", metavar="YYYY-MM", help="last month of a range (inclusive)")
    sub.add_argument("--service", help="required when the archive holds several services")
    sub.add_argument("--direction", choices=DIRECTIONS, default="outgoing", help="default: outgoing")
    sub.add_argument("--output", "-o", metavar="FILE", help="file to write (default: standard output, or -)")
    sub.add_argument("--sender", help="only SMS from this sender (exact match)")
    sub.add_argument("--receiver", help="only SMS to this number (outgoing; exact match)")
    sub.add_argument("--tag", help="only SMS with this tag (exact match)")
    sub.add_argument(
        "--format",
        choices=["csv", "xlsx"],
        default="csv",
        help="csv (default): the archive's own format, byte for byte; xlsx: a workbook for Excel or LibreOffice "
        "(numbers as text, real dates, no formulas)",
    )
    sub.add_argument("--gzip", action="store_true", help="gzip the output")
    sub.add_argument("--excel", action="store_true", help="UTF-8 BOM so Excel shows accents right on a double click")
    sub.add_argument("--delimiter", type=_delimiter, help="output delimiter (default: the archive's, ';')")
    sub.add_argument(
        "--neutralize-formulas",
        action="store_true",
        help="prefix cells starting with = + - @ with a quote, so spreadsheets never run them as formulas",
    )

    sub = add("verify", cmd_verify, "Re-read parts and check checksums, row counts and CSV against the manifests.")
    sub.add_argument("--month", metavar="YYYY-MM", help="one month (default: all)")
    sub.add_argument("--service", help="one SMS service (default: all)")
    sub.add_argument("--json", action="store_true", help="JSON output")

    add("compact", cmd_compact, "Merge the parts of each settled day into one (verified before old parts go).")

    sub = add(
        "retention",
        cmd_retention,
        "Delete SMS at OVH once verifiably archived, per SMS_ARCHIVER_RETENTION__*. A dry run unless --apply.",
    )
    sub.add_argument("--apply", action="store_true", help="really delete at OVH (needs RETENTION__ENABLED=true)")
    sub.add_argument("--service", help="one SMS service (default: all)")
    sub.add_argument("--json", action="store_true", help="JSON output (every decision)")
    sub.add_argument("--limit", type=int, default=50, help="rows shown in the table (default 50)")

    sub = add("web", cmd_web, "Serve the history browser (pages, JSON API, CSV download) from the archive.")
    sub.add_argument("--host", help="address to listen on (default: SMS_ARCHIVER_WEB__HOST, 127.0.0.1)")
    sub.add_argument("--port", type=int, help="port (default: SMS_ARCHIVER_WEB__PORT, 8080; 0: any free port)")

    # No help of its own: --help, like every other option, goes to the emulator, which lists its options.
    emulator_help = "Serve the built-in OVH API emulator on 127.0.0.1 (for trials and tests); options: emulator --help"
    commands.add_parser("emulator", help=emulator_help, description=emulator_help, add_help=False).set_defaults(
        handler=cmd_emulator
    )

    sub = add("demo", cmd_demo, "Archive sample data from the built-in OVH emulator: no OVH account needed.")
    sub.add_argument(
        "--storage-url",
        default=None,
        help="where to archive (default: file://$PWD/demo-archive; s3:// works too)",
    )
    sub.add_argument("--outgoing", type=int, default=250, help="sample sent SMS (default 250)")
    sub.add_argument("--incoming", type=int, default=40, help="sample received SMS (default 40)")
    sub.add_argument("--no-web", action="store_true", help="do not serve the history browser at the end")
    return parser


def _reader_gone() -> int:
    """The reader of standard output went away (``| head``): stop quietly, as ``cat`` or ``yes`` do.

    Python's documentation (signal module, "Note on SIGPIPE") recommends pointing standard output at
    devnull, so that the interpreter's final flush of what is still buffered does not fail again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "emulator":
        # The emulator's own options (--port, --outgoing, ...) go to it untouched.
        args.emulator_args = ["--help" if item == "--help-emulator" else item for item in extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    configure_logging(args.log_level or "info", args.log_format or "auto")
    new_run_id()
    try:
        code: int = args.handler(args)
        # Flush now rather than at exit, so that a reader gone early is noticed here, where it is handled.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _reader_gone()
    except ArchiverError as error:
        # Said once, for people; the log line is for debugging only (it would repeat the message).
        print(f"sms-archiver: {error}", file=sys.stderr)
        log.debug("command_failed", command=args.command, error_type=type(error).__name__, error=str(error))
        return exit_code(error)
    except KeyboardInterrupt:
        print("sms-archiver: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
