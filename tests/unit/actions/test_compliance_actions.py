"""``hold add|list|remove`` and ``audit``: what a person types is checked, each change is audited with its actor.

Over a local archive; the CLI in-process (``main``), for its exit statuses and output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr

from archiver.actions.audit import run_audit
from archiver.actions.holds import HoldRequest, run_hold_add, run_hold_list, run_hold_remove
from archiver.actions.status import active_holds
from archiver.audit import number_digest, read_events
from archiver.cli.program import main
from archiver.config import ComplianceSettings, Settings, StorageSettings
from archiver.errors import ConfigError
from archiver.holds import HoldScope, load_holds
from archiver.metrics import Metrics
from archiver.store import LocalStore
from archiver.store.layout import AUDIT_PREFIX, HOLDS_PREFIX, hold_key

KEY = "an-erasure-key-of-32-characters!"
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=1)


def settings_for(directory: Path, *, key: str | None = KEY, actor: str | None = "dpo@example.test") -> Settings:
    return Settings(
        storage=StorageSettings(url=directory.as_uri()),
        compliance=ComplianceSettings(erasure_key=SecretStr(key) if key else None),
        actor=actor,
    )


def test_a_hold_is_placed_with_numbers_in_one_form_and_audited_without_them(tmp_path: Path) -> None:
    settings, store = settings_for(tmp_path), LocalStore(tmp_path)
    request = HoldRequest(receiver="0033 6 12 34 56 78", tag="promo", direction="outgoing", date_to=dt.date(2026, 2, 1))
    hold = run_hold_add(settings, store, request, reason="  case   42 ", now=T0)
    assert hold.scope == HoldScope(
        receiver="+33612345678", tag="promo", direction="outgoing", date_to=dt.date(2026, 2, 1)
    )
    assert hold.reason == "case 42" and hold.placed_by == "dpo@example.test"
    assert load_holds(store) == [hold]
    [event] = read_events(store)
    assert (event.kind, event.actor, event.why) == ("hold_placed", "dpo@example.test", "case 42")
    assert event.what["hold"] == hold.id
    assert event.what["scope"]["receiver"] == number_digest(KEY, "+33612345678")
    assert event.what["scope"]["tag"] == "promo"
    raw = b"".join(store.get(info.key) for info in store.list(AUDIT_PREFIX))
    assert b"612345678" not in raw  # never in clear in the journal, which is never rewritten


def test_without_an_erasure_key_the_trail_says_redacted(tmp_path: Path) -> None:
    settings, store = settings_for(tmp_path, key=None), LocalStore(tmp_path)
    run_hold_add(settings, store, HoldRequest(number="+447700900123"), reason="case 7")
    [event] = read_events(store)
    assert event.what["scope"] == {"number": "redacted"}


@pytest.mark.parametrize(
    ("request_", "reason", "message"),
    [
        (HoldRequest(receiver="+33 6; DROP TABLE"), "r", "--receiver"),
        (HoldRequest(sender="not a number!"), "r", "--sender"),
        (HoldRequest(receiver="MyShop"), "r", "--receiver: not a phone number"),  # only a sender has a name
        (HoldRequest(date_from=dt.date(2026, 2, 2), date_to=dt.date(2026, 2, 1)), "r", "after --to"),
        (HoldRequest(direction="sideways"), "r", "--direction"),
        (HoldRequest(tag="  "), "r", "--tag"),
        (HoldRequest(receiver="+33612345678"), "   ", "--reason"),
    ],
)
def test_a_wrong_option_is_refused_and_nothing_is_written(
    tmp_path: Path, request_: HoldRequest, reason: str, message: str
) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(ConfigError, match=message):
        run_hold_add(settings_for(tmp_path), store, request_, reason=reason)
    assert list(store.list("")) == []


def test_lifting_keeps_the_hold_marked_lifted_and_audits_it_once(tmp_path: Path) -> None:
    settings, store = settings_for(tmp_path), LocalStore(tmp_path)
    hold = run_hold_add(settings, store, HoldRequest(sender="MyShop"), reason="case 9", now=T0)
    other = run_hold_add(
        settings, store, HoldRequest(tag="invoice"), reason="case 10", now=T0 + dt.timedelta(minutes=1)
    )
    lifted = run_hold_remove(settings, store, hold.id, reason="case 9 closed", now=T0 + dt.timedelta(days=3))
    assert not lifted.active and lifted.lift_reason == "case 9 closed" and lifted.lifted_by == "dpo@example.test"
    assert [h.id for h in run_hold_list(store)] == [other.id]
    assert {h.id for h in run_hold_list(store, include_lifted=True)} == {hold.id, other.id}
    with pytest.raises(ConfigError, match="lifted already"):
        run_hold_remove(settings, store, hold.id, reason="again")
    with pytest.raises(ConfigError, match="no hold hold-20260101-000000"):
        run_hold_remove(settings, store, "hold-20260101-000000", reason="x")
    with pytest.raises(ConfigError, match="not a hold id"):
        run_hold_remove(settings, store, "../_state/x", reason="x")
    kinds = [(event.kind, event.what["hold"]) for event in run_audit(store)]
    assert kinds == [("hold_placed", hold.id), ("hold_placed", other.id), ("hold_lifted", hold.id)]
    assert [event.kind for event in run_audit(store, since=dt.date(2026, 3, 2))] == ["hold_lifted"]
    assert [event.kind for event in run_audit(store, kinds={"hold_lifted"})] == ["hold_lifted"]


def test_status_counts_the_active_holds_and_says_when_one_is_unreadable(tmp_path: Path) -> None:
    settings, store = settings_for(tmp_path), LocalStore(tmp_path)
    assert active_holds(store) == {"count": 0, "list": [], "error": None}
    hold = run_hold_add(settings, store, HoldRequest(number="+33612345678"), reason="case 1")
    document = active_holds(store)
    assert document["count"] == 1 and document["list"][0]["id"] == hold.id
    assert document["list"][0]["scope"] == "number=+33612345678"
    store.put(hold_key("hold-broken-1"), b"{not json")
    broken = active_holds(store)
    assert broken["count"] is None and "hold-broken-1" in broken["error"]


def test_metrics_show_active_holds_and_records_kept_for_one() -> None:
    metrics = Metrics(max_age_seconds=60)
    metrics.set_legal_holds(2)
    metrics.add_held("sms-a", "outgoing", "ovh", 3)
    metrics.add_held("sms-a", "outgoing", "archive", 0)
    text = metrics.exposition(None)[0].decode()
    assert "sms_archiver_legal_holds_active 2.0" in text
    assert 'sms_archiver_held_records_total{direction="outgoing",service="sms-a",where="ovh"} 3.0' in text
    assert 'where="archive"' not in text


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture
def cli_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStore]:
    """A local archive the CLI, run in-process, points at; its logging set back afterwards.

    (``main`` points structlog at the captured stderr, which is closed once the test ends.)
    """
    directory = tmp_path / "archive"
    directory.mkdir()
    for name in list(os.environ):
        if name.startswith("SMS_ARCHIVER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", directory.as_uri())
    monkeypatch.setenv("SMS_ARCHIVER_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("SMS_ARCHIVER_ACTOR", "alice")
    saved = structlog.get_config()
    yield LocalStore(directory)
    structlog.configure(**saved)


def test_the_cli_places_lists_and_lifts_a_hold_and_lists_the_trail(
    cli_archive: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hold", "add", "--receiver", "+33 6 12 34 56 78", "--from", "2026-01-01", "--reason", "case 42"]) == 0
    hold_id = capsys.readouterr().out.strip()
    assert [info.key for info in cli_archive.list(HOLDS_PREFIX)] == [hold_key(hold_id)]
    assert main(["hold", "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["scope"] == {"receiver": "+33612345678", "date_from": "2026-01-01"} and listed["placed_by"] == "alice"
    assert main(["hold", "list"]) == 0
    assert hold_id in capsys.readouterr().out
    assert main(["hold", "remove", hold_id, "--reason", "closed"]) == 0
    assert main(["hold", "list"]) == 0
    assert "no active hold" in capsys.readouterr().out
    assert main(["audit"]) == 0
    table = capsys.readouterr().out
    assert "hold_placed" in table and "hold_lifted" in table and "alice" in table
    assert main(["audit", "--json", "--from", "2000-01-01"]) == 0
    assert [event["kind"] for event in json.loads(capsys.readouterr().out)] == ["hold_placed", "hold_lifted"]


def test_the_cli_refuses_bad_input_with_exit_2_and_a_clear_message(
    cli_archive: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hold", "add", "--receiver", "call me", "--reason", "x"]) == 2
    assert "--receiver: not a phone number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad_date:
        main(["hold", "add", "--to", "2026-02-30", "--reason", "x"])
    assert bad_date.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    with pytest.raises(SystemExit) as no_reason:
        main(["hold", "add", "--tag", "promo"])
    assert no_reason.value.code == 2
    assert main(["hold", "remove", "hold-20260101-abcdef", "--reason", "x"]) == 2
    assert "no hold hold-20260101-abcdef" in capsys.readouterr().err
    assert list(cli_archive.list("")) == []
