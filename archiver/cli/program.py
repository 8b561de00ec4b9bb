"""``main``: parse the command line, run the command's handler, turn what went wrong into an exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from archiver.cli.exits import EXIT_INTERRUPTED, exit_code, reader_gone
from archiver.cli.parser import build_parser
from archiver.errors import ArchiverError

__all__ = ["main"]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "emulator":
        # The emulator's own options (--port, --outgoing, ...) go to it untouched.
        args.emulator_args = ["--help" if item == "--help-emulator" else item for item in extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sms-archiver`` with ``argv`` (default: the process's arguments); return its exit status."""
    args = _parse(argv)
    # Imported once the command line is parsed (start-up time): --help and a usage error need no logging.
    import structlog

    from archiver.logs import configure_logging, new_run_id

    configure_logging(args.log_level or "info", args.log_format or "auto")
    new_run_id()
    try:
        code: int = args.handler(args)
        # Flush now rather than at exit, so that a reader gone early is noticed here, where it is handled.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return reader_gone()
    except ArchiverError as error:
        # Said once, for people; the log line is for debugging only (it would repeat the message).
        print(f"sms-archiver: {error}", file=sys.stderr)
        structlog.get_logger().debug(
            "command_failed", command=args.command, error_type=type(error).__name__, error=str(error)
        )
        return exit_code(error)
    except KeyboardInterrupt:
        print("sms-archiver: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
