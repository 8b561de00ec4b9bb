"""The command line's grammar: argument types, and every subcommand wired to a handler."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.cli.parser import LazyHandler, build_parser, day_argument, delimiter_argument


@given(st.characters(exclude_characters='"\r\n', exclude_categories=("Cs",)))
def test_any_one_character_but_a_quote_or_a_line_break_is_a_delimiter(character: str) -> None:
    expected = "\t" if character == "\t" else character
    assert delimiter_argument(character) == expected


@pytest.mark.parametrize("spelled", ["tab", "\\t", "\t"])
def test_a_tab_can_be_spelled(spelled: str) -> None:
    assert delimiter_argument(spelled) == "\t"


@pytest.mark.parametrize("text", ['"', "\n", "\r", "", ";;", "ab", "TAB"])
def test_a_quote_a_line_break_or_more_than_one_character_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="one character"):
        delimiter_argument(text)


@given(st.dates())
def test_a_day_reads_back_as_written(day: dt.date) -> None:
    assert day_argument(day.isoformat()) == day


@pytest.mark.parametrize("text", ["2024-02-30", "2024-13-01", "yesterday", "", "01/02/2024"])
def test_a_day_that_is_not_one_is_refused_with_what_was_given(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="YYYY-MM-DD") as refused:
        day_argument(text)
    assert repr(text) in str(refused.value)


def _subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(((*path, name), sub))
                found.extend(_subcommands(sub, (*path, name)))
    return found


def test_every_leaf_subcommand_has_a_handler() -> None:
    commands = _subcommands(build_parser())
    leaves = [(path, sub) for path, sub in commands if not _subcommands(sub)]
    assert {" ".join(path) for path, _sub in leaves} >= {"archive", "retrieve", "state show", "state reset", "demo"}
    for path, sub in leaves:
        assert callable(sub.get_default("handler")), path


def test_every_handler_names_a_command_function_that_exists() -> None:
    """Handlers are imported when their command runs: a misspelt name must fail here, not in a user's hands."""
    leaves = [sub for _path, sub in _subcommands(build_parser()) if not _subcommands(sub)]
    for sub in leaves:
        handler = sub.get_default("handler")
        assert isinstance(handler, LazyHandler), sub.prog
        function = handler.resolve()
        assert callable(function), sub.prog
        assert function.__module__.startswith("archiver.cli.commands."), sub.prog
        assert function.__name__ == handler.target.partition(":")[2], sub.prog


def test_a_misspelt_handler_fails_when_resolved() -> None:
    with pytest.raises(AttributeError, match="cmd_retreive"):
        LazyHandler("reading:cmd_retreive").resolve()
    with pytest.raises(ModuleNotFoundError):
        LazyHandler("readings:cmd_retrieve").resolve()


def test_a_lazy_handler_runs_its_function_with_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as leaving:  # the emulator's own --help: its options, then exit 0
        LazyHandler("tools:cmd_emulator")(argparse.Namespace(emulator_args=["--help"]))
    assert leaving.value.code == 0
    assert "--outgoing" in capsys.readouterr().out


def test_backfill_days_and_retrieve_delimiter_are_parsed_by_their_types() -> None:
    parser = build_parser()
    args = parser.parse_args(["backfill", "--from", "2024-01-31", "--to", "2024-02-29"])
    assert (args.since, args.to) == (dt.date(2024, 1, 31), dt.date(2024, 2, 29))
    assert parser.parse_args(["retrieve", "--month", "2024-01", "--delimiter", "tab"]).delimiter == "\t"
