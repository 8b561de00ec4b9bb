"""``verify``, ``compact`` and ``retention``: checking, tidying and (at OVH) pruning what is archived."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING

import structlog

from archiver.actions.compact import run_compact
from archiver.actions.retrieve import parse_month
from archiver.actions.verify import run_verify
from archiver.cli.tables import add_columns, table_console
from archiver.cli.wiring import reading_store, settings_from
from archiver.config import Settings
from archiver.errors import ArchiverError, ConfigError
from archiver.reader import MonthCheck
from archiver.services import Accounts, services_known
from archiver.store import Store, open_store

if TYPE_CHECKING:
    from archiver.actions.retention import RetentionReport
    from archiver.source import OvhSource

__all__ = ["cmd_compact", "cmd_retention", "cmd_verify"]

log = structlog.get_logger()


def cmd_verify(args: argparse.Namespace) -> int:
    months = [parse_month(args.month)] if args.month else None
    settings = settings_from(args, archive_only=True)
    store = reading_store(settings)
    services = services_known(settings.ovh, store, args.service)
    checks = [check for service in services for check in run_verify(settings, store, service=service, months=months)]
    problems = [problem for check in checks for problem in check.problems]
    if args.json:
        print(json.dumps([_check_document(check) for check in checks], indent=2))
    else:
        _print_checks(store, checks)
    for problem in problems:
        log.error("verify_problem", kind=problem.kind, key=problem.key, detail=problem.detail)
    if not checks:
        archived = ", ".join(services) if services else "no service"
        print(f"note: nothing to verify in {store.describe()} ({archived}; no archived month)", file=sys.stderr)
    return 1 if problems else 0


def _check_document(check: MonthCheck) -> dict[str, object]:
    return {
        "service": check.service,
        "direction": check.direction,
        "month": check.label,
        "parts": check.parts,
        "rows": check.rows,
        "bytes": check.bytes,
        "problems": [asdict(problem) for problem in check.problems],
    }


def _print_checks(store: Store, checks: list[MonthCheck]) -> None:
    from rich.table import Table

    table = Table(title=f"verify {store.describe()}")
    add_columns(table, ("service", "direction", "month", "parts", "rows", "result"))
    for check in checks:
        result = "ok" if not check.problems else f"{len(check.problems)} problem(s)"
        table.add_row(check.service, check.direction, check.label, str(check.parts), str(check.rows), result)
    console = table_console()
    console.print(table)
    for check in checks:
        for problem in check.problems:
            console.print(f"[red]{problem.kind}[/red] {problem.key}: {problem.detail}", markup=True, highlight=False)


def cmd_compact(args: argparse.Namespace) -> int:
    settings = settings_from(args, archive_only=True)
    store = open_store(settings.storage)
    report = run_compact(settings, store)
    log.info("compaction_done", **asdict(report) | {"days": len(report.days)})
    if sys.stdout.isatty():
        print(f"{report.days_compacted} day(s) compacted: {report.parts_merged} parts merged, {report.rows} rows")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    # Here, not at the top: retention's OVH client is not for verify and compact (start-up time).
    from archiver.actions.retention import run_retention

    settings = settings_from(args)
    # Checked before anything is opened (run_retention checks it again, for its other callers).
    settings.retention.check_policy(apply=args.apply)
    store = open_store(settings.storage)

    def retention(account: Settings, source: OvhSource) -> RetentionReport | None:
        if not args.service:
            return run_retention(account, source, store, apply=args.apply)
        if settings.accounts and args.service not in account.ovh.services:
            return None  # another account's service
        return run_retention(account, source, store, apply=args.apply, services=[args.service])

    with Accounts(settings) as accounts:
        reports = [report for _name, report in accounts.run(retention) if report is not None]
    if not reports:
        raise ConfigError(f"--service {args.service}: no configured OVH account has this service")
    report = _combined(reports)
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


def _combined(reports: list[RetentionReport]) -> RetentionReport:
    """One report for the runs of several accounts (the first's run id): decisions, deletions, purges added up."""
    combined = reports[0]
    for report in reports[1:]:
        combined.decisions.extend(report.decisions)
        combined.unmatchable.extend(report.unmatchable)
        combined.purges.extend(report.purges)
        combined.deleted += report.deleted
        combined.capped += report.capped
    return combined


def _print_retention(report: RetentionReport, *, limit: int) -> None:
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
    if report.holds_active:
        console.print(f"{report.held:7d}  kept at OVH under a legal hold ({report.holds_active} active: hold list)")
    for purge in report.purges:
        verb = "purged" if purge.action == "purged" else "would purge"
        held = f", {purge.held} SMS kept under a legal hold" if purge.held else ""
        console.print(
            f"archive: {verb} {purge.service}/{purge.direction} {purge.month} ({purge.objects} objects{held})"
        )
