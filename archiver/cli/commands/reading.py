"""``months`` and ``retrieve``: what the archive holds, and months of it back out as a CSV or a workbook."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

import structlog

from archiver.actions.retrieve import OutputFormat, month_range, parse_month, run_retrieve
from archiver.actions.status import accounts_of
from archiver.cli.output import human_size, write_output
from archiver.cli.tables import add_columns, table_console
from archiver.cli.wiring import chosen_directions, note_if_empty, one_service, reading_store, settings_from
from archiver.config import Settings
from archiver.errors import ConfigError
from archiver.reader import MonthSummary, iter_records, summarize_months
from archiver.records import COLUMNS
from archiver.services import services_known
from archiver.store import Store

__all__ = ["cmd_months", "cmd_retrieve"]

log = structlog.get_logger()


def cmd_months(args: argparse.Namespace) -> int:
    settings = settings_from(args, archive_only=True)
    store = reading_store(settings)
    services = services_known(settings.ovh, store, args.service)
    note_if_empty(store, services)
    summaries = [
        summary
        for service in services
        for direction in chosen_directions(args)
        for summary in summarize_months(store, service, direction)
    ]
    # With accounts, each month names its account; without, the document stays as it always was.
    accounts = accounts_of(settings, store, services) if settings.accounts else None
    if args.json:
        documents = [asdict(summary) for summary in summaries]
        if accounts is not None:
            documents = [document | {"account": accounts[document["service"]]} for document in documents]
        print(json.dumps(documents, indent=2))
    else:
        _print_months(store, summaries, accounts)
    return 0


def _print_months(store: Store, summaries: list[MonthSummary], accounts: dict[str, str | None] | None) -> None:
    """The months' table; with ``accounts`` (a configuration with accounts), a first column names each account."""
    from rich.table import Table

    table = Table(title=f"archived months in {store.describe()}")
    columns = ("service", "direction", "month", "rows", "days", "parts", "size")
    add_columns(
        table,
        ("account", *columns) if accounts is not None else columns,
        right=("rows", "days", "parts", "size"),
    )
    for item in summaries:
        table.add_row(
            *([accounts.get(item.service) or "?"] if accounts is not None else []),
            item.service,
            item.direction,
            item.month,
            str(item.rows),
            str(item.days),
            str(item.parts),
            human_size(item.bytes),
        )
    table_console().print(table)


def cmd_retrieve(args: argparse.Namespace) -> int:
    first = parse_month(args.month)
    months = month_range(first, parse_month(args.until_month, option="--until-month") if args.until_month else first)
    settings = settings_from(args, archive_only=True)
    store = reading_store(settings)
    service = one_service(settings, store, args.service)
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
    count = write_output(args.output, lambda output: run_retrieve(store, service, args.direction, months, output, fmt))
    _note_retrieved(args, service, count)
    return 0


def _check_workbook_options(args: argparse.Namespace, filters: dict[str, str]) -> None:
    """Refuse the CSV-only options, a workbook on a terminal, and a filter on a column the direction lacks."""
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

    _check_workbook_options(args, filters)
    records = (
        record
        for year, month in months
        for record in iter_records(store, service, args.direction, year, month)
        if all(record.get(column) == wanted for column, wanted in filters.items())
    )
    count = write_output(
        args.output, lambda output: write_workbook(records, args.direction, output, zone=settings.archive.zone)
    )
    _note_retrieved(args, service, count)
    return 0


def _note_retrieved(args: argparse.Namespace, service: str, count: int) -> None:
    span = args.month + (f"..{args.until_month}" if args.until_month else "")
    if count == 0:
        print(f"note: no archived {args.direction} SMS for {service} in {span}: header only", file=sys.stderr)
    else:
        log.info("retrieved", service=service, direction=args.direction, months=span, rows=count)
