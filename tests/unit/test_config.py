from __future__ import annotations

from pathlib import Path

import pytest

from archiver.config import load_settings
from archiver.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SMS_ARCHIVER_") or name in ("CREDENTIALS_DIRECTORY",):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SMS_ARCHIVER_SECRETS_DIR", str(tmp_path / "no-secrets"))


def test_defaults_and_required_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="SMS_ARCHIVER_STORAGE__URL: required"):
        load_settings()
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", "file:///tmp/archive")
    settings = load_settings()
    assert settings.ovh.endpoint == "ovh-eu"
    assert settings.archive.directions == ["outgoing", "incoming"]
    assert settings.archive.settle_seconds == 900
    assert settings.archive.timezone == "UTC"


def test_precedence_toml_env_secret_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[ovh]\nconcurrency = 8\nmax_requests_per_second = 3\nservices = ["a"]\n[storage]\nurl = "file:///from/toml"\n'
    )
    secrets = tmp_path / "creds"
    secrets.mkdir()
    (secrets / "ovh__application_secret").write_text("secret-from-file\n")
    (secrets / "SMS_ARCHIVER_OVH__CONSUMER_KEY").write_text("ck-from-file")
    (secrets / "unrelated-docker-secret").write_text("ignored")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(secrets))
    monkeypatch.setenv("SMS_ARCHIVER_OVH__CONCURRENCY", "2")
    monkeypatch.setenv("SMS_ARCHIVER_OVH__APPLICATION_KEY", "ak")
    monkeypatch.setenv("SMS_ARCHIVER_OVH__APPLICATION_SECRET", "secret-from-env")
    settings = load_settings(config)
    assert settings.ovh.concurrency == 2  # env beats the file
    assert settings.ovh.max_requests_per_second == 3  # the file beats defaults
    assert settings.ovh.services == ["a"]
    assert settings.storage.url == "file:///from/toml"
    assert settings.ovh.application_secret is not None
    assert settings.ovh.application_secret.get_secret_value() == "secret-from-file"  # secret files beat env
    assert "secret-from-file" not in repr(settings)
    assert "ck-from-file" not in repr(settings)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a,b , c", ["a", "b", "c"]), ('["x", "y"]', ["x", "y"]), ("", [])],
)
def test_services_list_forms(monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]) -> None:
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", "file:///tmp/a")
    monkeypatch.setenv("SMS_ARCHIVER_OVH__SERVICES", value)
    assert load_settings().ovh.services == expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SMS_ARCHIVER_OVH__CONCURRENCY", "many", "SMS_ARCHIVER_OVH__CONCURRENCY"),
        ("SMS_ARCHIVER_OVH__CONCURRENCY", "0", "greater than or equal to 1"),
        ("SMS_ARCHIVER_OVH__ENDPOINT", "ovh-mars", "unknown endpoint"),
        ("SMS_ARCHIVER_OVH__ENDPOINT", "http://127.0.0.1:9/api", "must end with /1.0"),
        ("SMS_ARCHIVER_OVH__MAX_REQUESTS_PER_SECOND", "-1", "SMS_ARCHIVER_OVH__MAX_REQUESTS_PER_SECOND"),
        ("SMS_ARCHIVER_ARCHIVE__DIRECTIONS", "sideways", "SMS_ARCHIVER_ARCHIVE__DIRECTIONS"),
        ("SMS_ARCHIVER_ARCHIVE__START", "yesterday", "SMS_ARCHIVER_ARCHIVE__START"),
        ("SMS_ARCHIVER_ARCHIVE__TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("SMS_ARCHIVER_ARCHIVE__SETTLE_SECONDS", "soon", "SMS_ARCHIVER_ARCHIVE__SETTLE_SECONDS"),
        ("SMS_ARCHIVER_STORAGE__URL", "ftp://host/x", "expected s3://bucket"),
        ("SMS_ARCHIVER_STORAGE__URL", "s3:///prefix", "needs a bucket"),
        ("SMS_ARCHIVER_STORAGE__ADDRESSING_STYLE", "sideways", "SMS_ARCHIVER_STORAGE__ADDRESSING_STYLE"),
        ("SMS_ARCHIVER_OVH__FETCH", "telepathy", "SMS_ARCHIVER_OVH__FETCH"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", "file:///tmp/a")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert message in str(caught.value)
    assert name in str(caught.value)


def test_partial_ovh_keys_and_secret_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", "file:///tmp/a")
    monkeypatch.setenv("SMS_ARCHIVER_OVH__APPLICATION_KEY", "visible-if-leaked-123")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "APPLICATION_SECRET" in str(caught.value)
    assert "visible-if-leaked-123" not in str(caught.value)


def test_bad_toml_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[ovh\nconcurrency = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_unknown_key_in_toml(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[storage]\nurl = "file:///a"\nbukket = "x"\n')
    # Named as it is written in the file (issue 14), not as the variable nobody set.
    with pytest.raises(ConfigError, match=r"c\.toml: \[storage\] bukket: unknown setting") as raised:
        load_settings(config)
    assert "SMS_ARCHIVER_STORAGE__BUKKET" not in str(raised.value)


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parents[2] / "config" / "sms-archiver.toml"
    settings = load_settings(example)
    assert settings.storage.url.startswith("s3://")


def test_compliance_settings_and_a_short_erasure_key_is_refused_without_being_echoed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", "file:///tmp/a")
    settings = load_settings()
    assert settings.actor is None and settings.compliance.erasure_key is None
    monkeypatch.setenv("SMS_ARCHIVER_ACTOR", "dpo@example.org")
    monkeypatch.setenv("SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY", "leak-me-if-you-can")
    settings = load_settings()
    assert settings.actor == "dpo@example.org"
    assert "leak-me" not in repr(settings)
    monkeypatch.setenv("SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY", "leak-me")
    with pytest.raises(ConfigError, match="SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY: must be at least 16") as caught:
        load_settings()
    assert "leak-me" not in str(caught.value)
    # Also as a secret file (systemd credentials, Docker secrets).
    monkeypatch.delenv("SMS_ARCHIVER_COMPLIANCE__ERASURE_KEY")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "compliance__erasure_key").write_text("a-file-held-key-0123\n")
    monkeypatch.setenv("SMS_ARCHIVER_SECRETS_DIR", str(secrets))
    settings = load_settings()
    assert settings.compliance.erasure_key is not None
    assert settings.compliance.erasure_key.get_secret_value() == "a-file-held-key-0123"
