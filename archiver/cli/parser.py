"""The command line's grammar: global options, every subcommand and its options, the argument types.

``build_parser`` is the one place where subcommands are registered: a new one is a line there (name,
handler, help) and, if it takes options, a small function beside the others.

Handlers are named (``module:function`` in ``archiver.cli.commands``) and imported only when their command
runs: importing every command's module to build the parser made each command pay for all the others (the
archive cycle, the OVH client, boto3: half a second before ``retrieve`` read a byte; issue 12). So this
module imports nothing heavy, and what the parser needs (argument types, the directions) is defined here or
in a light module.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeAlias

from archiver.naming import DIRECTIONS

__all__ = ["Handler", "LazyHandler", "build_parser", "day_argument", "delimiter_argument"]

Handler: TypeAlias = Callable[[argparse.Namespace], int]

if TYPE_CHECKING:
    # What ``add_subparsers`` returns: argparse names its class as private, but it is what typeshed declares.
    _Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


class LazyHandler:
    """A command's handler, ``module:function`` in ``archiver.cli.commands``, imported when the command runs."""

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target

    def resolve(self) -> Handler:
        """Import the handler's module (start-up time: only the command being run pays for its imports)."""
        module, _, function = self.target.partition(":")
        handler: Handler = getattr(importlib.import_module(f"archiver.cli.commands.{module}"), function)
        return handler

    def __call__(self, args: argparse.Namespace) -> int:
        return self.resolve()(args)

    def __repr__(self) -> str:
        return f"LazyHandler({self.target!r})"


class _VersionAction(argparse._VersionAction):
    """``--version``, the installed version looked up when asked for (start-up time: importlib.metadata)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from archiver.cli.commands.tools import installed_version

        self.version = f"%(prog)s {installed_version()}"
        super().__call__(parser, namespace, values, option_string)


def delimiter_argument(text: str) -> str:
    """``--delimiter``: one character other than a quote or a line break; ``tab`` or ``\\t`` for a tab."""
    text = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(text) != 1 or text in '"\r\n':
        raise argparse.ArgumentTypeError("one character other than a quote or a line break (e.g. ; , or tab)")
    return text


def day_argument(text: str) -> dt.date:
    """``--from`` and ``--to``: a day as ``YYYY-MM-DD``."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The ``sms-archiver`` parser; each subcommand sets ``handler``, the function that runs it (a ``LazyHandler``)."""
    parser = _global_options()
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = partial(_add_command, commands)
    add("archive", "archiving:cmd_archive", "Run one archive cycle over every configured service and direction.")
    add(
        "run",
        "archiving:cmd_run",
        "Run the daemon: archive on a schedule, compact, verify, retention; sd_notify, metrics, pings.",
    )
    _json_option(
        add(
            "status",
            "status:cmd_status",
            "Last cycle, cursor and lease of each service and direction; daemons' next runs.",
        )
    )
    _backfill_options(
        add("backfill", "archiving:cmd_backfill", "Archive a bounded range of days without moving the cursor.")
    )
    add("check-config", "check_config:cmd_check_config", "Validate settings and check that OVH and the storage answer.")
    _add_state_commands(commands)
    _months_options(add("months", "reading:cmd_months", "List the archived months with their rows, parts and sizes."))
    _retrieve_options(
        add(
            "retrieve",
            "reading:cmd_retrieve",
            "Write one or more archived months as one CSV (or an Excel workbook), each SMS once (newest version).",
        )
    )
    _verify_options(
        add(
            "verify",
            "maintenance:cmd_verify",
            "Re-read parts and check checksums, row counts and CSV against the manifests.",
        )
    )
    add(
        "compact",
        "maintenance:cmd_compact",
        "Merge the parts of each settled day into one (verified before old parts go).",
    )
    _retention_options(
        add(
            "retention",
            "maintenance:cmd_retention",
            "Delete SMS at OVH once verifiably archived, per SMS_ARCHIVER_RETENTION__*. A dry run unless --apply.",
        )
    )
    _erase_options(
        add(
            "erase",
            "erase:cmd_erase",
            "Erasure request: remove every archived SMS to or from a phone number (held ones kept). A dry run unless"
            " --yes.",
        )
    )
    _web_options(
        add("web", "web:cmd_web", "Serve the history browser (pages, JSON API, CSV download) from the archive.")
    )
    _add_emulator_command(commands)
    _demo_options(
        add("demo", "tools:cmd_demo", "Archive sample data from the built-in OVH emulator: no OVH account needed.")
    )
    _add_compliance_commands(commands)
    return parser


def _global_options() -> argparse.ArgumentParser:
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
    parser.add_argument("--version", action=_VersionAction)
    return parser


def _add_command(commands: _Subcommands, name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=help_text, description=help_text)
    sub.set_defaults(handler=LazyHandler(handler))
    return sub


def _json_option(sub: argparse.ArgumentParser, help_text: str = "JSON output") -> None:
    sub.add_argument("--json", action="store_true", help=help_text)


def _backfill_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--from", dest="since", type=day_argument, required=True, metavar="YYYY-MM-DD")
    sub.add_argument("--to", type=day_argument, required=True, metavar="YYYY-MM-DD", help="inclusive")


def _add_state_commands(commands: _Subcommands) -> None:
    state = commands.add_parser("state", help="Show or reset the archive cursors.")
    actions = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="Cursor, pending re-checks and lease of each service.")
    show.set_defaults(handler=LazyHandler("state:cmd_state_show"))
    show.add_argument("--service")
    _json_option(show)
    reset = actions.add_parser("reset", help="Forget a cursor so that the next cycle starts over.")
    reset.set_defaults(handler=LazyHandler("state:cmd_state_reset"))
    reset.add_argument("--service", required=True)
    reset.add_argument("--direction", choices=DIRECTIONS)
    reset.add_argument("--yes", action="store_true", help="confirm")


