"""The daemon's modules against real collaborators: the OVH emulator on 127.0.0.1 and a LocalStore."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.config import Settings, load_settings
from archiver.store import LocalStore
from tests.integration.helpers import cli_env, local_storage_env, make_emulator

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def emulator() -> Iterator[Any]:
    with make_emulator(outgoing=30, incoming=10, days=10) as server:
        yield server


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def store(archive_dir: Path) -> LocalStore:
    return LocalStore(archive_dir)


@pytest.fixture
def make_settings(emulator: Any, archive_dir: Path, monkeypatch: pytest.MonkeyPatch) -> SettingsFactory:
    """Settings as the daemon loads them, from SMS_ARCHIVER_* variables: the emulator, the archive directory."""

    def build(storage_dir: Path | None = None, **extra: str) -> Settings:
        for key, value in cli_env(emulator, local_storage_env(storage_dir or archive_dir), **extra).items():
            if key.startswith("SMS_ARCHIVER_"):
                monkeypatch.setenv(key, value)
        return load_settings()

    return build
