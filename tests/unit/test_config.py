from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# -- several OVH accounts ------------------------------------------------------------------------

_TWO_ACCOUNTS = """
[storage]
url = "file:///tmp/archive"

[[accounts]]
name = "shop"
endpoint = "ovh-ca"
services = ["sms-shop11111-1"]
application_key = "shop-ak"
application_secret = "shop-as-DO-NOT-LEAK"
consumer_key = "shop-ck-DO-NOT-LEAK"

[[accounts]]
name = "agency-2"
max_requests_per_second = 5
services = "sms-agency2222-1, sms-agency2222-2"
"""


def test_accounts_from_tables_environment_and_secret_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(_TWO_ACCOUNTS)
    secrets = tmp_path / "creds"
    secrets.mkdir()
    (secrets / "accounts__agency-2__application_secret").write_text("agency-as-DO-NOT-LEAK\n")
    (secrets / "SMS_ARCHIVER_ACCOUNTS__AGENCY-2__CONSUMER_KEY").write_text("agency-ck-DO-NOT-LEAK")
    monkeypatch.setenv("SMS_ARCHIVER_SECRETS_DIR", str(secrets))
    # The environment adds to an [[accounts]] table of the file, and beats it.
    monkeypatch.setenv("SMS_ARCHIVER_ACCOUNTS__AGENCY-2__APPLICATION_KEY", "agency-ak")
    monkeypatch.setenv("SMS_ARCHIVER_ACCOUNTS__SHOP__MAX_REQUESTS_PER_SECOND", "3")
    settings = load_settings(config)
    assert settings.account_names() == ["agency-2", "shop"]
    shop, agency = settings.for_account("shop"), settings.for_account("agency-2")
    assert (shop.account_name, shop.ovh.endpoint, shop.ovh.max_requests_per_second) == ("shop", "ovh-ca", 3)
    assert shop.ovh.services == ["sms-shop11111-1"]
    assert (agency.account_name, agency.ovh.endpoint, agency.ovh.max_requests_per_second) == ("agency-2", "ovh-eu", 5)
    assert agency.ovh.services == ["sms-agency2222-1", "sms-agency2222-2"]
    assert agency.ovh.application_secret is not None and agency.ovh.consumer_key is not None
    assert agency.ovh.application_secret.get_secret_value() == "agency-as-DO-NOT-LEAK"
    assert agency.ovh.consumer_key.get_secret_value() == "agency-ck-DO-NOT-LEAK"
    assert settings.account_name == "default" and not settings.ovh.has_credentials
    assert settings.configured_services() == ["sms-agency2222-1", "sms-agency2222-2", "sms-shop11111-1"]
    assert settings.account_of_services()["sms-agency2222-2"] == "agency-2"
    assert settings.archive_wide().ovh.services == settings.configured_services()
    for shown in (repr(settings), str(settings), repr(shop), repr(settings.accounts)):
        assert "DO-NOT-LEAK" not in shown


def test_accounts_as_named_tables_and_from_the_environment_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[storage]\nurl = "file:///tmp/a"\n[accounts.shop]\nendpoint = "ovh-eu"\n')
    monkeypatch.setenv("SMS_ARCHIVER_ACCOUNTS__AGENCY__ENDPOINT", "ovh-ca")
    monkeypatch.setenv("SMS_ARCHIVER_ACCOUNTS__AGENCY__SERVICES", "sms-a1-1,sms-a1-2")
    settings = load_settings(config)
    assert settings.account_names() == ["agency", "shop"]
    assert settings.for_account("agency").ovh.services == ["sms-a1-1", "sms-a1-2"]
    # The shop discovers its services: the archive-only commands then look at every archived service.
    assert settings.configured_services() == []


