"""From options to collaborators: a reading command never shows a missing archive as an empty one."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from archiver.cli.wiring import chosen_directions, one_service, reading_store
from archiver.config import OvhSettings, Settings, StorageSettings
from archiver.errors import ConfigError
from archiver.store import LocalStore

SERVICE = "sms-ab11111-1"


def _settings(directory: Path, *services: str) -> Settings:
    return cast(
        Settings,
        SimpleNamespace(storage=StorageSettings(url=directory.as_uri()), ovh=OvhSettings(services=list(services))),
    )


def test_a_missing_local_archive_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"SMS_ARCHIVER_STORAGE__URL.*no such directory"):
        reading_store(_settings(tmp_path / "typo"))
    assert not (tmp_path / "typo").exists()  # a reader creates nothing


def test_an_existing_local_archive_is_opened(tmp_path: Path) -> None:
    store = reading_store(_settings(tmp_path))
    assert isinstance(store, LocalStore) and store.directory == tmp_path


def test_one_service_is_the_only_one_known_or_the_one_chosen(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(ConfigError, match="holds no service yet"):
        one_service(_settings(tmp_path), store, None)
    assert one_service(_settings(tmp_path, SERVICE), store, None) == SERVICE
    two = _settings(tmp_path, SERVICE, "sms-cd22222-1")
    with pytest.raises(ConfigError, match=f"choose one with --service: {SERVICE}, sms-cd22222-1"):
        one_service(two, store, None)
    assert one_service(two, store, "sms-cd22222-1") == "sms-cd22222-1"


def test_directions_are_the_one_given_or_both() -> None:
    assert chosen_directions(argparse.Namespace(direction="incoming")) == ["incoming"]
    assert chosen_directions(argparse.Namespace(direction=None)) == ["outgoing", "incoming"]
