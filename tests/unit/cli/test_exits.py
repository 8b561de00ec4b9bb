"""Exit statuses: each kind of error to one status, a subclass to its nearest mapped class."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver import errors
from archiver.cli.exits import EXIT_BROKEN_PIPE, exit_code, reader_gone
from archiver.errors import ArchiverError, ConfigError, LeaseHeldError


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.ConfigError, 2),
        (errors.LeaseHeldError, 75),
        (errors.ArchiverError, 1),
        (errors.SourceError, 1),
        (errors.ListingCutError, 1),
        (errors.AuthError, 1),
        (errors.NotGrantedError, 1),
        (errors.StorageError, 1),
        (errors.PreconditionFailed, 1),
        (errors.IntegrityError, 1),
        (errors.CycleInterrupted, 1),
        (errors.MalformedRecordError, 1),
    ],
)
def test_the_documented_statuses(error: type[ArchiverError], status: int) -> None:
    assert exit_code(error("x")) == status


def test_a_new_subclass_follows_its_parent() -> None:
    class SettingNobodyKnows(ConfigError):
        pass

    class HeldElsewhere(LeaseHeldError):
        pass

    assert exit_code(SettingNobodyKnows("x")) == 2
    assert exit_code(HeldElsewhere("x")) == 75


def test_after_the_reader_went_away_what_is_still_written_goes_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "stdout"
    with target.open("w") as stdout:
        monkeypatch.setattr("sys.stdout", stdout)
        assert reader_gone() == EXIT_BROKEN_PIPE
        stdout.write("the interpreter's final flush\n")
        stdout.flush()  # does not fail: the descriptor now points at devnull
    assert target.read_text() == ""
