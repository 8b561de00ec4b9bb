"""Where the commands' tables are printed: a rich console on standard output, never cutting a table.

A command's own output (``months``, ``status``, ``verify``, ``state show``) is a table unless ``--json``
is given, whether standard output is a terminal or a pipe: a script asks for ``--json``. Piped, rich
would assume 80 columns and shorten cells to ``sms-d…``; here a pipe gets all the width a table needs
(it is only as wide as its content), and on a narrow terminal cells wrap or fold onto more lines
rather than losing their end (``add_columns``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["KEEP_WHOLE", "PIPED_WIDTH", "add_columns", "table_console"]

# Wide enough for any of our tables; a table is never wider than its content.
PIPED_WIDTH = 1000


def table_console() -> Console:
    from rich.console import Console

    class TableConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich would exit 1 on its own; the CLI ends every closed pipe the same way (cli.program.main).
            self.quiet = True
            raise BrokenPipeError

    if sys.stdout.isatty():
        return TableConsole()
    return TableConsole(width=PIPED_WIDTH, no_color=True, highlight=False)


# Names a reader copies into the next command: on a narrow terminal the other columns wrap first.
KEEP_WHOLE = frozenset({"service", "direction"})


def add_columns(table: Table, columns: tuple[str, ...], *, right: tuple[str, ...] = (), **options: Any) -> None:
    """Add ``columns`` to ``table``; a cell too long for a narrow terminal wraps or folds, never cut to ``…``.

    ``service`` and ``direction`` do not wrap (rich narrows the wrapping columns first), so they stay
    whole on one line unless the terminal cannot hold even them.
    """
    no_wrap = set(options.pop("no_wrap", ())) | KEEP_WHOLE
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in right else "left",
            overflow="fold",
            no_wrap=column in no_wrap,
            **options,
        )
