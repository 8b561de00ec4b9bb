"""``erase``: an erasure request, every archived SMS to or from one phone number removed (a dry run unless --yes)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from archiver.actions.erase import ErasureReport, run_erase
from archiver.actions.status import accounts_of
from archiver.cli.exits import EXIT_ERASURE_INCOMPLETE
from archiver.cli.tables import add_columns, table_console
from archiver.cli.wiring import reading_store, settings_from
from archiver.config import Settings
from archiver.errors import ConfigError
from archiver.services import Accounts
from archiver.store import Store

if TYPE_CHECKING:
    from archiver.source import OvhSource  # a type only: the OVH client is imported for --at-ovh alone

__all__ = ["cmd_erase"]


def cmd_erase(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    store = reading_store(settings)
    at_ovh = args.at_ovh and args.yes
    if at_ovh:
        with Accounts(settings) as accounts:
            report = run_erase(
                settings,
                store,
                args.number,
                apply=True,
                source_of=_source_of(settings, store, accounts),
                why=args.reason,
            )
    else:
        report = run_erase(settings, store, args.number, apply=args.yes, why=args.reason)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_report(report, at_ovh_asked=args.at_ovh)
    if report.locked:
        last = max(locked.locked_until for locked in report.locked)
        print(
            f"erasure {'INCOMPLETE' if args.yes else 'would be incomplete'}: {len(report.locked)} part(s) under"
            f" S3 Object Lock still hold this number (the last lock ends {last:%Y-%m-%d %H:%M} UTC); run"
            " 'sms-archiver erase --yes' again once their lock has ended",
            file=sys.stderr,
        )
    if args.yes and not report.complete:
        return EXIT_ERASURE_INCOMPLETE
    return 0


def _source_of(settings: Settings, store: Store, accounts: Accounts) -> Callable[[str], OvhSource]:
    """Each service's OVH source: its account's (as configured, else as its last cycle recorded it)."""

    def source_of(service: str) -> OvhSource:
        account = accounts_of(settings, store, [service])[service]
        if account is None or account not in accounts.sources:
            raise ConfigError(
                f"the OVH account of service {service} is not known: name it in its account's services "
                "(SMS_ARCHIVER_ACCOUNTS__NAME__SERVICES) to delete its SMS at OVH (--at-ovh)"
            )
        return accounts.sources[account]

    return source_of


def _print_report(report: ErasureReport, *, at_ovh_asked: bool) -> None:
    from rich.table import Table

    title = "erasure" if report.applied else "erasure dry run: nothing changed (add --yes)"
    table = Table(title=title)
    add_columns(table, ("service", "direction", "month", "SMS found", "erased", "held", "locked rows"))
    for _label, month in sorted(report.months.items()):
        table.add_row(
            month.service,
            month.direction,
            month.month,
            str(month.found),
            str(month.erased) if report.applied else "-",
            str(month.held),
            str(month.locked),
        )
    console = table_console()
    console.print(table)
    for event in report.earlier:
        console.print(f"this number was erased before on {event.at[:10]} by {event.actor} (audit event {event.id})")
    if report.held:
        console.print(f"{report.held} SMS kept under legal hold(s): {', '.join(sorted(report.hold_ids))}")
    for locked in report.locked:
        what = f"{locked.key} (older version {locked.version_id})" if locked.version_id else locked.key
        console.print(
            f"locked: {what} is under S3 Object Lock until {locked.locked_until:%Y-%m-%d %H:%M} UTC;"
            " it cannot be rewritten or deleted before then"
        )
    if report.old_versions_found:
        verb = "deleted" if report.applied else "would be deleted"
        console.print(
            f"{report.old_versions_found} older version(s) of parts, kept by the versioned bucket, hold this"
            f" number: {verb} for good"
        )
    if report.nothing_to_do and not report.found:
        console.print("nothing to erase: no archived SMS to or from this number")
    elif report.nothing_to_do:
        console.print("nothing to erase: the only SMS left with this number are under legal hold")
    elif not report.applied:
        console.print(f"{report.days_to_rewrite} day(s) would be rewritten without this number (add --yes)")
    else:
        console.print(f"{report.erased} SMS erased, {report.days_rewritten} day(s) rewritten")
    if report.at_ovh:
        console.print(f"at OVH: {report.deleted_at_ovh} deleted, {report.gone_at_ovh} already gone")
    elif at_ovh_asked and not report.applied:
        console.print("at OVH: the SMS erased would also be deleted there (--at-ovh)")
