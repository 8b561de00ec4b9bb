"""Infrastructure for the bucket: where archive bytes go, and the rules for what goes where.

- ``base.py``: the ``Store`` protocol every backend implements; key and metadata rules.
- ``s3.py``: ``S3Store`` (boto3), conditional writes proven at start-up or emulated.
- ``local.py``: ``LocalStore``, a directory on this host.
- ``urls.py``: storage URLs parsed and redacted.
- ``layout.py``: the object layout (which key holds what), the only place keys are built or parsed.
- ``state.py``: the cursor and the lease objects kept beside the archive.

``open_store`` builds the backend a storage URL names. ``S3Store`` is imported on first use only (by
``open_store`` for an s3:// URL, or by ``from archiver.store import S3Store``): boto3 takes a tenth of a
second to import, which a command on a file:// archive should not pay at every start (issue 12).
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from archiver.store.base import ObjectInfo, Store
from archiver.store.local import LocalStore
from archiver.store.urls import parse_file_url, url_error

if TYPE_CHECKING:
    from archiver.config import StorageSettings
    from archiver.store.s3 import S3Store

__all__ = ["LocalStore", "ObjectInfo", "S3Store", "Store", "open_store"]


def open_store(settings: StorageSettings) -> S3Store | LocalStore:
    """Build the store ``settings.url`` names; raise ``ConfigError`` for any other URL."""
    scheme = urllib.parse.urlsplit(settings.url.strip()).scheme.lower()
    if scheme == "s3":
        from archiver.store.s3 import S3Store  # here, not above: boto3 for s3:// URLs only (start-up time)

        return S3Store(settings)
    if scheme == "file":
        return LocalStore(parse_file_url(settings.url))
    raise url_error(settings.url)


def __getattr__(name: str) -> Any:
    """``archiver.store.S3Store``, imported when first asked for (start-up time: boto3)."""
    if name == "S3Store":
        from archiver.store.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
