"""Service names become the first segment of every key: only names that stay in their place pass."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.naming import check_service_name


@pytest.mark.parametrize("name", ["sms-ab12345-1", "SMS.1", "a", "x" * 100, "0_9-a.B"])
def test_ovh_style_service_names_pass(name: str) -> None:
    assert check_service_name(name) == name


@pytest.mark.parametrize("name", ["", "_state", ".hidden", "a/b", "..", "a b", "x" * 101, "é", "-lead"])
def test_names_that_could_leave_their_folder_or_hide_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unexpected SMS service name"):
        check_service_name(name)


@given(st.text(max_size=120))
def test_a_name_that_passes_is_one_plain_key_segment(name: str) -> None:
    try:
        check_service_name(name)
    except ValueError:
        return
    assert "/" not in name and not name.startswith((".", "_")) and name.isascii() and name.strip() == name
