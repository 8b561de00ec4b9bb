"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import S3Target
from tests.integration.helpers import local_storage_env


@pytest.fixture(params=["s3", "local"])
def storage_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The archiver's storage settings: a bucket on the loopback S3 server, or a local directory."""
    if request.param == "s3":
        target: S3Target = request.getfixturevalue("s3_bucket")
        return target.env
    return local_storage_env(tmp_path / "archive")