def test_one_account_is_the_ovh_section_as_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", "file:///tmp/archive")
    monkeypatch.setenv("SMS_ARCHIVER_OVH__SERVICES", "sms-one1-1")
    settings = load_settings()
    assert settings.accounts == {}
    assert settings.account_names() == ["default"]
    assert settings.for_account("default") is settings
    assert settings.archive_wide() is settings
    assert settings.account_of_services() == {"sms-one1-1": "default"}


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ('[[accounts]]\nendpoint = "ovh-eu"\n', {}, '[[accounts]] table number 1 needs a name = "..."'),
        ('[[accounts]]\nname = "a"\n[[accounts]]\nname = "a"\n', {}, "two [[accounts]] tables are named 'a'"),
        ('[[accounts]]\nname = "Shop"\n', {}, "'Shop' is not an account name"),
        ('[accounts."my shop"]\nendpoint = "ovh-eu"\n', {}, "'my shop' is not an account name"),
        ('[[accounts]]\nname = "a"\nendpoint = "nowhere"\n', {}, "[accounts.a] endpoint: unknown endpoint 'nowhere'"),
        ('[[accounts]]\nname = "a"\nservice = ["x"]\n', {}, "[accounts.a] service: unknown setting"),
        ("", {"SMS_ARCHIVER_ACCOUNTS__A__SERVICE": "x"}, "SMS_ARCHIVER_ACCOUNTS__A__SERVICE: unknown setting"),
        ("", {"SMS_ARCHIVER_ACCOUNTS__A__B__ENDPOINT": "x"}, "SMS_ARCHIVER_ACCOUNTS__A__B__ENDPOINT: unknown setting"),
        ("", {"SMS_ARCHIVER_ACCOUNTS__A--B__ENDPOINT": "x"}, "SMS_ARCHIVER_ACCOUNTS__A--B__ENDPOINT: unknown setting"),
        (
            "",
            {
                "SMS_ARCHIVER_ACCOUNTS__A__SERVICES": "sms-x1-1",
                "SMS_ARCHIVER_ACCOUNTS__B__SERVICES": "sms-y1-1,sms-x1-1",
            },
            "service sms-x1-1 is configured under two accounts, a and b",
        ),
        (
            "",
            {"SMS_ARCHIVER_ACCOUNTS__A__ENDPOINT": "ovh-eu", "SMS_ARCHIVER_OVH__SERVICES": "sms-z1-1"},
            "move SMS_ARCHIVER_OVH__SERVICES into each account",
        ),
        (
            "",
            {"SMS_ARCHIVER_ACCOUNTS__A__CONSUMER_KEY": "ck-DO-NOT-LEAK"},
            "SMS_ARCHIVER_ACCOUNTS__A: missing APPLICATION_KEY, APPLICATION_SECRET",
        ),
    ],
)
def test_a_wrong_account_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, toml: str, env: dict[str, str], expected: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[storage]\nurl = "file:///tmp/a"\n' + toml)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert expected in str(error.value)
    assert "DO-NOT-LEAK" not in str(error.value)


def test_an_account_secret_is_never_echoed_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", "file:///tmp/a")
    monkeypatch.setenv("SMS_ARCHIVER_ACCOUNTS__A__APPLICATION_KEY", "ak-DO-NOT-LEAK")
    monkeypatch.setenv("SMS_ARCHIVER_ACCOUNTS__A__APPLICATION_SECRET", "as-DO-NOT-LEAK")
    monkeypatch.setenv("SMS_ARCHIVER_ACCOUNTS__A__CLIENT_ID", "id")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "SMS_ARCHIVER_ACCOUNTS__A: set either" in str(error.value)
    assert "DO-NOT-LEAK" not in str(error.value)


@given(st.text(alphabet="abcXYZ019-_ .é", min_size=0, max_size=12))
def test_an_account_name_is_accepted_only_if_every_form_can_spell_it(name: str) -> None:
    """A name the settings accept is one a variable and a secret file can spell back, whatever its case."""
    from archiver.config import _setting_path, check_account_name

    try:
        check_account_name(name)
    except ValueError:
        accepted = False
    else:
        accepted = True
    assert accepted == (_setting_path(f"accounts__{name.lower()}__endpoint") == ("accounts", name, "endpoint"))
    if accepted:
        assert name == name.lower() and "__" not in name and name.strip("-_") == name


def test_the_example_configuration_takes_accounts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Its [ovh] section only spells defaults out: accounts added to it are accepted; a changed value is not."""
    example = (Path(__file__).parents[2] / "config" / "sms-archiver.toml").read_text()
    config = tmp_path / "c.toml"
    config.write_text(example + '\n[[accounts]]\nname = "shop"\nendpoint = "ovh-ca"\n')
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", "file:///tmp/a")
    assert load_settings(config).for_account("shop").ovh.endpoint == "ovh-ca"
    monkeypatch.setenv("SMS_ARCHIVER_OVH__CONCURRENCY", "8")
    with pytest.raises(ConfigError, match="move SMS_ARCHIVER_OVH__CONCURRENCY into each account"):
        load_settings(config)


def test_a_whole_account_is_never_echoed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A secret file or a variable holding a whole account (not one field) shows nothing of its content."""
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", "file:///tmp/a")
    secrets = tmp_path / "creds"
    secrets.mkdir()
    (secrets / "accounts__shop").write_text('{"application_secret": "as-DO-NOT-LEAK"}')
    monkeypatch.setenv("SMS_ARCHIVER_SECRETS_DIR", str(secrets))
    assert load_settings().accounts == {}  # a file names one field, or is not a setting
    monkeypatch.setenv("SMS_ARCHIVER_ACCOUNTS__AGENCY", '"ck-DO-NOT-LEAK"')
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "SMS_ARCHIVER_ACCOUNTS__AGENCY" in str(error.value)
    assert "DO-NOT-LEAK" not in str(error.value)


def test_an_unknown_endpoint_lists_the_names_a_user_can_type_not_urls_registered_at_run_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """URL endpoints are registered in python-ovh under private names (``source.client.register_endpoint``):
    a long-running process (or a test session) collects many; the message must not list them."""
    from archiver.source.client import register_endpoint

    private = register_endpoint("http://127.0.0.1:9/1.0")
    monkeypatch.setenv("SMS_ARCHIVER_STORAGE__URL", "file:///tmp/a")
    monkeypatch.setenv("SMS_ARCHIVER_OVH__ENDPOINT", "ovh-mars")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "ovh-eu" in str(caught.value)
    assert private not in str(caught.value)
