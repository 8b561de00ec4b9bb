"""The store protocol every backend implements, and the key and metadata rules they share.

``S3Store`` (s3.py) and ``LocalStore`` (local.py) expose the same small protocol (``Store``) so every
action works on either. Keys are
``/``-separated and relative to the storage URL's prefix; the store adds the prefix.
Every failure is raised as ``StorageError`` (or ``PreconditionFailed`` for a lost conditional
write) with the key and the store in the message, never credentials.

Keys are checked before any I/O (``ValueError`` otherwise): no leading or trailing ``/``, no
empty, ``.`` or ``..`` segment, and no segment starting with ``.`` (``LocalStore`` keeps its
temporary, metadata and lock files under such names, and both stores accept the same keys).
Metadata keys are lowercased; keys and values must be printable ASCII without surrounding
spaces, because S3 carries them as HTTP headers and would not give anything else back intact.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a listing or a head tells about one object."""

    key: str
    size: int
    last_modified: dt.datetime
    etag: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # Until when S3 Object Lock retains this version (``head`` only; None: not locked, or unknown in a
    # listing). A locked version can be neither rewritten nor truly deleted before then: a DELETE on a
    # versioned bucket only hides it behind a delete marker.
    locked_until: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """An older version of an object that a versioned bucket keeps (after an overwrite or a delete)."""

    key: str
    version_id: str
    size: int = 0
    locked_until: dt.datetime | None = None  # filled by ``old_version_lock`` only


class Store(Protocol):
    """The operations the archiver needs from an object store.

    Etags are bare strings (no surrounding quotes); for objects written here they are the hex MD5
    of the content, as S3 computes for single-part uploads.
    """

    # How many reads at once pay off for a reader that can read ahead (``retrieve``): 1 where a read
    # is a copy from the page cache (threads would only take turns on the GIL), more where it is a
    # round trip to a server.
    parallel_reads: int

    def describe(self) -> str:
        """Say where this store writes, for messages (no credentials)."""
        ...

    def check(self) -> None:
        """Prove the store is reachable and writable; raise ``StorageError`` saying why not."""
        ...

    def put(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None, lock: bool = False) -> ObjectInfo:
        """Write ``data`` at ``key`` (replacing any object there); return once durable.

        ``lock``: a data part; an S3 store configured for Object Lock writes it under retention.
        """
        ...

    def put_if_absent(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Create ``key`` only if no object is there; raise ``PreconditionFailed`` otherwise."""
        ...

    def put_if_match(self, key: str, data: bytes, etag: str, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Replace ``key`` only if its current etag is ``etag``; raise ``PreconditionFailed`` otherwise."""
        ...

    def get(self, key: str) -> bytes:
        """Read a whole object; raise ``KeyError`` if absent."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Open an object for streaming reads; raise ``KeyError`` if absent."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Describe an object (with its metadata and its Object Lock retention date), or ``None`` if absent."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, in key order (no metadata).

        The etag may be empty in a listing (``LocalStore`` does not hash every file it lists):
        use ``head`` when the etag matters.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove an object; absent is not an error."""
        ...

    # Versioned buckets (S3 Object Lock needs one): ``delete`` and ``put`` leave the previous version
    # behind. Erasure must find and remove those too; a store that keeps no versions yields none.

    def old_versions(self, prefix: str) -> Iterator[ObjectVersion]:
        """Every version under ``prefix`` that is not the current one, in key order (delete markers excluded)."""
        ...

    def get_version(self, key: str, version_id: str) -> bytes:
        """Read one version of an object; raise ``KeyError`` if absent."""
        ...

    def old_version_lock(self, key: str, version_id: str) -> dt.datetime | None:
        """Until when Object Lock retains this version (None: not locked)."""
        ...

    def delete_version(self, key: str, version_id: str) -> None:
        """Remove one version for good; raise ``StorageError`` if the store refuses (e.g. Object Lock)."""
        ...


# --------------------------------------------------------------------------------------------
# Rules shared by both stores: keys, prefixes, metadata, etags, URLs


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key; raise ``ValueError`` otherwise."""
    if not key or key.startswith("/") or key.endswith("/") or "\x00" in key:
        raise ValueError(f"invalid object key {key!r}: expected a relative path like 'a/b.csv'")
    for segment in key.split("/"):
        if not segment or segment in (".", ".."):
            raise ValueError(f"invalid object key {key!r}: empty, '.' or '..' segment")
        if segment.startswith("."):
            raise ValueError(f"invalid object key {key!r}: segments starting with '.' are reserved")
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can only select keys inside the store; raise ``ValueError`` otherwise."""
    if prefix.startswith("/") or "\x00" in prefix:
        raise ValueError(f"invalid listing prefix {prefix!r}: expected a relative path like 'a/'")
    # The last segment may be partial ("svc/outgoing/year=20") or empty (trailing slash).
    *directories, _partial = prefix.split("/")
    for segment in directories:
        if not segment or segment.startswith("."):
            raise ValueError(f"invalid listing prefix {prefix!r}: empty segment or one starting with '.'")
    return prefix


# No underscore: common proxies (nginx) drop header names containing one.
_METADATA_KEY = re.compile(r"[a-z0-9][a-z0-9.-]*")
# Non-empty, printable, no surrounding spaces: servers trim or reject anything else in headers.
_METADATA_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def normalize_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Lowercase metadata keys and check that keys and values survive a trip through HTTP headers."""
    normalized: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        lowered = name.lower()
        if not _METADATA_KEY.fullmatch(lowered):
            raise ValueError(f"invalid metadata key {name!r}: use letters, digits, '.' or '-'")
        if not isinstance(value, str) or not _METADATA_VALUE.fullmatch(value):
            raise ValueError(
                f"invalid value for metadata key {name!r}: non-empty printable ASCII without leading or"
                " trailing spaces only (S3 sends metadata as HTTP headers, which would alter anything else)"
            )
        normalized[lowered] = value
    return normalized


def bare_etag(etag: str) -> str:
    # S3 answers '"abc"'; callers may hand back either form.
    return etag.strip().strip('"')
