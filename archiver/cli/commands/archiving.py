"""``archive``, ``backfill`` and ``run``: the commands that bring SMS from OVH into the archive."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence

import structlog

from archiver.actions.archive import DirectionReport, every_service_held, run_archive, run_backfill
from archiver.cli.progress import progress_bar
from archiver.cli.tables import add_columns, table_console
from archiver.cli.wiring import settings_from
from archiver.errors import ConfigError, LeaseHeldError
from archiver.ping import Pinger
from archiver.services import Accounts
from archiver.store import open_store

__all__ = ["cmd_archive", "cmd_backfill", "cmd_run"]

log = structlog.get_logger()


def cmd_archive(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    store = open_store(settings.storage)
    # The systemd timer and cron users run this one-shot: it pings the dead man's switch too.
    pinger = Pinger(settings.ping)
    try:
        with pinger.monitored() as outcome:
            with Accounts(settings) as accounts:
                # One account after the other, each under its own rate limit: exit 75 only when every
                # service of every account was held by other instances.
                per_account = accounts.run(
                    lambda account, source: run_archive(account, source, store, progress=progress_bar(args))
                )
            reports = [report for _name, account_reports in per_account for report in account_reports]
            if (held := every_service_held(reports)) is not None:
                raise LeaseHeldError(held)
            outcome.summary = f"{sum(report.rows_written for report in reports)} rows written"
    finally:
        pinger.close()
    _print_reports(reports, "archive cycle", with_accounts=bool(settings.accounts))
    bad = sum(report.malformed for report in reports)
    if bad:
        log.warning("malformed_records_skipped", count=bad, hint="they are retried on every cycle")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.to < args.since:
        raise ConfigError("--to must not be before --from")
    zone = settings.archive.zone
    since = dt.datetime.combine(args.since, dt.time(0), tzinfo=zone)
    # --to is a whole day, inclusive.
    until = dt.datetime.combine(args.to + dt.timedelta(days=1), dt.time(0), tzinfo=zone) - dt.timedelta(seconds=1)
    store = open_store(settings.storage)
    with Accounts(settings) as accounts:
        per_account = accounts.run(
            lambda account, source: run_backfill(
                account, source, store, since=since, until=until, progress=progress_bar(args)
            )
        )
    reports = [report for _name, account_reports in per_account for report in account_reports]
    _print_reports(reports, f"backfill {args.since} .. {args.to}", with_accounts=bool(settings.accounts))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from archiver.daemon import run_daemon

    return run_daemon(settings_from(args), config_path=args.config)


def _print_reports(reports: Sequence[DirectionReport], title: str, *, with_accounts: bool = False) -> None:
    """A table of what each service and direction did, for people at a terminal (logs say it otherwise).

    ``with_accounts``: a first column names each service's OVH account (a configuration with accounts).
    """
    if not sys.stdout.isatty():
        return
    from rich.table import Table

    table = Table(title=title)
    columns = ("service", "direction", "listed", "fetched", "rows written", "parts", "malformed", "API calls", "s")
    add_columns(table, ("account", *columns) if with_accounts else columns, right=columns[2:])
    for report in reports:
        first = [report.account] if with_accounts else []
        if report.skipped:
            table.add_row(*first, report.service, report.direction, "skipped: another instance holds its lease")
            continue
        table.add_row(
            *first,
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
