"""Log set-up: structlog, one event per line on stderr; JSON when not on a terminal.

Every event carries a ``run_id`` (bound per command or per daemon job) so that the lines of one
cycle can be found together in journald or a log collector. Values that are ``SecretStr`` print
as ``**********`` by themselves; nothing here ever unwraps them.
"""

from __future__ import annotations

import logging
import sys
import uuid

import structlog

__all__ = ["configure_logging", "new_run_id"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def new_run_id() -> str:
    """Bind a fresh run id to every event logged from here on (in this context)."""
    run_id = uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(run_id=run_id)
    return run_id


def configure_logging(level: str = "info", log_format: str = "auto") -> None:
    """Route structlog to stderr as JSON lines (or coloured console lines on a terminal)."""
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if as_json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard library: keep their noise at warning and above.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
