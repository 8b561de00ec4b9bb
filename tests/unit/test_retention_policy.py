"""The retention policy's rules, checked in one place (``RetentionSettings``): every caller gets the same answer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from archiver.actions.retention import run_retention
from archiver.config import RetentionSettings, Settings
from archiver.errors import ConfigError
from archiver.source import OvhSource
from archiver.store import Store

DAYS = "SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS"
ENABLED = "SMS_ARCHIVER_RETENTION__ENABLED"


@st.composite
def policies(draw: st.DrawFn) -> RetentionSettings:
    days = draw(st.none() | st.integers(min_value=1, max_value=36500))
    # Enabled without a policy is refused when the settings are read (see the test below).
    enabled = days is not None and draw(st.booleans())
    return RetentionSettings(enabled=enabled, delete_after_days=days)


@given(policies(), st.booleans())
def test_a_run_needs_a_policy_and_deleting_needs_enabled(policy: RetentionSettings, apply: bool) -> None:
    if policy.delete_after_days is None:
        with pytest.raises(ConfigError, match=DAYS) as refused:
            policy.check_policy(apply=apply)
        assert "without a policy" in str(refused.value)
    elif apply and not policy.enabled:
        with pytest.raises(ConfigError, match=ENABLED) as refused:
            policy.check_policy(apply=apply)
        assert "--apply" in str(refused.value)
    else:
        assert policy.check_policy(apply=apply) == policy.delete_after_days


def test_enabled_without_a_policy_is_refused_when_read() -> None:
    with pytest.raises(ValidationError, match="without a policy"):
        RetentionSettings(enabled=True)


class Untouchable:
    """A source or a store that fails the test if the run uses it at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"used before the policy was checked: {name}")


@pytest.mark.parametrize(
    ("policy", "apply", "setting"),
    [
        (RetentionSettings(), False, DAYS),
        (RetentionSettings(delete_after_days=30), True, ENABLED),
    ],
)
def test_run_retention_refuses_before_touching_ovh_or_the_archive(
    policy: RetentionSettings, apply: bool, setting: str
) -> None:
    # The daemon and library callers reach run_retention without the CLI's check: it must hold there too.
    settings = cast(Settings, SimpleNamespace(retention=policy))
    with pytest.raises(ConfigError, match=setting):
        run_retention(settings, cast(OvhSource, Untouchable()), cast(Store, Untouchable()), apply=apply)
