"""The store contract, run against LocalStore and against S3Store on moto's S3 server."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import random
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import botocore.exceptions
import pytest
from botocore.awsrequest import AWSResponse
from pydantic import SecretStr
from structlog.testing import capture_logs

from archiver.errors import ConfigError, PreconditionFailed, StorageError
from archiver.store import LocalStore, ObjectInfo, S3Store, Store, open_store

if TYPE_CHECKING:
    from conftest import S3Target

    from archiver.config import StorageSettings
    from tests.s3proxy import IgnoringConditionsProxy


@dataclass
class _Settings:
    """Stands in for ``archiver.config.StorageSettings`` (same attributes, no validation)."""

    url: str
    endpoint_url: str | None = None
    region: str | None = "us-east-1"
    access_key_id: SecretStr | None = field(default_factory=lambda: SecretStr("testing"))
    secret_access_key: SecretStr | None = field(default_factory=lambda: SecretStr("testing"))
    addressing_style: str = "path"
    checksums: str = "when_required"
    conditional_writes: str = "auto"
    timeout_seconds: float = 5.0
    max_attempts: int = 1
    object_lock_mode: str = ""
    object_lock_days: int = 0


def storage_settings(url: str, **overrides: Any) -> StorageSettings:
    return cast("StorageSettings", _Settings(url, **overrides))


def s3_store(target: S3Target, *, url: str | None = None, **overrides: Any) -> S3Store:
    assert target.server is not None
    settings = storage_settings(url or target.url, endpoint_url=target.endpoint_url, **overrides)
    return S3Store(settings, session=target.server.session)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=["local", "s3-prefix", "s3-root"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "archive")
    target: S3Target = request.getfixturevalue("s3_bucket")
    url = target.url if request.param == "s3-prefix" else f"s3://{target.bucket}"
    return s3_store(target, url=url)


KEY = "svc/outgoing/year=2026/month=05/day=01/1-9-abc.csv"


# ---------------------------------------------------------------------------------------------
# The contract, on every store


def test_put_then_get_returns_the_bytes(store: Store) -> None:
    info = store.put(KEY, b"id;text\r\n1;hello\r\n")
    assert (info.key, info.size, info.etag) == (KEY, 18, md5(b"id;text\r\n1;hello\r\n"))
    assert info.last_modified.tzinfo is not None
    assert store.get(KEY) == b"id;text\r\n1;hello\r\n"


def test_put_replaces_an_existing_object(store: Store) -> None:
    store.put(KEY, b"old", metadata={"rows": "1"})
    store.put(KEY, b"new")
    assert store.get(KEY) == b"new"
    head = store.head(KEY)
    assert head is not None
    assert head.metadata == {}  # metadata belongs to the write, not the key


def test_head_tells_size_etag_and_lowercased_metadata(store: Store) -> None:
    store.put(KEY, b"abc", metadata={"SHA256": "f" * 64, "rows": "3", "delimiter": ";"})
    head = store.head(KEY)
    assert head is not None
    assert (head.key, head.size, head.etag) == (KEY, 3, md5(b"abc"))
    assert head.metadata == {"sha256": "f" * 64, "rows": "3", "delimiter": ";"}
    assert head.last_modified.utcoffset() == dt.timedelta(0)
    assert abs(head.last_modified - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_missing_objects(store: Store) -> None:
    assert store.head(KEY) is None
    with pytest.raises(KeyError):
        store.get(KEY)
    with pytest.raises(KeyError):
        store.open(KEY)
    store.delete(KEY)  # absent is not an error
    assert list(store.list("")) == []


def test_list_yields_keys_in_order_relative_to_the_store(store: Store) -> None:
    # '-' < '/' < '0' in code point order: a naive directory walk would put "a-b" after "a/…".
    keys = ["a/b", "a-b", "a/b-c", "a0", "ab/c", "a/c/d", "b", "a/bx", "z/y/x/w"]
    shuffled = keys[:]
    random.Random(7).shuffle(shuffled)
    for index, key in enumerate(shuffled):
        store.put(key, b"x" * index)
    listed = list(store.list(""))
    assert [info.key for info in listed] == sorted(keys)
    assert {info.key: info.size for info in listed} == {key: shuffled.index(key) for key in keys}
    assert all(isinstance(info, ObjectInfo) and info.last_modified.tzinfo for info in listed)
    for prefix in ["a", "a/", "a/b", "a/c/", "ab", "z/y/", "q", "a-"]:
        expected = sorted(key for key in keys if key.startswith(prefix))
        assert [info.key for info in store.list(prefix)] == expected, prefix


def test_list_is_a_lazy_iterator(store: Store) -> None:
    store.put("one/x", b"1")
    listing = store.list("one/")
    assert not isinstance(listing, list)
    assert [info.key for info in listing] == ["one/x"]


def test_delete_removes_the_object(store: Store) -> None:
    store.put(KEY, b"abc", metadata={"rows": "1"})
    store.put("svc/other.csv", b"keep")
    store.delete(KEY)
    assert store.head(KEY) is None
    with pytest.raises(KeyError):
        store.get(KEY)
    assert [info.key for info in store.list("")] == ["svc/other.csv"]
    store.delete(KEY)


def test_open_streams_large_objects(store: Store) -> None:
    data = random.Random(3).randbytes(3 * 1024 * 1024 + 17)
    store.put(KEY, data)
    received = bytearray()
    with store.open(KEY) as stream:
        while chunk := stream.read(64 * 1024):
            assert len(chunk) <= 64 * 1024
            received += chunk
    assert bytes(received) == data
    # Readers such as csv/gzip wrap the stream: it must behave like a binary file.
    with store.open(KEY) as stream, io.TextIOWrapper(stream, encoding="latin-1") as text:
        assert len(text.read(10)) == 10


def test_put_if_absent_refuses_the_second_write(store: Store) -> None:
    first = store.put_if_absent(KEY, b"first", metadata={"owner": "a"})
    assert first.etag == md5(b"first")
    with pytest.raises(PreconditionFailed):
        store.put_if_absent(KEY, b"second", metadata={"owner": "b"})
    assert store.get(KEY) == b"first"
    head = store.head(KEY)
    assert head is not None
    assert head.metadata == {"owner": "a"}


def test_put_if_match_needs_the_current_etag(store: Store) -> None:
    first = store.put(KEY, b"v1")
    second = store.put_if_match(KEY, b"v2", first.etag, metadata={"version": "2"})
    assert second.etag == md5(b"v2")
    with pytest.raises(PreconditionFailed):
        store.put_if_match(KEY, b"v3", first.etag)  # stale etag: someone wrote v2 meanwhile
    assert store.get(KEY) == b"v2"
    third = store.put_if_match(KEY, b"v3", f'"{second.etag}"')  # S3's quoted form is accepted
    head = store.head(KEY)
    assert head is not None
    assert head.etag == third.etag == md5(b"v3")


def test_put_if_match_on_a_missing_object_fails(store: Store) -> None:
    with pytest.raises(PreconditionFailed):
        store.put_if_match(KEY, b"v1", md5(b"v0"))
    assert store.head(KEY) is None


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../escape", "a/../../escape", "a/./b", "a//b", "a/", ".hidden", "a/.b.meta.json"],
)
def test_unsafe_keys_are_rejected(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put(key, b"x")
    for operation in (store.get, store.head, store.delete, store.open):
        with pytest.raises(ValueError):
            operation(key)
    with pytest.raises(ValueError):
        store.put_if_absent(key, b"x")


@pytest.mark.parametrize("prefix", ["../", "/abs/", "a/../../", "a//", "a/.hidden/"])
def test_unsafe_listing_prefixes_are_rejected(store: Store, prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid listing prefix"):
        list(store.list(prefix))


@pytest.mark.parametrize(
    "metadata", [{"note": "café"}, {"note": "tab\there"}, {"note": " padded"}, {"note": ""}, {"bad key": "x"}]
)
def test_metadata_that_http_headers_would_alter_is_rejected(store: Store, metadata: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="metadata"):
        store.put(KEY, b"x", metadata=metadata)
    assert store.head(KEY) is None


def test_check_passes_and_leaves_nothing_behind(store: Store) -> None:
    store.check()
    assert list(store.list("")) == []


# ---------------------------------------------------------------------------------------------
# S3Store


def test_s3_keys_live_under_the_url_prefix(s3_bucket: S3Target) -> None:
    client = s3_bucket.client()
    client.put_object(Bucket=s3_bucket.bucket, Key="elsewhere/x.csv", Body=b"not ours")
    client.put_object(Bucket=s3_bucket.bucket, Key="archive-old/x.csv", Body=b"not ours either")
    for url, stored in [
        (f"s3://{s3_bucket.bucket}/archive", "archive/a/b.csv"),
        (f"s3://{s3_bucket.bucket}/deep/er/", "deep/er/a/b.csv"),
        (f"s3://{s3_bucket.bucket}", "a/b.csv"),
    ]:
        store = s3_store(s3_bucket, url=url)
        store.put("a/b.csv", b"data")
        assert client.get_object(Bucket=s3_bucket.bucket, Key=stored)["Body"].read() == b"data"
        assert [info.key for info in store.list("a/")] == ["a/b.csv"]
    prefixed = s3_store(s3_bucket, url=f"s3://{s3_bucket.bucket}/archive")
    assert [info.key for info in prefixed.list("")] == ["a/b.csv"]


def test_s3_list_follows_pagination(s3_bucket: S3Target) -> None:
    store = s3_store(s3_bucket)
    store.list_page_size = 2
    keys = [f"p/{index:02d}.csv" for index in range(7)]
    for key in reversed(keys):
        store.put(key, b"x")
    assert [info.key for info in store.list("p/")] == keys


def test_s3_describe_and_open_store(s3_bucket: S3Target) -> None:
    store = open_store(storage_settings(s3_bucket.url, endpoint_url=s3_bucket.endpoint_url))
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == (s3_bucket.bucket, "archive")
    assert store.describe() == f"s3://{s3_bucket.bucket}/archive at {s3_bucket.endpoint_url}"
    aws = S3Store(storage_settings("s3://b", region="eu-west-3"))
    assert aws.describe() == "s3://b on AWS (eu-west-3)"


def test_s3_unreachable_endpoint_is_a_storage_error() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    store = S3Store(storage_settings("s3://bucket/pre", endpoint_url=endpoint, timeout_seconds=1))
    with pytest.raises(StorageError) as caught:
        store.put(KEY, b"x")
    message = str(caught.value)
    assert not isinstance(caught.value, botocore.exceptions.BotoCoreError)
    assert isinstance(caught.value.__cause__, botocore.exceptions.EndpointConnectionError)
    assert message.startswith(f"put {KEY!r} on s3://bucket/pre at {endpoint} failed: endpoint unreachable")
    for operation in (store.get, store.head, store.delete, lambda key: list(store.list(key))):
        with pytest.raises(StorageError, match="endpoint unreachable"):
            operation("svc/x")
    with pytest.raises(StorageError, match="endpoint unreachable"):
        store.check()


def test_s3_missing_bucket_is_a_storage_error(s3_bucket: S3Target) -> None:
    store = s3_store(s3_bucket, url="s3://no-such-bucket-here/archive")
    with pytest.raises(StorageError, match=r"NoSuchBucket .*the bucket does not exist") as caught:
        store.put(KEY, b"x")
    assert "put" in str(caught.value) and KEY in str(caught.value)
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' does not exist"):
        store.check()
    with pytest.raises(StorageError, match="NoSuchBucket"):
        list(store.list(""))


def test_s3_secrets_never_show(s3_bucket: S3Target) -> None:
    key_id, secret = "AKIDDISTINCTKEY7Q2X", "s3cr3t-Distinct-Value-9f2b"
    credentials: dict[str, Any] = {"access_key_id": SecretStr(key_id), "secret_access_key": SecretStr(secret)}
    unreachable = f"http://127.0.0.1:{closed_port()}"
    unreachable_settings = storage_settings(
        "s3://bucket/pre", endpoint_url=unreachable, timeout_seconds=1, **credentials
    )
    stores = [
        s3_store(s3_bucket, url="s3://no-such-bucket/pre", **credentials),  # S3 error answers
        S3Store(unreachable_settings),  # no answer at all
    ]
    shown: list[str] = []
    for store in stores:
        shown += [repr(store), store.describe(), str(store)]
        for operation in (partial(store.put, KEY, b"x"), store.check, partial(store.get, KEY)):
            with pytest.raises(StorageError) as caught:
                operation()
            shown += [str(caught.value), "".join(traceback.format_exception(caught.value))]
    for bad in [
        storage_settings(f"s3://{key_id}:{secret}@bucket/x", **credentials),
        storage_settings("s3://bucket/x", endpoint_url=f"http://{key_id}:{secret}@127.0.0.1:9", **credentials),
    ]:
        with pytest.raises(ConfigError) as refused:
            open_store(bad)
        shown += [str(refused.value), "".join(traceback.format_exception(refused.value))]
    assert len(shown) == 2 * 3 + 2 * 3 * 2 + 2 * 2
    for text in shown:
        assert secret not in text
        assert key_id not in text


def test_s3_check_reports_conditional_write_support(s3_bucket: S3Target) -> None:
    store = s3_store(s3_bucket)
    store.check()
    assert store.conditional_writes_supported is True
    assert s3_bucket.client().list_objects_v2(Bucket=s3_bucket.bucket).get("KeyCount") == 0


def test_s3_conditional_writes_off_are_emulated(s3_bucket: S3Target) -> None:
    store = s3_store(s3_bucket, conditional_writes="off")
    assert store.conditional_writes_supported is False
    with capture_logs() as logs:
        first = store.put_if_absent(KEY, b"one")
        with pytest.raises(PreconditionFailed):
            store.put_if_absent(KEY, b"two")
        with pytest.raises(PreconditionFailed):
            store.put_if_match(KEY, b"two", md5(b"zero"))
        with pytest.raises(PreconditionFailed):
            store.put_if_match("svc/absent.csv", b"two", first.etag)
        store.put_if_match(KEY, b"two", first.etag)
    assert store.get(KEY) == b"two"
    warnings = [entry for entry in logs if entry["event"] == "conditional_writes_emulated"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert "best effort" in warnings[0]["protection"]


# Error answers of S3-compatible stores that do not implement conditional writes.
NOT_IMPLEMENTED = (
    501,
    "NotImplemented",
    "A header you provided implies functionality that is not implemented",
)
INVALID_HEADER = (400, "InvalidArgument", "Unsupported header If-None-Match received for this API call.")
INVALID_OTHER = (400, "InvalidArgument", "Invalid storage class.")


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def refuse_conditional_headers(status: int, code: str, message: str) -> Callable[..., Any]:
    """A botocore ``before-send`` hook answering conditional PUTs like a store without them."""

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        if "If-None-Match" not in request.headers and "If-Match" not in request.headers:
            return None  # let the real request through
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        headers: Any = {"Content-Type": "application/xml"}  # AWSResponse wraps it in a HeadersDict
        return AWSResponse(request.url, status, headers, _RawBody(body))

    return answer


@pytest.mark.parametrize("answer", [NOT_IMPLEMENTED, INVALID_HEADER], ids=["501", "400-header"])
def test_s3_auto_falls_back_when_the_store_refuses_conditions(
    s3_bucket: S3Target, answer: tuple[int, str, str]
) -> None:
    store = s3_store(s3_bucket, conditional_writes="auto")
    store._client.meta.events.register("before-send.s3.PutObject", refuse_conditional_headers(*answer))
    with capture_logs() as logs:
        first = store.put_if_absent(KEY, b"one")
        assert store.conditional_writes_supported is False
        with pytest.raises(PreconditionFailed):
            store.put_if_absent(KEY, b"two")
        store.put_if_match(KEY, b"three", first.etag)
    assert store.get(KEY) == b"three"
    warnings = [entry for entry in logs if entry["event"] == "conditional_writes_emulated"]
    assert len(warnings) == 1
    assert answer[1] in warnings[0]["reason"]


def test_s3_conditional_writes_on_refuses_to_emulate(s3_bucket: S3Target) -> None:
    store = s3_store(s3_bucket, conditional_writes="on")
    store._client.meta.events.register("before-send.s3.PutObject", refuse_conditional_headers(*NOT_IMPLEMENTED))
    with pytest.raises(StorageError, match="does not support conditional writes") as caught:
        store.put_if_absent(KEY, b"one")
    assert not isinstance(caught.value, PreconditionFailed)
    assert store.conditional_writes_supported is True
    assert store.head(KEY) is None


def test_s3_unrelated_invalid_argument_is_not_taken_for_missing_support(s3_bucket: S3Target) -> None:
    store = s3_store(s3_bucket)
    store._client.meta.events.register("before-send.s3.PutObject", refuse_conditional_headers(*INVALID_OTHER))
    with pytest.raises(StorageError, match="InvalidArgument"):
        store.put_if_absent(KEY, b"one")
    assert store.conditional_writes_supported is True


def test_s3_read_errors_while_streaming_are_storage_errors(s3_bucket: S3Target) -> None:
    store = s3_store(s3_bucket)
    store.put(KEY, b"x" * 1000)
    stream = store.open(KEY)
    raw: Any = stream.raw  # type: ignore[attr-defined]

    class FailingBody:
        def read(self, amount: int | None = None) -> bytes:
            raise botocore.exceptions.ReadTimeoutError(endpoint_url=s3_bucket.endpoint_url)

        def close(self) -> None:
            pass

    raw._body.close()
    raw._body = FailingBody()
    with pytest.raises(StorageError, match=f"read {KEY!r} on .* no answer within"):
        stream.read()


# ---------------------------------------------------------------------------------------------
# LocalStore


def test_local_layout_metadata_sidecar_and_no_leftovers(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive" / "nested")  # created on first write
    store.put("a/b.csv", b"data", metadata={"rows": "1"})
    store.put_if_absent("a/c.csv", b"data")
    store.put_if_match("a/b.csv", b"data2", md5(b"data"), metadata={"rows": "2"})
    directory = tmp_path / "archive" / "nested" / "a"
    assert (directory / "b.csv").read_bytes() == b"data2"
    names = sorted(path.name for path in directory.iterdir())
    assert names == [".b.csv.lock", ".b.csv.meta.json", "b.csv", "c.csv"]  # no temporary file left
    # Stray hidden and temporary files never show in listings.
    (directory / ".tmp-crashed").write_bytes(b"partial")
    (directory / ".hidden").mkdir()
    (directory / ".hidden" / "x.csv").write_bytes(b"x")
    assert [info.key for info in store.list("")] == ["a/b.csv", "a/c.csv"]
    store.delete("a/b.csv")
    assert not (directory / ".b.csv.meta.json").exists()
    assert store.describe() == (tmp_path / "archive" / "nested").as_uri()


def test_local_ignores_a_sidecar_left_by_an_interrupted_write(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("a.csv", b"old", metadata={"rows": "1"})
    (tmp_path / "a.csv").write_bytes(b"new")  # as if the process died before the sidecar's update
    head = store.head("a.csv")
    assert head is not None
    assert (head.etag, head.metadata) == (md5(b"new"), {})


def test_local_unwritable_directory_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    store = LocalStore(blocker / "archive")  # root or not, nothing can be created under a file
    with pytest.raises(StorageError, match=f"put 'x.csv' in .* failed at {blocker}"):
        store.put("x.csv", b"x")
    with pytest.raises(StorageError, match="creatable and writable"):
        store.check()
    assert not isinstance(store, S3Store)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_local_read_only_directory_is_a_storage_error(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="Permission denied"):
            LocalStore(directory).put("x.csv", b"x")
    finally:
        directory.chmod(0o700)


def test_local_put_if_absent_has_exactly_one_winner(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    writers = 16
    start = threading.Barrier(writers, timeout=10)
    outcomes: list[str] = []

    def write(index: int) -> None:
        start.wait()
        try:
            store.put_if_absent("lease.json", f"writer {index}".encode())
            outcomes.append(f"won {index}")
        except PreconditionFailed:
            outcomes.append("lost")

    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    winners = [outcome for outcome in outcomes if outcome.startswith("won")]
    assert len(outcomes) == writers and len(winners) == 1
    assert store.get("lease.json") == f"writer {winners[0].split()[1]}".encode()


def test_local_put_if_match_serialises_read_modify_write(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("counter", b"0")
    workers, increments = 6, 10

    def work() -> None:
        done = 0
        for _attempt in range(10_000):  # bounded: a livelock fails the test instead of hanging it
            if done == increments:
                return
            head = store.head("counter")
            assert head is not None
            value = int(store.get("counter"))
            try:
                store.put_if_match("counter", str(value + 1).encode(), head.etag)
                done += 1
            except PreconditionFailed:
                continue

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert store.get("counter") == str(workers * increments).encode()


# ---------------------------------------------------------------------------------------------
# open_store


def test_open_store_file_url(tmp_path: Path) -> None:
    store = open_store(storage_settings((tmp_path / "my archive").as_uri()))
    assert isinstance(store, LocalStore)
    assert store.directory == tmp_path / "my archive"


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3:///prefix",
        "http://bucket/x",
        "/var/lib/archive",
        "file://host/dir",
        "file:relative",
        "",
        "s3://b/../x",
    ],
)
def test_open_store_rejects_other_urls(url: str) -> None:
    with pytest.raises(
        ConfigError, match=r"SMS_ARCHIVER_STORAGE__URL: .*expected s3://bucket\[/prefix\] or file:///path"
    ):
        open_store(storage_settings(url))


# ---------------------------------------------------------------------------------------------
# A store that accepts conditional headers and ignores them (a real proxy in front of moto)


def emulation_warnings(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "conditional_writes_emulated"]


def test_s3_check_on_a_store_honouring_conditions_keeps_them(s3_bucket: S3Target) -> None:
    store = s3_store(s3_bucket)
    with capture_logs() as logs:
        store.check()
        store.put_if_absent(KEY, b"one")
    assert store.conditional_writes_supported is True
    assert emulation_warnings(logs) == []


def test_s3_check_detects_a_store_that_ignores_conditions(
    s3_ignoring_conditions: S3Target, ignoring_proxy: IgnoringConditionsProxy
) -> None:
    store = s3_store(s3_ignoring_conditions)
    with capture_logs() as logs:
        store.check()
        store.check()
        store.put_if_absent(KEY, b"one")
    assert ignoring_proxy.stripped > 0  # the headers were sent, and dropped on the way
    assert store.conditional_writes_supported is False
    warnings = emulation_warnings(logs)
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert "ignores" in warnings[0]["reason"]
    # The probes leave nothing behind.
    assert [info.key for info in store.list("")] == [KEY]


def test_s3_first_conditional_write_detects_a_store_that_ignores_conditions(s3_ignoring_conditions: S3Target) -> None:
    # archive, retention and backfill take the lease without calling check(): the store must find out itself.
    store = s3_store(s3_ignoring_conditions)
    with capture_logs() as logs:
        first = store.put_if_absent(KEY, b"one")
        with pytest.raises(PreconditionFailed):
            store.put_if_absent(KEY, b"two")
        with pytest.raises(PreconditionFailed):
            store.put_if_match(KEY, b"three", md5(b"something else"))
        second = store.put_if_match(KEY, b"four", first.etag)
        with pytest.raises(PreconditionFailed):
            store.put_if_match(KEY, b"five", first.etag)  # the etag moved on with "four"
    assert store.get(KEY) == b"four"
    assert second.etag == md5(b"four")
    assert store.conditional_writes_supported is False
    assert len(emulation_warnings(logs)) == 1


def test_s3_conditional_writes_on_refuses_a_store_that_ignores_them(s3_ignoring_conditions: S3Target) -> None:
    store = s3_store(s3_ignoring_conditions, conditional_writes="on")
    with pytest.raises(StorageError, match="SMS_ARCHIVER_STORAGE__CONDITIONAL_WRITES") as caught:
        store.put_if_absent(KEY, b"one")
    assert not isinstance(caught.value, PreconditionFailed)
    assert "ignores" in str(caught.value)
    with pytest.raises(StorageError, match="SMS_ARCHIVER_STORAGE__CONDITIONAL_WRITES"):
        store.check()
    assert store.head(KEY) is None
    assert list(store.list("")) == []


def test_s3_emulated_write_loses_to_a_writer_that_slips_in_before_its_read_back(s3_bucket: S3Target) -> None:
    """The adversary: another instance writes between our put and our read-back; we must not win too."""
    store = s3_store(s3_bucket, conditional_writes="off")
    store.emulated_settle_seconds = 0
    client = s3_bucket.client()
    heads = 0

    def rival_writes_after_our_put(**_: Any) -> None:
        nonlocal heads
        heads += 1
        if heads == 2:  # 1: the emulation's head before its put; 2: its read-back
            client.put_object(Bucket=s3_bucket.bucket, Key=f"archive/{KEY}", Body=b"rival")

    store._client.meta.events.register("before-call.s3.HeadObject", rival_writes_after_our_put)
    with pytest.raises(PreconditionFailed, match="another writer"):
        store.put_if_absent(KEY, b"ours")
    assert store.get(KEY) == b"rival"
    heads = 0
    with pytest.raises(PreconditionFailed, match="another writer"):
        store.put_if_match(KEY, b"ours again", md5(b"rival"))
    assert store.get(KEY) == b"rival"
