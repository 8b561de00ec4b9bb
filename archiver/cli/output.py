"""What a command writes besides its tables: output files (written whole or not at all), sizes for people."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from archiver.errors import ArchiverError

__all__ = ["human_size", "write_output"]


def write_output(output: str | None, write: Callable[[BinaryIO], int]) -> int:
    """Run ``write`` on standard output (``output`` None or ``-``) or on the file ``output``; return what it
    returns (the row count).

    A file is written beside its target and renamed at the end: a failure never leaves a half file
    behind, nor replaces an existing file. Raises ``ArchiverError`` when the file cannot be written.
    """
    if output is None or output == "-":
        return write(sys.stdout.buffer)
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as stream:
            count = write(stream)
        partial.replace(target)
    except OSError as error:
        raise ArchiverError(f"cannot write {target}: {error.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    return count


def human_size(size: float) -> str:
    """A byte count in decimal units, as people read them: ``512 B``, ``1.5 kB``, ``2.0 GB``."""
    for unit in ("B", "kB", "MB", "GB"):
        shown = f"{size:.0f}" if unit == "B" else f"{size:.1f}"
        # Compared once rounded: 999,999 bytes is "1.0 MB", not "1000.0 kB".
        if float(shown) < 1000:
            return f"{shown} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
