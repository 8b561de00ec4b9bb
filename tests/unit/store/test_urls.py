"""Storage URLs: parsed into bucket and prefix, and never shown with their credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.errors import ConfigError
from archiver.store.urls import parse_file_url, parse_s3_url, redact_url


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
        ("s3://bucket/sms/archive/", "bucket", "sms/archive"),
        ("S3://bucket/a%20b", "bucket", "a b"),
    ],
)
def test_s3_urls_give_bucket_and_prefix(url: str, bucket: str, prefix: str) -> None:
    assert parse_s3_url(url) == (bucket, prefix)


@pytest.mark.parametrize(
    "url", ["s3://", "s3://user:secret@bucket/x", "s3://bucket:9000/x", "s3://b/x?y=1", "s3://b/../x", "http://b/x"]
)
def test_other_s3_urls_are_refused_naming_the_setting_without_the_secret(url: str) -> None:
    with pytest.raises(ConfigError, match="SMS_ARCHIVER_STORAGE__URL") as raised:
        parse_s3_url(url)
    assert "secret" not in str(raised.value)


def test_file_urls_give_an_absolute_path() -> None:
    assert parse_file_url("file:///var/lib/sms%20archive") == Path("/var/lib/sms archive")
    assert parse_file_url("file://localhost/srv/a") == Path("/srv/a")
    with pytest.raises(ConfigError):
        parse_file_url("file://otherhost/srv/a")
    with pytest.raises(ConfigError):
        parse_file_url("file:relative/path")


def test_redaction_drops_only_the_user_part() -> None:
    assert redact_url("https://key:secret@s3.example.com:9000/x") == "https://***@s3.example.com:9000/x"
    assert redact_url("https://s3.example.com/x") == "https://s3.example.com/x"
