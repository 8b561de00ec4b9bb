"""Deleting selected SMS at OVH from the history page: over HTTP, against the emulator still running.

The archive is written by the real pipeline (``sms-archiver archive``) from the emulator; the browser
then deletes at that same emulator, with retention's proof (``run_selected_deletion``).
"""

from __future__ import annotations

import base64
import csv
import io
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from archiver.config import ArchiveSettings, OvhSettings, Settings, StorageSettings, WebSettings
from archiver.emulator import EmulatorServer, generate_sample_data
from archiver.reader import ArchiveParts
from archiver.records import NON_FINAL_PTT
from archiver.store import Store, open_store
from archiver.web.csrf import LIFETIME_SECONDS
from archiver.web.serve import WebServer, build_context
from tests.integration.helpers import CREDENTIALS, cli_env, local_storage_env, run_cli
from tests.web.conftest import Answer, get

SERVICE = "sms-del00001-1"
USERS = {"alice": "correct horse", "bob": "battery staple"}


def _basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()}


@dataclass
class Deleting:
    url: str
    server: WebServer
    emulator: EmulatorServer
    store: Store
    directory: Path
    final_ids: list[int]  # outgoing, final at OVH, archived and equal

    def part_of(self, sms_id: int) -> str:
        return ArchiveParts(self.store, SERVICE, "outgoing").holding({sms_id})[-1].info.key


def _htpasswd(path: Path) -> Path:
    lines = []
    for user, password in USERS.items():
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
        lines.append(f"{user}:{hashed}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _deleting(tmp: Path, *, allow_delete: bool = True, **auth: Any) -> Iterator[Deleting]:
    """An archive of the emulator, the emulator still running, and the browser over it (users: ``USERS``,
    or the authentication given in ``auth``)."""
    directory = tmp / "archive"
    data = generate_sample_data(services=(SERVICE,), outgoing=90, incoming=10, days=75)
    with EmulatorServer(**CREDENTIALS, services=data) as emulator:
        result = run_cli("archive", env=cli_env(emulator, local_storage_env(directory)))
        assert result.code == 0, result.stderr
        settings = Settings(
            storage=StorageSettings(url=directory.as_uri()),
            archive=ArchiveSettings(timezone="Europe/Paris"),
            ovh=OvhSettings(endpoint=emulator.url, max_requests_per_second=500, **CREDENTIALS),  # type: ignore[arg-type]
            web=WebSettings(
                cache_dir=str(tmp / "cache"),
                allow_delete=allow_delete,
                **(auth or {"htpasswd_file": str(_htpasswd(tmp / "users"))}),
            ),
        )
        server = WebServer(build_context(settings, min_refresh_seconds=0), "127.0.0.1", 0).start()
        final = sorted(
            sms_id
            for sms_id, raw in emulator.outgoing(SERVICE).items()
            if raw.get("ptt") not in NON_FINAL_PTT or raw.get("deliveredAt")
        )
        try:
            yield Deleting(server.url.rstrip("/"), server, emulator, open_store(settings.storage), directory, final)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deleting]:
    """One archive and browser for the tests that delete nothing."""
    yield from _deleting(tmp_path_factory.mktemp("delete-shared"))


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Deleting]:
    """An archive and browser of its own, for a test that deletes."""
    yield from _deleting(tmp_path)


def token_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page should carry a form token"
    return found.group(1)


def post(url: str, fields: list[tuple[str, str]], headers: Mapping[str, str]) -> Answer:
    body = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def selection(*ids: int) -> list[tuple[str, str]]:
    return [("sms", f"{SERVICE}/outgoing/{sms_id}") for sms_id in ids]


def decisions_of(page: str) -> dict[int, tuple[str, str]]:
    """id -> (decision shown, reason shown), from the review or result page's table."""
    rows = re.findall(
        r'<tr class="decision-(\w+)" data-id="(\d+)">.*?<td class="reason">(.*?)</td>', page, flags=re.DOTALL
    )
    return {int(sms_id): (action, reason) for action, sms_id, reason in rows}


def journal_rows(store: Store) -> list[dict[str, str]]:
    rows = []
    for info in store.list("_journal/deletions/"):
        text = store.get(info.key).decode()
        rows += [{"file": info.key, **row} for row in csv.DictReader(io.StringIO(text, newline=""), delimiter=";")]
    return rows


# -- off by default ------------------------------------------------------------------------------


def test_without_allow_delete_there_is_no_checkbox_and_the_routes_are_404(tmp_path: Path) -> None:
    for deleting in _deleting(tmp_path, allow_delete=False):
        answer = get(f"{deleting.url}/", _basic("alice"))
        page = answer.text
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert 'type="checkbox"' not in page
        assert "/delete/review" not in page
        for path in ("/delete/review", "/delete/confirm"):
            answer = post(f"{deleting.url}{path}", [("csrf", "x"), *selection(deleting.final_ids[0])], _basic("alice"))
            assert answer.status == 404
        assert deleting.emulator.deleted == []


