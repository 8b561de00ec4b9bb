"""``S3Store``: the archive in an S3-compatible bucket (boto3), with conditional writes proven or emulated."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import hashlib
import io
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

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
from archiver.store.base import ObjectInfo, ObjectVersion, bare_etag, check_key, check_prefix, normalize_metadata
from archiver.store.urls import parse_s3_url, redact_url

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

    from archiver.config import StorageSettings


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


def _retained_until(head: Mapping[str, Any]) -> dt.datetime | None:
    """The Object Lock retention date a HeadObject answer reports (None: no retention on this version).

    A legal hold (``ObjectLockLegalHoldStatus``) has no date: it is reported as lasting forever.
    """
    if head.get("ObjectLockLegalHoldStatus") == "ON":
        return dt.datetime.max.replace(tzinfo=dt.UTC)
    until = head.get("ObjectLockRetainUntilDate")
    return until.astimezone(dt.UTC) if isinstance(until, dt.datetime) else None


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
    the settle between its head and its put; the lease's fencing token (``archiver.store.state``)
    catches that at the next state write.
    """

    # Objects per list_objects_v2 call; tests lower it to exercise pagination.
    list_page_size = 1000
    # A read is a round trip: enough GETs at once to hide it behind the work on a day (parts are small).
    parallel_reads = 8
    # Seconds an emulated conditional write waits before reading back: a rival that looked at the
    # object before our put lands its own put within a request's time, so waiting longer than that
    # lets the read-back see it. Emulation only (lease writes, a few per cycle).
    emulated_settle_seconds = 1.0

    def __init__(self, settings: StorageSettings, *, session: boto3.session.Session | None = None) -> None:
        """Build the client from ``settings``; ``session`` lets callers share one (loading it is slow)."""
        self.bucket, self.prefix = parse_s3_url(settings.url)
        self._endpoint_url = settings.endpoint_url or None
        if self._endpoint_url and "@" in urllib.parse.urlsplit(self._endpoint_url).netloc:
            # botocore would repeat such a URL in its error messages; S3 never uses it anyway.
            raise ConfigError(
                f"SMS_ARCHIVER_STORAGE__ENDPOINT_URL: {redact_url(self._endpoint_url)!r} holds credentials;"
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
                f"SMS_ARCHIVER_STORAGE__ENDPOINT_URL: {redact_url(self._endpoint_url or '')!r}"
                " is not a valid endpoint URL"
            ) from exc
        except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
            raise ConfigError(f"SMS_ARCHIVER_STORAGE: cannot set up the S3 client: {exc}") from exc

    def describe(self) -> str:
        url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        if self._endpoint_url:
            return f"{url} at {redact_url(self._endpoint_url)}"
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
        return self._put_object("put", check_key(key), data, normalize_metadata(metadata), lock=lock)

    def put_if_absent(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        return self._conditional_put(
            "put_if_absent", check_key(key), data, normalize_metadata(metadata), if_none_match=True
        )

    def put_if_match(self, key: str, data: bytes, etag: str, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        return self._conditional_put(
            "put_if_match", check_key(key), data, normalize_metadata(metadata), if_match=bare_etag(etag)
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
            etag=bare_etag(response.get("ETag", "")),
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
        key = check_key(key)
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
        return self._head("head", check_key(key))

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
            etag=bare_etag(response.get("ETag", "")),
            metadata=dict(response.get("Metadata", {})),
            locked_until=_retained_until(response),
        )

    def delete(self, key: str) -> None:
        self._delete("delete", check_key(key))

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
        prefix = check_prefix(prefix)
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
                        etag=bare_etag(entry.get("ETag", "")),
                    )
        except ClientError as exc:
            raise self._error("list", prefix, exc) from exc
        except BotoCoreError as exc:
            raise self._error("list", prefix, exc) from exc

    # -- older versions (versioned buckets) ----------------------------------------------------------

    def old_versions(self, prefix: str) -> Iterator[ObjectVersion]:
        prefix = check_prefix(prefix)
        full_prefix = self._full_key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        paginator = self._client.get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for entry in page.get("Versions", []):
                    # An unversioned bucket lists each object once, as the latest version "null".
                    if not entry.get("IsLatest", True):
                        yield ObjectVersion(
                            key=self._relative_key(entry["Key"]),
                            version_id=entry["VersionId"],
                            size=entry.get("Size", 0),
                        )
        except ClientError as exc:
            raise self._error("list versions", prefix, exc) from exc
        except BotoCoreError as exc:
            raise self._error("list versions", prefix, exc) from exc

    def get_version(self, key: str, version_id: str) -> bytes:
        key = check_key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._full_key(key), VersionId=version_id)
            return response["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in _MISSING_KEY_CODES | {"NoSuchVersion"}:
                raise KeyError(key) from exc
            raise self._error("get version", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("get version", key, exc) from exc

    def old_version_lock(self, key: str, version_id: str) -> dt.datetime | None:
        key = check_key(key)
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=self._full_key(key), VersionId=version_id)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_KEY_CODES or _http_status(exc) == 404:
                return None
            raise self._error("head version", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("head version", key, exc) from exc
        return _retained_until(response)

    def delete_version(self, key: str, version_id: str) -> None:
        key = check_key(key)
        try:
            # With a VersionId, S3 removes that version for good (no delete marker); Object Lock refuses it.
            self._client.delete_object(Bucket=self.bucket, Key=self._full_key(key), VersionId=version_id)
        except ClientError as exc:
            raise self._error("delete version", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("delete version", key, exc) from exc
