"""What erasure asks of a store: Object Lock dates on ``head``, and the older versions a versioned bucket keeps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from archiver.errors import StorageError
from archiver.store import LocalStore
from tests.conftest import S3Target
from tests.unit.store.test_backends import s3_store

KEY = "svc/outgoing/year=2026/month=05/day=01/1-9-abc.csv"


def test_a_directory_has_no_lock_and_keeps_no_versions(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive")
    store.put(KEY, b"one", lock=True)
    store.put(KEY, b"two")
    info = store.head(KEY)
    assert info is not None and info.locked_until is None
    assert list(store.old_versions("svc/")) == []
    with pytest.raises(KeyError):
        store.get_version(KEY, "any")


def test_an_unversioned_bucket_lists_no_old_version(s3_bucket: S3Target) -> None:
    store = s3_store(s3_bucket)
    store.put(KEY, b"one")
    store.put(KEY, b"two")
    info = store.head(KEY)
    assert info is not None and info.locked_until is None
    assert list(store.old_versions("svc/")) == []


def test_a_versioned_bucket_keeps_old_versions_until_deleted_by_id(s3_bucket: S3Target) -> None:
    s3_bucket.client().put_bucket_versioning(Bucket=s3_bucket.bucket, VersioningConfiguration={"Status": "Enabled"})
    store = s3_store(s3_bucket)
    store.put(KEY, b"one")
    store.put(KEY, b"two")
    store.put("svc/other.csv", b"x")
    store.delete("svc/other.csv")  # a delete marker: the object's data stays as an old version
    old = list(store.old_versions("svc/"))
    assert sorted((version.key, store.get_version(version.key, version.version_id)) for version in old) == [
        ("svc/other.csv", b"x"),
        (KEY, b"one"),
    ]
    for version in old:
        assert store.old_version_lock(version.key, version.version_id) is None
        store.delete_version(version.key, version.version_id)
    assert list(store.old_versions("svc/")) == []
    assert store.get(KEY) == b"two"
    empty_every_version(s3_bucket, s3_bucket.bucket)  # the fixture's clean-up knows no versions


def empty_every_version(target: S3Target, bucket: str) -> None:
    client = target.client()
    listing = client.list_object_versions(Bucket=bucket)
    for entry in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
        client.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])


def test_object_lock_is_reported_and_refuses_deletion_by_id(s3_bucket: S3Target) -> None:
    bucket = s3_bucket.bucket + "-lock"
    s3_bucket.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    store = s3_store(s3_bucket, url=f"s3://{bucket}/archive", object_lock_mode="GOVERNANCE", object_lock_days=2)
    store.put(KEY, b"locked", lock=True)
    info = store.head(KEY)
    assert info is not None and info.locked_until is not None
    assert info.locked_until > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    store.delete(KEY)  # succeeds: it only hides the locked version
    assert store.head(KEY) is None
    [version] = list(store.old_versions(""))
    assert store.old_version_lock(version.key, version.version_id) == info.locked_until
    with pytest.raises(StorageError):
        store.delete_version(version.key, version.version_id)
    assert store.get_version(version.key, version.version_id) == b"locked"
