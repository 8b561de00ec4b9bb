"""Tables on a narrow terminal or a pipe: names whole, nothing cut to an ellipsis."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from archiver.cli.tables import PIPED_WIDTH, add_columns, table_console

SERVICE = "sms-ab12345-1234567"


def render(width: int) -> str:
    table = Table(title="archive state")
    add_columns(table, ("service", "direction", "cursor", "last cycle", "lease"))
    table.add_row(SERVICE, "outgoing", "2026-11-30T10:00:00+00:00", "2026-11-30 10:05 +1200 rows", "free")
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_narrow_terminal_keeps_service_and_direction_whole() -> None:
    for width in (50, 64, 80):
        text = render(width)
        assert "…" not in text
        assert any(SERVICE in line and "outgoing" in line for line in text.splitlines()), text


def test_a_pipe_gets_the_whole_width(monkeypatch) -> None:
    monkeypatch.setattr("sys.stdout", io.StringIO())
    console = table_console()
    assert console.width == PIPED_WIDTH
