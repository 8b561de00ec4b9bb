"""Who may look, and what a page may do: authentication, escaping, headers, the access log."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import structlog

from archiver.config import load_settings
from archiver.errors import ConfigError
from archiver.web.serve import build_context
from tests.web.conftest import HTML_MESSAGES, SERVICES, Archive, get, web_settings


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    """Users as Apache's ``htpasswd -B`` writes them (``$2y$``)."""
    path = tmp_path / "htpasswd"
    lines = []
    for user, password in (("alice", "correct horse"), ("bob", "s3cret:with:colons")):
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
        lines.append(f"{user}:{hashed}")
    path.write_text("\n".join(lines) + "\n")
    return path


# -- escaping ------------------------------------------------------------------------------------


def test_html_in_messages_shows_as_text_in_every_page(archive: Archive, web: str) -> None:
    page = get(f"{web}/?{urllib.parse.urlencode({'service': SERVICES[0], 'q': 'onerror'})}").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in page
    script = get(f"{web}/?{urllib.parse.urlencode({'q': '<script>'})}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in script
    assert "<script>alert" not in script
    for sms_id, message in zip(archive.html_ids, HTML_MESSAGES, strict=True):
        one = get(f"{web}/sms/{SERVICES[0]}/outgoing/{sms_id}").text
        assert message not in one
        assert (
            message.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace('"', "&#34;")
            .replace("'", "&#39;")
            in one
        )
    # the filters echoed back in the form are escaped too
    hostile = urllib.parse.urlencode({"q": '"><script>x()</script>'})
    echoed = get(f"{web}/?{hostile}").text
    assert "<script>x()" not in echoed


def test_every_answer_carries_the_security_headers(archive: Archive, web: str) -> None:
    for path in ("/", "/overview", "/api/sms", "/api/months", "/static/app.css", "/api/sms?limit=0", "/nope"):
        headers = get(web + path).headers
        policy = headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_pages_have_no_inline_script_or_style_and_no_outside_asset(archive: Archive, web: str) -> None:
    sms_id = archive.html_ids[0]
    for path in ("/", "/overview", f"/sms/{SERVICES[0]}/outgoing/{sms_id}"):
        page = get(web + path).text
        assert "<script>" not in page and "<style" not in page and " style=" not in page
        # every asset and link is the app's own (no third party: works with no internet)
        targets = re.findall(r'\s(?:src|href|action)="([^"]*)"', page)
        assert targets and all(target.startswith("/") and not target.startswith("//") for target in targets), targets


# -- who may look --------------------------------------------------------------------------------


def test_htpasswd_users_get_in_with_their_password_only(archive: Archive, start_web: Any, htpasswd: Path) -> None:
    web = start_web(archive.directory, htpasswd_file=str(htpasswd))
    anonymous = get(f"{web}/api/sms")
    assert anonymous.status == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic ")
    assert get(f"{web}/api/sms", _basic("alice", "wrong")).status == 401
    assert get(f"{web}/api/sms", _basic("mallory", "correct horse")).status == 401
    assert get(f"{web}/api/sms", _basic("bob", "correct horse")).status == 401
    assert get(f"{web}/static/app.css").status == 401
    assert get(f"{web}/api/sms", {"Authorization": "Basic !!!notbase64"}).status == 401
    assert get(f"{web}/api/sms", _basic("alice", "correct horse")).status == 200
    assert get(f"{web}/api/sms", _basic("alice", "correct horse")).status == 200  # the remembered check
    assert get(f"{web}/api/sms", _basic("bob", "s3cret:with:colons")).status == 200
    assert get(f"{web}/api/sms", _basic("alice", "correct horse ")).status == 401


def test_the_trusted_header_is_ignored_from_an_untrusted_address(archive: Archive, start_web: Any) -> None:
    web = start_web(archive.directory, trusted_user_header="X-Forwarded-User", trusted_proxies=["10.0.0.0/8"])
    # The test client connects from 127.0.0.1, which is not a trusted proxy here; claiming to be
    # forwarded for a trusted one changes nothing.
    for headers in (
        {},
        {"X-Forwarded-User": "alice"},
        {"X-Forwarded-User": "alice", "X-Forwarded-For": "10.0.0.1"},
        {"X-Forwarded-User": "alice", "Forwarded": "for=10.0.0.1"},
    ):
        assert get(f"{web}/api/sms", headers).status == 401, headers


def test_the_trusted_header_names_the_user_from_a_trusted_proxy(archive: Archive, start_web: Any) -> None:
    web = start_web(archive.directory, trusted_user_header="X-Forwarded-User", trusted_proxies=["127.0.0.1/32"])
    assert get(f"{web}/api/sms").status == 401  # no header: nobody
    with structlog.testing.capture_logs() as logs:
        answer = get(
            f"{web}/api/sms?{urllib.parse.urlencode({'receiver': '+33612345678'})}", {"X-Forwarded-User": "carol"}
        )
    assert answer.status == 200
    lines = [line for line in logs if line["event"] == "web_request"]
    assert lines and lines[-1]["user"] == "carol"
    assert lines[-1]["filters"] == {"receiver": "+33612345678"}
    assert lines[-1]["rows"] == len(answer.json()["items"])


def test_the_access_log_says_who_asked_what_and_how_many_rows(archive: Archive, start_web: Any, htpasswd: Path) -> None:
    web = start_web(archive.directory, htpasswd_file=str(htpasswd))
    with structlog.testing.capture_logs() as logs:
        answer = get(f"{web}/api/sms?service={SERVICES[1]}&limit=7", _basic("alice", "correct horse"))
        refused = get(f"{web}/api/sms", _basic("alice", "nope"))
    assert refused.status == 401
    lines = [line for line in logs if line["event"] == "web_request"]
    assert [line["status"] for line in lines] == [200, 401]
    assert lines[0]["user"] == "alice" and lines[0]["rows"] == len(answer.json()["items"]) == 7
    assert lines[0]["filters"] == {"service": SERVICES[1], "limit": "7"}
    assert lines[1]["user"] is None
    assert not any("nope" in repr(line) or "correct horse" in repr(line) for line in logs)


def test_htpasswd_with_a_weak_hash_or_missing_is_refused(archive: Archive, tmp_path: Path) -> None:
    weak = tmp_path / "weak"
    weak.write_text("alice:$apr1$abc$defghijklmnopqrstuvw\n")
    with pytest.raises(ConfigError, match=r"SMS_ARCHIVER_WEB__HTPASSWD_FILE.*bcrypt"):
        build_context(web_settings(archive.directory, tmp_path / "c", htpasswd_file=str(weak)))
    with pytest.raises(ConfigError, match=r"SMS_ARCHIVER_WEB__HTPASSWD_FILE.*no such file"):
        build_context(web_settings(archive.directory, tmp_path / "c", htpasswd_file=str(tmp_path / "absent")))


def _web_cli(archive: Archive, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver", "web", *args],
        env={**archive.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--host", "0.0.0.0", "--port", "0"), {}),
        (("--port", "0"), {"SMS_ARCHIVER_WEB__HOST": "0.0.0.0"}),
        (("--host", "192.0.2.1", "--port", "0"), {}),
        (("--host", "::", "--port", "0"), {}),
    ],
)
def test_listening_off_loopback_without_authentication_exits_2_naming_the_setting(
    archive: Archive, args: tuple[str, ...], env: dict[str, str]
) -> None:
    result = _web_cli(archive, *args, **env)
    assert result.returncode == 2
    assert "SMS_ARCHIVER_WEB__HOST" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_trusted_header_without_trusted_proxies_is_a_setting_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_ARCHIVER_WEB__TRUSTED_USER_HEADER", "X-User")
    with pytest.raises(ConfigError, match="SMS_ARCHIVER_WEB__TRUSTED_PROXIES"):
        load_settings(require_storage=False)
    monkeypatch.setenv("SMS_ARCHIVER_WEB__TRUSTED_PROXIES", "10.0.0.0/8,not-an-address")
    with pytest.raises(ConfigError, match="SMS_ARCHIVER_WEB__TRUSTED_PROXIES"):
        load_settings(require_storage=False)


def test_off_loopback_with_authentication_is_allowed(monkeypatch: pytest.MonkeyPatch, htpasswd: Path) -> None:
    monkeypatch.setenv("SMS_ARCHIVER_WEB__HOST", "0.0.0.0")
    monkeypatch.setenv("SMS_ARCHIVER_WEB__HTPASSWD_FILE", str(htpasswd))
    assert load_settings(require_storage=False).web.host == "0.0.0.0"
    assert os.environ["SMS_ARCHIVER_WEB__HOST"] == "0.0.0.0"
