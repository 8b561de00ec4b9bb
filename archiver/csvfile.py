"""The archive's CSV dialect: writing parts to bytes and reading them back as rows.

RFC 4180 quoting (a field with the delimiter, a quote or a line break is quoted, quotes doubled),
``\\r\\n`` line ends, UTF-8 without BOM, one header row. Messages with newlines, quotes, ``;``,
emoji and accents round-trip byte for byte. Gzip output is deterministic (no timestamp, no
file name) so that the same rows always give the same bytes, hence the same part name.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, BinaryIO

from archiver.errors import IntegrityError

__all__ = ["EncodedPart", "encode_rows", "read_rows", "sha256_hex"]


@dataclass(frozen=True, slots=True)
class EncodedPart:
    """The bytes of one part and what verify will check them against."""

    data: bytes
    sha256: str
    rows: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _writer(stream: IO[str], delimiter: str) -> csv.Writer:  # type: ignore[name-defined]
    return csv.writer(stream, delimiter=delimiter, quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")


def encode_rows(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, delimiter: str = ";", compress: bool = False
) -> EncodedPart:
    """Write a header and rows as CSV bytes (gzip-compressed if asked), with their checksum."""
    # Straight to UTF-8 bytes: a StringIO would hold 4 bytes per character once an emoji appears.
    buffer = io.BytesIO()
    text = io.TextIOWrapper(buffer, encoding="utf-8", newline="", write_through=False)
    writer = _writer(text, delimiter)
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    text.flush()
    data = buffer.getvalue()
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return EncodedPart(data, sha256_hex(data), count)


def read_rows(
    stream: BinaryIO, *, header: Sequence[str], compressed: bool = False, source: str = ""
) -> Iterator[list[str]]:
    """Yield the data rows of a part, streaming; raise ``IntegrityError`` if it does not parse.

    The delimiter is read from the header (the character after ``id``), so parts written under
    an older delimiter setting stay readable. The header must equal ``header``; every row must
    have as many fields.
    """
    binary: IO[bytes] = gzip.GzipFile(fileobj=stream, mode="rb") if compressed else stream  # type: ignore[assignment]
    text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
    try:
        first_line = text.readline()
        delimiter = first_line[2:3] if first_line.startswith(header[0]) else ""
        if not delimiter or delimiter in '\r\n"':
            raise IntegrityError(f"{source}: unexpected header {first_line[:80]!r}")
        first = next(csv.reader([first_line], delimiter=delimiter, quotechar='"', strict=True), None)
        if first is None or tuple(first) != tuple(header):
            raise IntegrityError(f"{source}: unexpected header {first_line[:80]!r}")
        reader = csv.reader(text, delimiter=delimiter, quotechar='"', strict=True)
        for row in reader:
            if len(row) != len(header):
                raise IntegrityError(
                    f"{source}: record {reader.line_num} has {len(row)} fields, expected {len(header)}"
                )
            yield row
    except (csv.Error, UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError) as error:
        raise IntegrityError(f"{source}: unreadable CSV ({error})") from None
