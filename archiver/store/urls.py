"""Storage URLs: ``s3://bucket/prefix`` and ``file:///path``, parsed and redacted for messages."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from archiver.errors import ConfigError
from archiver.store.base import check_key


def redact_url(url: str) -> str:
    """Drop any user:password@ part of a URL so it can go into a message."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def url_error(url: str) -> ConfigError:
    return ConfigError(
        f"SMS_ARCHIVER_STORAGE__URL: {redact_url(url)!r} is not a storage URL;"
        " expected s3://bucket[/prefix] or file:///path"
    )


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/some/prefix`` into the bucket and the prefix (no surrounding slashes)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() != "s3" or not parts.netloc or "@" in parts.netloc or ":" in parts.netloc:
        raise url_error(url)
    if parts.query or parts.fragment:
        raise url_error(url)
    prefix = urllib.parse.unquote(parts.path).strip("/")
    if prefix:
        try:
            check_key(prefix)
        except ValueError as exc:
            raise url_error(url) from exc
    return parts.netloc, prefix


def parse_file_url(url: str) -> Path:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        raise url_error(url)
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/") or parts.query or parts.fragment:
        raise url_error(url)
    return Path(path)
