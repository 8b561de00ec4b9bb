"""Output files written whole or not at all; sizes as people read them."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from archiver.cli.output import human_size, write_output
from archiver.errors import ArchiverError


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1500, "1.5 kB"),
        (999_949, "999.9 kB"),
        (999_950, "1.0 MB"),  # rounded up to the next unit, not "1000.0 kB"
        (999_999, "1.0 MB"),
        (999_999_999, "1.0 GB"),
        (1_000_000, "1.0 MB"),
        (2_000_000_000, "2.0 GB"),
        (1_000_000_000_000, "1.0 TB"),
        (5_300_000_000_000_000, "5300.0 TB"),
    ],
)
def test_sizes_in_decimal_units(size: int, shown: str) -> None:
    assert human_size(size) == shown


@given(st.integers(min_value=0, max_value=10**15 - 1))
@example(999_999)
@example(999_950_000)
def test_a_size_reads_back_within_its_rounding(size: int) -> None:
    number, unit = human_size(size).split()
    scale = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}[unit]
    assert float(number) < 1000 or unit == "TB"
    assert abs(float(number) * scale - size) <= 0.05 * scale + 0.5


def _writes(data: bytes, *, fail: bool = False) -> Callable[[BinaryIO], int]:
    def write(stream: BinaryIO) -> int:
        stream.write(data)
        if fail:
            raise ArchiverError("storage went away mid-retrieve")
        return data.count(b"\n")

    return write


def test_a_file_is_written_and_the_row_count_returned(tmp_path: Path) -> None:
    target = tmp_path / "march.csv"
    assert write_output(str(target), _writes(b"a\nb\n")) == 2
    assert target.read_bytes() == b"a\nb\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["march.csv"]


def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "march.csv"
    target.write_bytes(b"yesterday's complete file\n")
    with pytest.raises(ArchiverError, match="mid-retrieve"):
        write_output(str(target), _writes(b"half a fi", fail=True))
    assert target.read_bytes() == b"yesterday's complete file\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["march.csv"]


def test_a_file_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "no-such-directory" / "march.csv"
    with pytest.raises(ArchiverError, match=f"cannot write {target}"):
        write_output(str(target), _writes(b"a\n"))


@pytest.mark.parametrize("output", [None, "-"])
def test_none_or_a_dash_is_standard_output(output: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr("sys.stdout", stdout)
    assert write_output(output, _writes(b"a\n")) == 1
    assert stdout.buffer.getvalue() == b"a\n"  # type: ignore[attr-defined]
    assert list(tmp_path.iterdir()) == []  # no file named "-"
