"""Object stores: where archive bytes go. ``S3Store`` (boto3) and ``LocalStore`` (a directory).

Both expose the same small protocol (``Store``) so every action works on either. Keys are
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

import contextlib
import dataclasses
import datetime as dt
import email.utils
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import stat
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from archiver.errors import ConfigError, PreconditionFailed, StorageError

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

    from archiver.config import StorageSettings

__all__ = ["LocalStore", "ObjectInfo", "S3Store", "Store", "open_store"]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a listing or a head tells about one object."""

    key: str
    size: int
    last_modified: dt.datetime
    etag: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class Store(Protocol):
    """The operations the archiver needs from an object store.

    Etags are bare strings (no surrounding quotes); for objects written here they are the hex MD5
    of the content, as S3 computes for single-part uploads.
    """

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
        """Describe an object (with its metadata), or ``None`` if absent."""
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


# --------------------------------------------------------------------------------------------
# Rules shared by both stores: keys, prefixes, metadata, etags, URLs


def _check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key; raise ``ValueError`` otherwise."""
    if not key or key.startswith("/") or key.endswith("/") or "\x00" in key:
        raise ValueError(f"invalid object key {key!r}: expected a relative path like 'a/b.csv'")
    for segment in key.split("/"):
        if not segment or segment in (".", ".."):
            raise ValueError(f"invalid object key {key!r}: empty, '.' or '..' segment")
        if segment.startswith("."):
            raise ValueError(f"invalid object key {key!r}: segments starting with '.' are reserved")
    return key


def _check_prefix(prefix: str) -> str:
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


def _normalize_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
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


def _bare_etag(etag: str) -> str:
    # S3 answers '"abc"'; callers may hand back either form.
    return etag.strip().strip('"')


def _redact_url(url: str) -> str:
    """Drop any user:password@ part of a URL so it can go into a message."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def _url_error(url: str) -> ConfigError:
    return ConfigError(
        f"SMS_ARCHIVER_STORAGE__URL: {_redact_url(url)!r} is not a storage URL;"
        " expected s3://bucket[/prefix] or file:///path"
    )


def _parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/some/prefix`` into the bucket and the prefix (no surrounding slashes)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() != "s3" or not parts.netloc or "@" in parts.netloc or ":" in parts.netloc:
        raise _url_error(url)
    if parts.query or parts.fragment:
        raise _url_error(url)
    prefix = urllib.parse.unquote(parts.path).strip("/")
    if prefix:
        try:
            _check_key(prefix)
        except ValueError as exc:
            raise _url_error(url) from exc
    return parts.netloc, prefix


def _parse_file_url(url: str) -> Path:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        raise _url_error(url)
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/") or parts.query or parts.fragment:
        raise _url_error(url)
    return Path(path)


def open_store(settings: StorageSettings) -> S3Store | LocalStore:
    """Build the store ``settings.url`` names; raise ``ConfigError`` for any other URL."""
    scheme = urllib.parse.urlsplit(settings.url.strip()).scheme.lower()
    if scheme == "s3":
        return S3Store(settings)
    if scheme == "file":
        return LocalStore(_parse_file_url(settings.url))
    raise _url_error(settings.url)


# --------------------------------------------------------------------------------------------
# S3


# Error codes that mean "someone else changed the object first" for a conditional write.
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Metadata an emulated conditional write carries so that its read-back can tell it from a rival's.
_WRITE_NONCE = "write-nonce"