def test_with_allow_delete_the_history_has_a_checkbox_per_row_in_a_post_form(shared: Deleting) -> None:
    answer = get(f"{shared.url}/", _basic("alice"))
    page = answer.text
    # Under no-referrer, Chromium posts the form with "Origin: null", which the routes refuse.
    assert answer.headers["referrer-policy"] == "same-origin"
    assert '<form method="post" action="/delete/review"' in page
    assert page.count('type="checkbox" name="sms"') >= 50
    assert f'value="{SERVICE}/outgoing/{shared.final_ids[-1]}"' in page


# -- CSRF and Origin -----------------------------------------------------------------------------


def test_posts_without_this_users_valid_token_or_from_another_site_are_refused(
    shared: Deleting, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = _basic("alice"), _basic("bob")
    good = token_of(get(f"{shared.url}/", alice).text)
    bobs = token_of(get(f"{shared.url}/", bob).text)
    csrf = shared.server.context.csrf
    monkeypatch.setattr(csrf, "clock", lambda: time.time() - 2 * LIFETIME_SECONDS)
    expired = csrf.issue("alice")
    monkeypatch.undo()
    expiry, _dot, mac = good.partition(".")
    tampered = [
        f"{expiry}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}",  # one hex digit of the MAC changed
        f"{int(expiry) + 1}.{mac}",  # a later expiry with the same MAC
        mac,
        "",
    ]
    chosen = selection(*shared.final_ids[:3])
    for path in ("/delete/review", "/delete/confirm"):
        url = f"{shared.url}{path}"
        assert post(url, chosen, alice).status == 403  # no token at all
        for token in [*tampered, expired, bobs]:
            answer = post(url, [("csrf", token), *chosen], alice)
            assert answer.status == 403, token
        for origin in ("http://evil.example", "null", f"{shared.url.replace('127.0.0.1', 'localhost')}"):
            answer = post(url, [("csrf", good), *chosen], {**alice, "Origin": origin})
            assert answer.status == 403, origin
    assert shared.emulator.deleted == []
    # The same request with the right token, from the page's own origin, is served (a review: deletes nothing).
    answer = post(f"{shared.url}/delete/review", [("csrf", good), *chosen], {**alice, "Origin": shared.url})
    assert answer.status == 200
    assert shared.emulator.deleted == []


def test_a_selection_outside_the_archive_is_refused(shared: Deleting) -> None:
    alice = _basic("alice")
    good = token_of(get(f"{shared.url}/", alice).text)
    for value in ("sms-other-1/outgoing/1", f"{SERVICE}/sideways/1", f"{SERVICE}/outgoing/x", ""):
        answer = post(f"{shared.url}/delete/review", [("csrf", good), ("sms", value)], alice)
        assert answer.status == 400, value
    assert post(f"{shared.url}/delete/review", [("csrf", good)], alice).status == 400
    assert shared.emulator.deleted == []


# -- review, then confirm ------------------------------------------------------------------------


def test_review_shows_each_decision_and_deletes_nothing(shared: Deleting) -> None:
    alice = _basic("alice")
    chosen = [*shared.final_ids[:4], 999_999_999]
    page = post(
        f"{shared.url}/delete/review",
        [("csrf", token_of(get(f"{shared.url}/", alice).text)), *selection(*chosen)],
        alice,
    )
    assert page.status == 200, page.text
    shown = decisions_of(page.text)
    assert set(shown) == set(chosen)
    for sms_id in shared.final_ids[:4]:
        assert shown[sms_id] == ("delete", "archived and verified")
    assert shown[999_999_999][0] == "gone"
    assert 'action="/delete/confirm"' in page.text
    assert "Nothing has been deleted yet" in page.text
    assert shared.emulator.deleted == []
    assert journal_rows(shared.store) == []


def test_confirm_deletes_exactly_the_proved_ones_and_journals_the_user(fresh: Deleting) -> None:
    alice = _basic("alice")
    by_part: dict[str, list[int]] = {}
    for sms_id in fresh.final_ids:
        by_part.setdefault(fresh.part_of(sms_id), []).append(sms_id)
    assert len(by_part) >= 2, "the sample should span several parts"
    ordered = sorted(by_part, key=lambda key: len(by_part[key]))
    corrupt_part, intact_part = ordered[0], ordered[-1]
    in_corrupt = by_part[corrupt_part][0]
    differs, *equal = by_part[intact_part][:4]
    assert len(equal) == 3
    # The copy at OVH changed since it was archived: the archive no longer proves it.
    fresh.emulator.update_outgoing(SERVICE, differs, message="changed at OVH after archiving")
    data = bytearray((fresh.directory / corrupt_part).read_bytes())
    data[len(data) // 2] ^= 0x20
    (fresh.directory / corrupt_part).write_bytes(bytes(data))

    chosen = selection(in_corrupt, differs, *equal)
    token = token_of(get(f"{fresh.url}/", alice).text)
    review = post(f"{fresh.url}/delete/review", [("csrf", token), *chosen], alice)
    assert review.status == 200
    assert fresh.emulator.deleted == []
    confirm_token = token_of(review.text)
    result = post(f"{fresh.url}/delete/confirm", [("csrf", confirm_token), *chosen], alice)
    assert result.status == 200, result.text

    assert sorted(fresh.emulator.deleted) == sorted((SERVICE, "outgoing", sms_id) for sms_id in equal)
    shown = decisions_of(result.text)
    for sms_id in equal:
        assert shown[sms_id] == ("deleted", "deleted at OVH")
    assert shown[differs][0] == "keep"
    assert "archived copy differs from the API (message)" in shown[differs][1]
    assert shown[in_corrupt][0] == "keep"
    assert "archived part fails verification" in shown[in_corrupt][1]
    assert "history still shows them" in result.text
    run_id = re.search(r'<code class="run-id">([^<]+)</code>', result.text)
    assert run_id

    rows = journal_rows(fresh.store)
    assert {row["run"] for row in rows} == {run_id.group(1)}
    assert {row["user"] for row in rows} == {"alice"}
    intent = sorted(int(row["id"]) for row in rows if row["file"].endswith("-intent.csv"))
    done = sorted(int(row["id"]) for row in rows if row["file"].endswith("-done.csv"))
    assert intent == done == sorted(equal)
    assert {row["action"] for row in rows if row["file"].endswith("-done.csv")} == {"deleted"}

    # The archive is unchanged: the page still shows them.
    for sms_id in equal:
        assert get(f"{fresh.url}/sms/{SERVICE}/outgoing/{sms_id}", alice).status == 200


# -- refused at start-up -------------------------------------------------------------------------


def _web_cli(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    (tmp_path / "archive").mkdir(exist_ok=True)
    base = {key: value for key, value in os.environ.items() if not key.startswith("SMS_ARCHIVER_")}
    return subprocess.run(
        [sys.executable, "-m", "archiver", "web", "--port", "0"],
        env={
            **base,
            **local_storage_env(tmp_path / "archive"),
            "SMS_ARCHIVER_SECRETS_DIR": "/nonexistent-sms-archiver-secrets",
            "SMS_ARCHIVER_WEB__CACHE_DIR": str(tmp_path / "cache"),
            "SMS_ARCHIVER_WEB__ALLOW_DELETE": "true",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_allow_delete_without_authentication_exits_2_even_on_loopback(tmp_path: Path) -> None:
    result = _web_cli(
        tmp_path,
        SMS_ARCHIVER_OVH__APPLICATION_KEY=CREDENTIALS["application_key"],
        SMS_ARCHIVER_OVH__APPLICATION_SECRET=CREDENTIALS["application_secret"],
        SMS_ARCHIVER_OVH__CONSUMER_KEY=CREDENTIALS["consumer_key"],
    )
    assert result.returncode == 2, result.stderr
    assert "SMS_ARCHIVER_WEB__ALLOW_DELETE" in result.stderr
    assert "Traceback" not in result.stderr
    assert CREDENTIALS["application_secret"] not in result.stderr + result.stdout


def test_allow_delete_without_ovh_credentials_exits_2(tmp_path: Path) -> None:
    result = _web_cli(tmp_path, SMS_ARCHIVER_WEB__HTPASSWD_FILE=str(_htpasswd(tmp_path / "users")))
    assert result.returncode == 2, result.stderr
    assert "SMS_ARCHIVER_OVH__APPLICATION_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_held_sms_is_kept_and_the_deletion_is_audited_with_the_pages_user(fresh: Deleting) -> None:
    from archiver.audit import read_events
    from archiver.holds import HoldScope, place_hold

    alice = _basic("alice")
    held, *others = fresh.final_ids[:4]
    receiver = fresh.emulator.outgoing(SERVICE)[held]["receiver"]
    others = [sms_id for sms_id in others if fresh.emulator.outgoing(SERVICE)[sms_id]["receiver"] != receiver]
    assert others, "every chosen SMS went to the held number: the test proves nothing about the rest"
    hold = place_hold(fresh.store, HoldScope(receiver=receiver), reason="case 12", actor="dpo")

    chosen = selection(held, *others)
    review = post(f"{fresh.url}/delete/review", [("csrf", token_of(get(f"{fresh.url}/", alice).text)), *chosen], alice)
    assert review.status == 200
    result = post(f"{fresh.url}/delete/confirm", [("csrf", token_of(review.text)), *chosen], alice)
    assert result.status == 200, result.text

    assert sorted(fresh.emulator.deleted) == sorted((SERVICE, "outgoing", sms_id) for sms_id in others)
    assert decisions_of(result.text)[held] == ("keep", f"under legal hold {hold.id}")
    [event] = read_events(fresh.store)
    assert (event.kind, event.actor) == ("retention_deletion", "alice")
    assert event.counts["deleted"] == len(others) and event.counts["held"] == 1
