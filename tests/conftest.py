"""Shared fixtures: a real S3 HTTP endpoint (moto's server) on loopback, and fresh buckets on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from tests.s3proxy import IgnoringConditionsProxy, ignoring_conditions_proxy


@dataclass(frozen=True, slots=True)
class S3Server:
    """Where the moto S3 server listens, and one boto3 session for the whole test session.

    Loading botocore's S3 model costs about 0.1 s per session: share ``session`` (e.g.
    ``S3Store(settings, session=s3_server.session)``) so that hundreds of stores stay cheap.
    """

    endpoint_url: str
    session: boto3.session.Session = field(repr=False)
    client: Any = field(repr=False)


@dataclass(frozen=True, slots=True)
class S3Target:
    """A fresh bucket on the moto server, and how to point the archiver at it."""

    endpoint_url: str
    bucket: str
    url: str
    env: dict[str, str] = field(default_factory=dict)
    server: S3Server | None = field(default=None, repr=False, compare=False)

    def client(self) -> Any:
        """A boto3 client on the server, to look at the bucket behind the store's back."""
        assert self.server is not None
        return self.server.client


def _s3_client(session: boto3.session.Session, endpoint_url: str) -> Any:
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "total_max_attempts": 1}),
    )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Start moto's S3 server on 127.0.0.1 (an ephemeral port) for the whole session."""
    with pytest.MonkeyPatch.context() as patch:
        # Nothing in the tests may find real credentials or ask an instance metadata service.
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("AWS_CONFIG_FILE", "/nonexistent/sms-archiver-tests/aws-config")
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/sms-archiver-tests/aws-credentials")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint_url = f"http://{host}:{port}"
            session = boto3.session.Session()
            yield S3Server(endpoint_url, session, _s3_client(session, endpoint_url))
        finally:
            server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[S3Target]:
    """Create a uniquely named bucket for one test; empty and remove it afterwards."""
    bucket = f"test-{uuid.uuid4().hex[:20]}"
    client = s3_server.client
    client.create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/archive"
    env = {
        "SMS_ARCHIVER_STORAGE__URL": url,
        "SMS_ARCHIVER_STORAGE__ENDPOINT_URL": s3_server.endpoint_url,
        "SMS_ARCHIVER_STORAGE__REGION": "us-east-1",
        "SMS_ARCHIVER_STORAGE__ACCESS_KEY_ID": "testing",
        "SMS_ARCHIVER_STORAGE__SECRET_ACCESS_KEY": "testing",
        "SMS_ARCHIVER_STORAGE__ADDRESSING_STYLE": "path",
    }
    yield S3Target(endpoint_url=s3_server.endpoint_url, bucket=bucket, url=url, env=env, server=s3_server)
    # Keep the session's in-memory server small; a test may already have removed the bucket.
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for page in pages:
            for entry in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=entry["Key"])
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass


@pytest.fixture
def ignoring_proxy(s3_server: S3Server) -> Iterator[IgnoringConditionsProxy]:
    """A proxy on 127.0.0.1 in front of the moto server that strips ``If-None-Match``/``If-Match``."""
    with ignoring_conditions_proxy(s3_server.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def s3_ignoring_conditions(s3_bucket: S3Target, ignoring_proxy: IgnoringConditionsProxy) -> S3Target:
    """The ``s3_bucket`` seen through a store that accepts conditional headers and ignores them."""
    env = dict(s3_bucket.env, SMS_ARCHIVER_STORAGE__ENDPOINT_URL=ignoring_proxy.url)
    return S3Target(
        endpoint_url=ignoring_proxy.url, bucket=s3_bucket.bucket, url=s3_bucket.url, env=env, server=s3_bucket.server
    )