_HINTS = {
    "NoSuchBucket": "the bucket does not exist: create it or fix SMS_ARCHIVER_STORAGE__URL",
    "AccessDenied": "access denied: check the credentials and the bucket policy",
    "403": "access denied: check the credentials and the bucket policy",
    "Forbidden": "access denied: check the credentials and the bucket policy",
    "InvalidAccessKeyId": "unknown access key: check SMS_ARCHIVER_STORAGE__ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "signature rejected: check SMS_ARCHIVER_STORAGE__SECRET_ACCESS_KEY",
    "PermanentRedirect": "the bucket is in another region: set SMS_ARCHIVER_STORAGE__REGION",
    "301": "the bucket is in another region: set SMS_ARCHIVER_STORAGE__REGION",
    "AuthorizationHeaderMalformed": "wrong region for this bucket: set SMS_ARCHIVER_STORAGE__REGION",
    "RequestTimeTooSkewed": "this host's clock is too far off: fix its time synchronisation",
}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "") or "")


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _explain(exc: Exception, timeout_seconds: float) -> str:
    """Describe a botocore failure in one line: the S3 error code and what to do about it."""
    if isinstance(exc, ClientError):
        code = _error_code(exc) or "error"
        message = str(exc.response.get("Error", {}).get("Message", "") or "")
        text = f"{code} (HTTP {_http_status(exc)})" + (f": {message}" if message else "")
        hint = _HINTS.get(code)
        return f"{text}; {hint}" if hint else text
    if isinstance(exc, NoCredentialsError):
        return (
            "no S3 credentials found: set SMS_ARCHIVER_STORAGE__ACCESS_KEY_ID and"
            " SMS_ARCHIVER_STORAGE__SECRET_ACCESS_KEY, or configure boto3's credential chain"
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return f"endpoint unreachable ({type(exc).__name__}: {exc}); check SMS_ARCHIVER_STORAGE__ENDPOINT_URL"
    if isinstance(exc, ReadTimeoutError):
        return f"no answer within {timeout_seconds:g} s ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


class _ConditionalWritesUnsupported(Exception):
    """The store refused an If-Match / If-None-Match header as not implemented."""

    def __init__(self, cause: ClientError) -> None:
        super().__init__(_error_code(cause))
        self.cause = cause


def _refuses_conditions(exc: ClientError) -> bool:
    """Tell whether an error answers a conditional header the store does not implement."""
    code = _error_code(exc)
    if _http_status(exc) == 501 or code == "NotImplemented":
        return True
    if code == "InvalidArgument":
        # InvalidArgument has many causes; only blame the header when the store names it.
        error: Mapping[str, Any] = exc.response.get("Error", {})
        text = f"{error.get('Message', '')} {error.get('ArgumentName', '')}".lower()
        return "if-none-match" in text or "if-match" in text
    return False


class _S3Reader(io.RawIOBase):
    """A botocore ``StreamingBody`` as a raw stream whose read errors are ``StorageError``."""

    def __init__(self, body: StreamingBody, fail: Callable[[Exception], StorageError]) -> None:
        super().__init__()
        self._body = body
        self._fail = fail

    def readable(self) -> bool:
        return True

    def readall(self) -> bytes:
        # One read of the rest, not the 8 KiB chunks RawIOBase.readall would ask for.
        try:
            return self._body.read()
        except BotoCoreError as exc:
            raise self._fail(exc) from exc

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._body.read(len(view))
        except BotoCoreError as exc:
            raise self._fail(exc) from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Store:
    """An S3-compatible bucket (optionally under a prefix), through one boto3 client.

    Conditional writes (``If-None-Match``/``If-Match``) are proved, not assumed: before its first
    conditional write (or in ``check``) the store writes a probe twice and a wrong ``If-Match``
    once; both repeats must be refused. Some stores refuse the headers, others accept and ignore
    them (every write wins): on either, with ``conditional_writes="auto"`` (or ``"off"``) they are
    emulated and ``conditional_writes_supported`` is False; ``"on"`` refuses to go on.

    An emulated conditional write is a head, a comparison, a put carrying a random nonce in its
    metadata, a short settle, and a read-back that must still find that nonce: a rival whose put
    landed after ours makes ours fail. Two rivals can still both pass when one stalls longer than
    the settle between its head and its put; the lease's fencing token (``archiver.state``)
    catches that at the next state write.
    """

    # Objects per list_objects_v2 call; tests lower it to exercise pagination.
    list_page_size = 1000
    # Seconds an emulated conditional write waits before reading back: a rival that looked at the
    # object before our put lands its own put within a request's time, so waiting longer than that
    # lets the read-back see it. Emulation only (lease writes, a few per cycle).
    emulated_settle_seconds = 1.0

    def __init__(self, settings: StorageSettings, *, session: boto3.session.Session | None = None) -> None:
        """Build the client from ``settings``; ``session`` lets callers share one (loading it is slow)."""
        self.bucket, self.prefix = _parse_s3_url(settings.url)
        self._endpoint_url = settings.endpoint_url or None
        if self._endpoint_url and "@" in urllib.parse.urlsplit(self._endpoint_url).netloc:
            # botocore would repeat such a URL in its error messages; S3 never uses it anyway.
            raise ConfigError(
                f"SMS_ARCHIVER_STORAGE__ENDPOINT_URL: {_redact_url(self._endpoint_url)!r} holds credentials;"
                " put them in SMS_ARCHIVER_STORAGE__ACCESS_KEY_ID and SMS_ARCHIVER_STORAGE__SECRET_ACCESS_KEY"
            )
        self._region = settings.region or None
        self._timeout_seconds = settings.timeout_seconds
        self._conditional_mode = settings.conditional_writes
        self.conditional_writes_supported = settings.conditional_writes != "off"
        # Why conditional writes are emulated ("" while they are not).
        self.emulation_reason = (
            "SMS_ARCHIVER_STORAGE__CONDITIONAL_WRITES=off" if settings.conditional_writes == "off" else ""
        )
        self._conditions_proved = settings.conditional_writes == "off"  # nothing to prove when off
        self._probe_lock = threading.Lock()
        self._emulation_warned = False
        self._lock_mode = settings.object_lock_mode
        self._lock_days = settings.object_lock_days
        self._client = self._build_client(settings, session or boto3.session.Session())

    def _build_client(self, settings: StorageSettings, session: boto3.session.Session) -> S3Client:
        config = Config(
            region_name=self._region,
            s3={"addressing_style": settings.addressing_style},
            request_checksum_calculation=settings.checksums,
            response_checksum_validation=settings.checksums,
            # Standard mode retries throttling, 5xx and connection errors with backoff;
            # total_max_attempts counts the first attempt, as the setting does.
            retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
            connect_timeout=settings.timeout_seconds,
            read_timeout=settings.timeout_seconds,
            user_agent_extra="sms-archiver",
        )
        # Unwrapped only here: both or neither, else boto3's own chain (env, profile, instance role).
        key_id = settings.access_key_id.get_secret_value() if settings.access_key_id else None
        secret = settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
        try:
            # Not boto3's default session: nothing shared with, or leaked to, other code.
            return session.client(
                "s3",
                endpoint_url=self._endpoint_url,
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                config=config,
            )
        except ValueError as exc:  # botocore's answer to a malformed endpoint URL
            raise ConfigError(
                f"SMS_ARCHIVER_STORAGE__ENDPOINT_URL: {_redact_url(self._endpoint_url or '')!r}"
                " is not a valid endpoint URL"
            ) from exc
        except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
            raise ConfigError(f"SMS_ARCHIVER_STORAGE: cannot set up the S3 client: {exc}") from exc

    def describe(self) -> str:
        url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        if self._endpoint_url:
            return f"{url} at {_redact_url(self._endpoint_url)}"
        return f"{url} on AWS" + (f" ({self._region})" if self._region else "")

    def __repr__(self) -> str:
        return f"S3Store({self.describe()!r})"

    def _full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative_key(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _error(self, operation: str, key: str, exc: Exception) -> StorageError:
        return StorageError(f"{operation} {key!r} on {self.describe()} failed: {_explain(exc, self._timeout_seconds)}")

    def check(self) -> None:
        """Prove the bucket exists and takes writes: head it, then write and delete a probe.

        Unless ``conditional_writes="off"``, the probe also proves that conditional writes are
        enforced (see the class), so afterwards ``conditional_writes_supported`` tells what the
        store does; ``"on"`` raises ``StorageError`` on a store that does not enforce them.
        """
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            status = _http_status(exc)
            if status == 404:
                detail = f"bucket {self.bucket!r} does not exist: create it or fix SMS_ARCHIVER_STORAGE__URL"
            elif status == 403:
                detail = f"access to bucket {self.bucket!r} denied: check the credentials and the bucket policy"
            else:
                detail = _explain(exc, self._timeout_seconds)
            raise StorageError(f"check of {self.describe()} failed: {detail}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"check of {self.describe()} failed: {_explain(exc, self._timeout_seconds)}") from exc
        if self._conditional_mode == "off":
            probe = f"_state/.probe-{secrets.token_hex(8)}"
            self._put_object("check (write probe)", probe, b"probe\n", {})
            self._delete("check (delete probe)", probe)
        else:
            self._prove_conditional_writes(force=True)

    def _prove_conditional_writes(self, *, force: bool = False) -> None:
        """Find out, once per store object, whether the store enforces conditional writes.

        A fresh key is written with ``If-None-Match: *`` twice (the second must be refused), then
        with an ``If-Match`` naming another etag (refused too). A store that takes either repeat
        ignores the headers: a lease on it would be no fence at all.
        """
        with self._probe_lock:
            if self._conditions_proved and not force:
                return
            probe = f"_state/.probe-{secrets.token_hex(8)}"
            try:
                ignored = self._probe_ignores_conditions(probe)
            except _ConditionalWritesUnsupported as unsupported:
                self._conditional_writes_missing(
                    f"the store answered {_error_code(unsupported.cause)} to a conditional write", unsupported.cause
                )
            else:
                if ignored:
                    self._conditional_writes_missing(
                        f"the store ignores {ignored}: it accepted a write it had to refuse", None
                    )
            finally:
                self._delete("check (delete probe)", probe)
            self._conditions_proved = True

    def _probe_ignores_conditions(self, probe: str) -> str:
        """Return the header the store ignored on ``probe`` ("" if it enforced both)."""
        operation = "check (conditional write probe)"
        first = self._put_object(operation, probe, b"probe 1\n", {}, if_none_match=True)
        try:
            self._put_object(operation, probe, b"probe 2\n", {}, if_none_match=True)
            return "If-None-Match"
        except PreconditionFailed:
            pass
        wrong = hashlib.md5(first.etag.encode(), usedforsecurity=False).hexdigest()
        try:
            self._put_object(operation, probe, b"probe 3\n", {}, if_match=wrong)
            return "If-Match"
        except PreconditionFailed:
            return ""

    def _conditional_writes_missing(self, reason: str, cause: Exception | None) -> None:
        """Emulate from now on (``auto``/``off``), or refuse (``on``); warn once."""
        if self._conditional_mode == "on":
            raise StorageError(
                f"{self.describe()} does not support conditional writes ({reason}); the single-writer lease"
                " needs them: set SMS_ARCHIVER_STORAGE__CONDITIONAL_WRITES=auto (or off) to emulate them"
            ) from cause
        self.conditional_writes_supported = False
        self.emulation_reason = reason
        self._warn_emulated(reason)

    def put(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None, lock: bool = False) -> ObjectInfo:
        return self._put_object("put", _check_key(key), data, _normalize_metadata(metadata), lock=lock)

    def put_if_absent(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        return self._conditional_put(
            "put_if_absent", _check_key(key), data, _normalize_metadata(metadata), if_none_match=True
        )

    def put_if_match(self, key: str, data: bytes, etag: str, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        return self._conditional_put(
            "put_if_match", _check_key(key), data, _normalize_metadata(metadata), if_match=_bare_etag(etag)
        )

    def _put_object(
        self,
        operation: str,
        key: str,
        data: bytes,
        metadata: dict[str, str],
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        lock: bool = False,
    ) -> ObjectInfo:
        request: PutObjectRequestTypeDef = {
            "Bucket": self.bucket,
            "Key": self._full_key(key),
            "Body": data,
            "Metadata": metadata,
        }
        if lock and self._lock_mode:
            # Write-once archives: the bucket must have Object Lock enabled. S3 demands a checksum on
            # such puts, whatever the checksums setting.
            request["ObjectLockMode"] = self._lock_mode
            request["ObjectLockRetainUntilDate"] = dt.datetime.now(dt.UTC) + dt.timedelta(days=self._lock_days)
            request["ChecksumAlgorithm"] = "SHA256"
        if if_none_match:
            request["IfNoneMatch"] = "*"
        if if_match is not None:
            request["IfMatch"] = f'"{if_match}"'
        conditional = if_none_match or if_match is not None
        try:
            response = self._client.put_object(**request)
        except ClientError as exc:
            code = _error_code(exc)
            if conditional and (code in _PRECONDITION_CODES or _http_status(exc) in (409, 412)):
                raise PreconditionFailed(
                    f"{operation} {key!r} on {self.describe()}: the object changed or exists ({code})"
                ) from exc
            if if_match is not None and code in _MISSING_KEY_CODES:
                raise PreconditionFailed(
                    f"{operation} {key!r} on {self.describe()}: the object no longer exists"
                ) from exc
            if conditional and _refuses_conditions(exc):
                raise _ConditionalWritesUnsupported(exc) from exc
            raise self._error(operation, key, exc) from exc
        except BotoCoreError as exc:
            raise self._error(operation, key, exc) from exc
        # PutObject returns no Last-Modified: the server's Date header is the closest clock.
        date_header = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        try:
            written = email.utils.parsedate_to_datetime(date_header) if date_header else None
        except ValueError:
            written = None
        if written is None or written.tzinfo is None:
            written = dt.datetime.now(dt.UTC)
        return ObjectInfo(
            key=key,
            size=len(data),
            last_modified=written.astimezone(dt.UTC),
            etag=_bare_etag(response.get("ETag", "")),
            metadata=dict(metadata),
        )

    def _conditional_put(
        self,
        operation: str,
        key: str,
        data: bytes,
        metadata: dict[str, str],
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        self._prove_conditional_writes()
        if self.conditional_writes_supported:
            try:
                return self._put_object(operation, key, data, metadata, if_none_match=if_none_match, if_match=if_match)
            except _ConditionalWritesUnsupported as unsupported:
                # A store may refuse the headers later than the probe (e.g. on other keys).
                code = _error_code(unsupported.cause)
                self._conditional_writes_missing(f"the store answered {code} to a conditional write", unsupported.cause)
        self._warn_emulated(self.emulation_reason)
        return self._emulated_conditional_put(
            operation, key, data, metadata, if_none_match=if_none_match, if_match=if_match
        )

    def _emulated_conditional_put(
        self,
        operation: str,
        key: str,
        data: bytes,
        metadata: dict[str, str],
        *,
        if_none_match: bool,
        if_match: str | None,
    ) -> ObjectInfo:
        """Head, compare, put with a random nonce, settle, read back: see the class docstring."""
        current = self._head(operation, key)
        if if_none_match and current is not None:
            raise PreconditionFailed(f"{operation} {key!r} on {self.describe()}: an object already exists")
        if if_match is not None and (current is None or current.etag != if_match):
            raise PreconditionFailed(f"{operation} {key!r} on {self.describe()}: the object changed")
        token = secrets.token_hex(16)
        written = self._put_object(operation, key, data, {**metadata, _WRITE_NONCE: token})
        if self.emulated_settle_seconds > 0:
            time.sleep(self.emulated_settle_seconds)
        landed = self._head(operation, key)
        if landed is None or landed.metadata.get(_WRITE_NONCE) != token:
            raise PreconditionFailed(
                f"{operation} {key!r} on {self.describe()}: another writer replaced it at the same time"
            )
        return dataclasses.replace(written, metadata=dict(metadata))

    def _warn_emulated(self, reason: str) -> None:
        if self._emulation_warned:
            return
        self._emulation_warned = True
        structlog.get_logger().warning(
            "conditional_writes_emulated",
            store=self.describe(),
            reason=reason,
            protection=(
                "best effort: each lease write is read back, and every state write checks the lease and its"
                " fencing token; two instances could still both write parts for a moment (content-named: harmless)"
            ),
        )

    def get(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def open(self, key: str) -> BinaryIO:
        key = _check_key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_KEY_CODES:
                raise KeyError(key) from exc
            raise self._error("get", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("get", key, exc) from exc

        def fail(exc: Exception) -> StorageError:
            return self._error("read", key, exc)

        return io.BufferedReader(_S3Reader(response["Body"], fail), buffer_size=256 * 1024)

    def head(self, key: str) -> ObjectInfo | None:
        return self._head("head", _check_key(key))

    def _head(self, operation: str, key: str) -> ObjectInfo | None:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as exc:
            # A HEAD answer has no body, so a missing bucket also reads as 404 here.
            if _error_code(exc) in _MISSING_KEY_CODES or _http_status(exc) == 404:
                return None
            raise self._error(operation, key, exc) from exc
        except BotoCoreError as exc:
            raise self._error(operation, key, exc) from exc
        return ObjectInfo(
            key=key,
            size=response.get("ContentLength", 0),
            last_modified=response["LastModified"].astimezone(dt.UTC),
            etag=_bare_etag(response.get("ETag", "")),
            metadata=dict(response.get("Metadata", {})),
        )

    def delete(self, key: str) -> None:
        self._delete("delete", _check_key(key))

    def _delete(self, operation: str, key: str) -> None:
        try:
            # S3 answers 204 whether or not the key existed.
            self._client.delete_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_KEY_CODES:
                return
            raise self._error(operation, key, exc) from exc
        except BotoCoreError as exc:
            raise self._error(operation, key, exc) from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        prefix = _check_prefix(prefix)
        full_prefix = self._full_key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": self.list_page_size}
        )
        try:
            # S3 lists in UTF-8 byte order, which is the code point order LocalStore sorts by.
            for page in pages:
                for entry in page.get("Contents", []):
                    yield ObjectInfo(
                        key=self._relative_key(entry["Key"]),
                        size=entry.get("Size", 0),
                        last_modified=entry["LastModified"].astimezone(dt.UTC),
                        etag=_bare_etag(entry.get("ETag", "")),
                    )
        except ClientError as exc:
            raise self._error("list", prefix, exc) from exc
        except BotoCoreError as exc:
            raise self._error("list", prefix, exc) from exc


# --------------------------------------------------------------------------------------------
# Local directory


def _md5_of_stream(stream: BinaryIO) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """Make renames and unlinks in ``directory`` durable (a file's own fsync does not cover them)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(directory: Path, data: bytes) -> Path:
    """Write ``data`` durably to a new hidden temporary file in ``directory``; return its path.

    Same directory as the target, so the final ``os.replace``/``os.link`` is a rename within
    one filesystem. Temporary files are created mode 0600: the archive holds private messages.
    """
    fd, name = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def _mtime(result: os.stat_result) -> dt.datetime:
    return dt.datetime.fromtimestamp(result.st_mtime, tz=dt.UTC)


class LocalStore:
    """A directory on this host: atomic, durable writes; metadata in hidden sidecar files.

    An object ``a/b.csv`` lives at ``<directory>/a/b.csv``; its metadata, if any, in
    ``<directory>/a/.b.csv.meta.json`` together with the etag of the content it belongs to, so
    a sidecar left behind by an interrupted write is recognised and ignored.
    ``put_if_absent`` is atomic (a hard link fails if the target exists). ``put_if_match``
    holds an ``flock`` on ``.b.csv.lock`` for its read-compare-replace: that excludes writers on
    this host, which is all a local directory is meant to serve (not NFS shared between hosts).
    Unlike S3, a key cannot be both an object and a "directory" of others (``a/b`` and ``a/b/c``):
    the second write raises ``StorageError``.
    """

    conditional_writes_supported = True
    emulation_reason = ""  # as on S3Store: conditional writes here are real (a link, a file lock)

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).absolute()

    def describe(self) -> str:
        return self.directory.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.directory)!r})"

    def _path(self, key: str) -> Path:
        return self.directory.joinpath(*_check_key(key).split("/"))

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(f".{path.name}.meta.json")

    def _error(self, operation: str, key: str, path: Path, exc: OSError) -> StorageError:
        reason = exc.strerror or str(exc)
        code = errno.errorcode.get(exc.errno or 0, "")
        return StorageError(
            f"{operation} {key!r} in {self.describe()} failed at {exc.filename or path}: {reason}"
            + (f" ({code})" if code else "")
        )

    def _ensure_directory(self, directory: Path) -> None:
        """Create ``directory`` and its missing parents, making each new entry durable."""
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            missing.append(current)
            if current.parent == current:
                break
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                if not path.is_dir():
                    raise
                continue  # another writer created it meanwhile
            _fsync_directory(path.parent)

    def check(self) -> None:
        """Prove the directory can be created and written: write, fsync and remove a probe file."""
        try:
            self._ensure_directory(self.directory)
            _write_temp(self.directory, b"probe\n").unlink()
        except OSError as exc:
            raise StorageError(
                f"check of {self.describe()} failed at {exc.filename or self.directory}:"
                f" {exc.strerror or exc}; the directory must be creatable and writable by this user"
            ) from exc

    def _replace(self, key: str, path: Path, data: bytes, metadata: dict[str, str]) -> ObjectInfo:
        """Write ``data`` and its metadata at ``path``, replacing what is there (OSError escapes)."""
        self._ensure_directory(path.parent)
        temporary = _write_temp(path.parent, data)
        try:
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        # Object first, then sidecar: a crash in between leaves the previous sidecar, whose etag
        # no longer matches, rather than the new metadata on the old object.
        self._write_sidecar(path, etag, metadata)
        _fsync_directory(path.parent)
        return ObjectInfo(key, len(data), _mtime(path.stat()), etag, dict(metadata))

    def _write_sidecar(self, path: Path, etag: str, metadata: dict[str, str]) -> None:
        sidecar = self._sidecar(path)
        if not metadata:
            sidecar.unlink(missing_ok=True)
            return
        document = json.dumps({"etag": etag, "metadata": metadata}, sort_keys=True).encode()
        temporary = _write_temp(path.parent, document)
        try:
            os.replace(temporary, sidecar)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def put(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None, lock: bool = False) -> ObjectInfo:
        # ``lock`` has no meaning for a directory (settings refuse Object Lock without s3://).
        path = self._path(key)
        normalized = _normalize_metadata(metadata)
        try:
            return self._replace(key, path, data, normalized)
        except OSError as exc:
            raise self._error("put", key, path, exc) from exc

    def put_if_absent(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        path = self._path(key)
        normalized = _normalize_metadata(metadata)
        try:
            self._ensure_directory(path.parent)
            temporary = _write_temp(path.parent, data)
            try:
                # link() refuses an existing target, atomically: exactly one concurrent writer wins.
                os.link(temporary, path)
            except FileExistsError:
                raise PreconditionFailed(
                    f"put_if_absent {key!r} in {self.describe()}: an object already exists at {path}"
                ) from None
            finally:
                temporary.unlink(missing_ok=True)
            etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
            self._write_sidecar(path, etag, normalized)
            _fsync_directory(path.parent)
            written = _mtime(path.stat())
        except OSError as exc:
            raise self._error("put_if_absent", key, path, exc) from exc
        return ObjectInfo(key, len(data), written, etag, normalized)

    def put_if_match(self, key: str, data: bytes, etag: str, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        path = self._path(key)
        normalized = _normalize_metadata(metadata)
        expected = _bare_etag(etag)
        try:
            if not path.is_file():
                # Checked before locking so a failed attempt leaves no lock file behind.
                raise PreconditionFailed(f"put_if_match {key!r} in {self.describe()}: the object does not exist")
            with self._locked(path):
                try:
                    with path.open("rb") as stream:
                        current = _md5_of_stream(stream)
                except FileNotFoundError:
                    current = None
                if current != expected:
                    raise PreconditionFailed(f"put_if_match {key!r} in {self.describe()}: the object changed")
                return self._replace(key, path, data, normalized)
        except OSError as exc:
            raise self._error("put_if_match", key, path, exc) from exc

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        # The lock file is never removed: unlinking it could let two writers lock different inodes.
        fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def get(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise KeyError(key) from exc
        except OSError as exc:
            raise self._error("get", key, path, exc) from exc

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            try:
                stream = path.open("rb")
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
            # One descriptor for size, time and hash, so they describe the same content.
            with stream:
                result = os.fstat(stream.fileno())
                if not stat.S_ISREG(result.st_mode):
                    return None
                etag = _md5_of_stream(stream)
            metadata = self._read_sidecar(path, etag)
        except OSError as exc:
            raise self._error("head", key, path, exc) from exc
        return ObjectInfo(key, result.st_size, _mtime(result), etag, metadata)

    def _read_sidecar(self, path: Path, etag: str) -> dict[str, str]:
        sidecar = self._sidecar(path)
        try:
            document = json.loads(sidecar.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise StorageError(f"metadata file {sidecar} is not valid JSON: {exc}") from exc
        if not isinstance(document, dict) or document.get("etag") != etag:
            return {}  # left by an interrupted write: it belongs to other content
        metadata = document.get("metadata")
        return {str(name): str(value) for name, value in metadata.items()} if isinstance(metadata, dict) else {}

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            for victim in (path, self._sidecar(path)):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    victim.unlink()
            if path.parent.is_dir():
                _fsync_directory(path.parent)
        except OSError as exc:
            raise self._error("delete", key, path, exc) from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        prefix = _check_prefix(prefix)
        directory_segments = prefix.split("/")[:-1]
        start = self.directory.joinpath(*directory_segments)
        yield from self._walk(start, "/".join(directory_segments), prefix)

    def _walk(self, directory: Path, directory_key: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as scan:
                entries = [entry for entry in scan if not entry.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise self._error("list", prefix, directory, exc) from exc
        # Sorting directories as "name/" yields whole keys in code point order, the order S3 uses:
        # every key below "a/" sorts exactly where "a/" does among its siblings.
        named = []
        for entry in entries:
            key = f"{directory_key}/{entry.name}" if directory_key else entry.name
            is_directory = entry.is_dir(follow_symlinks=False)
            named.append((key + "/" if is_directory else key, key, is_directory, entry))
        named.sort(key=lambda item: item[0])
        for sort_key, key, is_directory, entry in named:
            if is_directory:
                if sort_key.startswith(prefix) or prefix.startswith(sort_key):
                    yield from self._walk(Path(entry.path), key, prefix)
                continue
            if not key.startswith(prefix) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                result = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while we were listing
            except OSError as exc:
                raise self._error("list", key, Path(entry.path), exc) from exc
            yield ObjectInfo(key, result.st_size, _mtime(result))
