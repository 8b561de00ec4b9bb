"""The delete form's CSRF token: valid for its user until it expires, and any tampering refused."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from archiver.web.csrf import LIFETIME_SECONDS, CsrfTokens

NOW = 1_900_000_000.0
users = st.text(min_size=1, max_size=40)


def tokens(secret: bytes = b"k" * 32, now: float = NOW) -> CsrfTokens:
    return CsrfTokens(secret, clock=lambda: now)


@given(users)
def test_a_token_is_valid_for_its_user_until_it_expires(user: str) -> None:
    token = tokens().issue(user)
    assert tokens().valid(token, user)
    assert tokens(now=NOW + LIFETIME_SECONDS).valid(token, user)
    assert not tokens(now=NOW + LIFETIME_SECONDS + 1).valid(token, user)


@given(users, users)
def test_a_token_is_refused_for_another_user(user: str, other: str) -> None:
    if user != other:
        assert not tokens().valid(tokens().issue(user), other)


@given(users)
def test_another_process_secret_refuses_it(user: str) -> None:
    assert not tokens(secret=b"z" * 32).valid(tokens().issue(user), user)


@given(users, st.data())
def test_any_change_to_a_token_is_refused(user: str, data: st.DataObject) -> None:
    token = tokens().issue(user)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.text(max_size=3))
    changed = token[:position] + replacement + token[position + 1 :]
    if changed != token:
        assert not tokens().valid(changed, user)


@given(users, st.text(max_size=120))
def test_any_string_is_refused_unless_issued(user: str, forged: str) -> None:
    if forged != tokens().issue(user):
        assert not tokens().valid(forged, user)


def test_a_token_from_the_future_beyond_the_lifetime_is_refused() -> None:
    later = tokens(now=NOW + 2 * LIFETIME_SECONDS).issue("alice")
    assert not tokens().valid(later, "alice")
