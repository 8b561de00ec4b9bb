"""The CSV dialect of every part: what is written reads back the same, and what does not parse is refused."""

from __future__ import annotations

import gzip
import hashlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.csvfile import encode_rows, read_rows
from archiver.errors import IntegrityError

HEADER = ("id", "creationDatetime", "message")
# Any text a message may hold, line breaks, quotes and delimiters included (not NUL: csv refuses it).
FIELD = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40)


@given(
    rows=st.lists(st.tuples(FIELD, FIELD, FIELD), max_size=20),
    delimiter=st.sampled_from([";", ",", "\t"]),
    compress=st.booleans(),
)
def test_rows_read_back_as_written(rows: list[tuple[str, str, str]], delimiter: str, compress: bool) -> None:
    encoded = encode_rows(HEADER, rows, delimiter=delimiter, compress=compress)
    assert encoded.rows == len(rows)
    assert encoded.sha256 == hashlib.sha256(encoded.data).hexdigest()
    back = list(read_rows(io.BytesIO(encoded.data), header=HEADER, compressed=compress, source="t"))
    assert [tuple(row) for row in back] == rows


def test_the_same_rows_give_the_same_bytes_compressed_or_not() -> None:
    rows = [("1", "2025-01-01T00:00:00+00:00", "bonjour")]
    assert encode_rows(HEADER, rows).data == encode_rows(HEADER, rows).data
    assert encode_rows(HEADER, rows, compress=True).data == encode_rows(HEADER, rows, compress=True).data
    assert gzip.decompress(encode_rows(HEADER, rows, compress=True).data) == encode_rows(HEADER, rows).data


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"id;creationDatetime\r\n1;x\r\n", "unexpected header"),
        (b"sms;creationDatetime;message\r\n", "unexpected header"),
        (b"id;creationDatetime;message\r\n1;x\r\n", "has 2 fields, expected 3"),
        (b'id;creationDatetime;message\r\n1;x;"unclosed\r\n', "unreadable CSV"),
        (b"id;creationDatetime;message\r\n1;x;\xff\xfe\r\n", "unreadable CSV"),
    ],
)
def test_what_does_not_parse_is_an_integrity_error_naming_the_part(data: bytes, why: str) -> None:
    with pytest.raises(IntegrityError, match=why) as raised:
        list(read_rows(io.BytesIO(data), header=HEADER, source="svc/outgoing/part.csv"))
    assert "svc/outgoing/part.csv" in str(raised.value)


def test_a_truncated_gzip_part_is_an_integrity_error() -> None:
    data = encode_rows(HEADER, [("1", "x", "y" * 1000)], compress=True).data
    with pytest.raises(IntegrityError):
        list(read_rows(io.BytesIO(data[: len(data) // 2]), header=HEADER, compressed=True, source="t"))