def _months_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--service", help="one SMS service (default: all)")
    sub.add_argument("--direction", choices=DIRECTIONS, help="default: both")
    _json_option(sub)


def _retrieve_options(sub: argparse.ArgumentParser) -> None:
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
    sub.add_argument("--delimiter", type=delimiter_argument, help="output delimiter (default: the archive's, ';')")
    sub.add_argument(
        "--neutralize-formulas",
        action="store_true",
        help="prefix cells starting with = + - @ with a quote, so spreadsheets never run them as formulas",
    )


def _verify_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--month", metavar="YYYY-MM", help="one month (default: all)")
    sub.add_argument("--service", help="one SMS service (default: all)")
    _json_option(sub)


def _retention_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--apply", action="store_true", help="really delete at OVH (needs RETENTION__ENABLED=true)")
    sub.add_argument("--service", help="one SMS service (default: all)")
    _json_option(sub, "JSON output (every decision)")
    sub.add_argument("--limit", type=int, default=50, help="rows shown in the table (default 50)")


def _erase_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--number", required=True, help="the phone number, e.g. +33612345678 (0033..., spaces allowed)")
    sub.add_argument("--yes", action="store_true", help="really erase (needs SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY)")
    sub.add_argument("--at-ovh", action="store_true", help="also delete these SMS at OVH (with --yes)")
    sub.add_argument("--reason", default="erasure request", help="why, for the audit trail (default: erasure request)")
    _json_option(sub)


def _add_compliance_commands(commands: _Subcommands) -> None:
    """``hold add|list|remove`` (legal holds) and ``audit`` (the audit trail); see README, Compliance."""
    hold_help = "Legal holds: SMS that retention and the archive purge keep, whatever the policy, until lifted."
    hold = commands.add_parser("hold", help=hold_help, description=hold_help)
    actions = hold.add_subparsers(dest="hold_command", required=True, metavar="ACTION")
    add_help = (
        "Place a hold on the SMS matching every criterion given (none: every SMS). Numbers in any common "
        "spelling (+33 6 12 34 56 78, 0033612345678); dates in the archive's zone, both included. Prints the hold id."
    )
    add = actions.add_parser("add", help="Place a legal hold; prints its id.", description=add_help)
    add.set_defaults(handler=LazyHandler("compliance:cmd_hold_add"))
    add.add_argument("--receiver", metavar="NUMBER", help="SMS sent to this number")
    add.add_argument("--sender", metavar="NUMBER", help="SMS sent by this number or sender id")
    add.add_argument("--number", metavar="NUMBER", help="SMS with this number as sender or receiver")
    add.add_argument("--tag", help="SMS with this tag (exact match)")
    add.add_argument("--service", help="one SMS service (default: all)")
    add.add_argument("--direction", choices=DIRECTIONS, help="default: both")
    add.add_argument("--from", dest="date_from", type=day_argument, metavar="YYYY-MM-DD", help="first day held")
    add.add_argument("--to", dest="date_to", type=day_argument, metavar="YYYY-MM-DD", help="last day held")
    add.add_argument("--reason", required=True, help="why (a case, a request): kept with the hold and audited")
    listing = actions.add_parser(
        "list", help="The active holds (--all: lifted ones too).", description="The legal holds, oldest first."
    )
    listing.set_defaults(handler=LazyHandler("compliance:cmd_hold_list"))
    listing.add_argument("--all", action="store_true", help="include lifted holds")
    _json_option(listing)
    remove_help = "Lift a hold: the hold stays in the archive, marked lifted (who, when, why); audited."
    remove = actions.add_parser("remove", help="Lift a legal hold.", description=remove_help)
    remove.set_defaults(handler=LazyHandler("compliance:cmd_hold_remove"))
    remove.add_argument("hold_id", metavar="ID", help="the hold's id (hold list)")
    remove.add_argument("--reason", required=True, help="why the hold ends: audited")
    audit_help = (
        "The audit trail kept in the archive (_journal/audit/): holds placed and lifted, erasures, deletions at "
        "OVH and archive purges, each with who, when, why and counts; oldest first."
    )
    audit = commands.add_parser(
        "audit", help="List the audit trail: who did what, when and why.", description=audit_help
    )
    audit.set_defaults(handler=LazyHandler("compliance:cmd_audit"))
    audit.add_argument(
        "--from", dest="since", type=day_argument, metavar="YYYY-MM-DD", help="events from this day (UTC)"
    )
    _json_option(audit)


def _add_emulator_command(commands: _Subcommands) -> None:
    # No help of its own: --help, like every other option, goes to the emulator, which lists its options.
    emulator_help = "Serve the built-in OVH API emulator on 127.0.0.1 (for trials and tests); options: emulator --help"
    emulator = commands.add_parser("emulator", help=emulator_help, description=emulator_help, add_help=False)
    emulator.set_defaults(handler=LazyHandler("tools:cmd_emulator"))


def _web_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--host", help="address to listen on (default: SMS_ARCHIVER_WEB__HOST, 127.0.0.1)")
    sub.add_argument("--port", type=int, help="port (default: SMS_ARCHIVER_WEB__PORT, 8080; 0: any free port)")


def _demo_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--storage-url",
        default=None,
        help="where to archive (default: file://$PWD/demo-archive; s3:// works too)",
    )
    sub.add_argument("--outgoing", type=int, default=250, help="sample sent SMS (default 250)")
    sub.add_argument("--incoming", type=int, default=40, help="sample received SMS (default 40)")
    sub.add_argument("--no-web", action="store_true", help="do not serve the history browser at the end")
