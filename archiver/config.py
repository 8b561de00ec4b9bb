"""Settings: one pydantic-settings model, read from defaults, a TOML file, the environment and secret files.

Precedence, lowest to highest: defaults < TOML file (``--config PATH`` or ``SMS_ARCHIVER_CONFIG``)
< environment (``SMS_ARCHIVER_`` prefix, ``__`` between levels) < secret files (one file per
setting, named like the variable, e.g. ``SMS_ARCHIVER_OVH__APPLICATION_SECRET``, or its lowercase
form without the prefix, ``ovh__application_secret``, in ``$CREDENTIALS_DIRECTORY`` (systemd
``LoadCredential=``), ``/run/secrets`` (Docker) or ``SMS_ARCHIVER_SECRETS_DIR``).

Every credential is a ``SecretStr``: it prints as ``**********`` in logs, errors and reprs.
``load_settings`` turns every validation failure into one ``ConfigError`` whose lines name the
setting by its environment variable, so users can fix what they wrote, wherever they wrote it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import tomllib
import urllib.parse
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from archiver.errors import ConfigError
from archiver.naming import DIRECTIONS, Direction, check_service_name
from archiver.schedule import parse_schedule

__all__ = [
    "DEFAULT_ACCOUNT",
    "ENV_PREFIX",
    "PRIVATE_ENDPOINT",
    "ArchiveSettings",
    "ComplianceSettings",
    "DaemonSettings",
    "LogSettings",
    "MetricsSettings",
    "OvhSettings",
    "PingSettings",
    "RetentionSettings",
    "ScheduleSettings",
    "Settings",
    "StorageSettings",
    "WebSettings",
    "load_settings",
    "web_exposure_problem",
]

ENV_PREFIX = "SMS_ARCHIVER_"
# The account of a configuration without ``accounts``: its ``ovh`` section.
DEFAULT_ACCOUNT = "default"
# python-ovh knows endpoints by name only: a URL endpoint is registered under this prefix and a hash
# (``source.client.register_endpoint``).
PRIVATE_ENDPOINT = "sms-archiver-"
_DEFAULT_SECRET_DIRS = ("/run/secrets",)


def _split_list(value: Any) -> Any:
    """Accept a JSON list, a comma-separated string, or a TOML list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            try:
                return json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"not a valid JSON list ({error.msg})") from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OvhSettings(_Section):
    """How to reach and sign calls to the OVH API."""

    endpoint: str = "ovh-eu"
    application_key: SecretStr | None = None
    application_secret: SecretStr | None = None
    consumer_key: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    # OVH publishes no limit; staff have called ~60 requests/min per consumer key fair use.
    max_requests_per_second: float = Field(default=1.0, gt=0, le=100_000, allow_inf_nan=False)
    concurrency: int = Field(default=4, ge=1, le=64)
    services: Annotated[list[str], NoDecode] = Field(default_factory=list)
    fetch: Literal["auto", "per-id", "batch", "export"] = "auto"
    batch_size: int = Field(default=50, ge=1, le=500)
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600, allow_inf_nan=False)
    max_retries: int = Field(default=6, ge=0, le=20)
    # Used only when an API datetime carries no offset (the API's zone is not documented).
    api_timezone: str = "Europe/Paris"

    @field_validator("services", mode="before")
    @classmethod
    def _services_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: list[str]) -> list[str]:
        return [check_service_name(name) for name in value]

    @field_validator("endpoint")
    @classmethod
    def _endpoint_known(cls, value: str) -> str:
        import ovh.client

        value = value.strip()
        if value.startswith(("http://", "https://")):
            if not _has_host(value):
                raise ValueError("a URL endpoint needs a host name, e.g. https://eu.api.ovh.com/1.0")
            if not re.search(r"/1\.0/?$", value):
                raise ValueError("a URL endpoint must end with /1.0 (e.g. https://eu.api.ovh.com/1.0)")
            return value.rstrip("/")
        if value not in ovh.client.ENDPOINTS:
            # The names a user can type: not the private ones URL endpoints are registered under.
            known = ", ".join(sorted(name for name in ovh.client.ENDPOINTS if not name.startswith(PRIVATE_ENDPOINT)))
            raise ValueError(f"unknown endpoint {value!r}; use one of {known}, or an http(s)://.../1.0 URL")
        return value

    @field_validator("api_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @model_validator(mode="after")
    def _one_auth_kind(self) -> OvhSettings:
        keys = [self.application_key, self.application_secret, self.consumer_key]
        oauth = [self.client_id, self.client_secret]
        if any(keys) and any(oauth):
            raise ValueError(
                "set either APPLICATION_KEY/APPLICATION_SECRET/CONSUMER_KEY or CLIENT_ID/CLIENT_SECRET, not both"
            )
        if any(oauth) and not all(oauth):
            raise ValueError("OAuth2 needs both CLIENT_ID and CLIENT_SECRET")
        if any(keys) and not all(keys):
            missing = [
                name
                for name, key in zip(("APPLICATION_KEY", "APPLICATION_SECRET", "CONSUMER_KEY"), keys, strict=True)
                if not key
            ]
            raise ValueError(f"missing {', '.join(missing)} (all three are needed to sign calls)")
        return self

    @property
    def has_credentials(self) -> bool:
        return bool(self.application_key or self.client_id)


def _has_host(url: str) -> bool:
    try:
        return bool(urllib.parse.urlsplit(url).hostname)
    except ValueError:
        return False


def _check_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like UTC or Europe/Paris)") from None
    return value


class ArchiveSettings(_Section):
    """What to archive, and how the archive's files look."""

    directions: Annotated[list[Direction], NoDecode] = Field(default_factory=lambda: list(DIRECTIONS))
    start: dt.date | None = None
    settle_seconds: int = Field(default=900, ge=0, le=30 * 86400)
    timezone: str = "UTC"
    # An SMS's delivery status may change for ~72 h after sending: re-check non-final ones this long.
    lookback_hours: float = Field(default=72.0, ge=0, le=24 * 366, allow_inf_nan=False)
    gzip: bool = False
    delimiter: str = ";"
    # Records fetched and written per step; bounds memory and the work a crash can cost.
    chunk_size: int = Field(default=2000, ge=10, le=100_000)
    # Services archived at once in a cycle (all under the account's one rate limit): an idle cycle over
    # many services is mostly waiting for listings.
    service_concurrency: int = Field(default=4, ge=1, le=64)

    @field_validator("directions", mode="before")
    @classmethod
    def _directions_list(cls, value: Any) -> Any:
        value = _split_list(value)
        if isinstance(value, list) and "both" in value:
            return list(DIRECTIONS)
        return value

    @field_validator("directions")
    @classmethod
    def _directions_unique(cls, value: list[Direction]) -> list[Direction]:
        if not value:
            raise ValueError("at least one of outgoing, incoming")
        return [direction for direction in DIRECTIONS if direction in value]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        value = {"\\t": "\t", "tab": "\t"}.get(value, value)
        # A letter or digit could occur in the header itself ("id"), where readers find the delimiter.
        if len(value) != 1 or value in '"\r\n' or value.isalnum():
            raise ValueError("must be one character other than a letter, digit, quote or line break (e.g. ; , or tab)")
        return value

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class StorageSettings(_Section):
    """Where the archive lives: an S3-compatible bucket or a local directory."""

    url: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    # boto3 >= 1.36 sends CRC checksums many S3-compatible stores reject; only send them when required.
    checksums: Literal["when_required", "when_supported"] = "when_required"
    conditional_writes: Literal["auto", "on", "off"] = "auto"
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600, allow_inf_nan=False)
    max_attempts: int = Field(default=5, ge=1, le=20)
    # Write data parts under S3 Object Lock (the bucket must have it enabled): write-once archives.
    object_lock_mode: Literal["", "GOVERNANCE", "COMPLIANCE"] = ""
    object_lock_days: int = Field(default=0, ge=0, le=36500)

    @field_validator("url")
    @classmethod
    def _url_form(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("required: where to keep the archive, e.g. s3://bucket/prefix or file:///var/lib/sms")
        if value.startswith("s3://"):
            bucket = value[5:].split("/", 1)[0]
            if not bucket:
                raise ValueError("an s3:// URL needs a bucket name: s3://bucket[/prefix]")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}", bucket):
                raise ValueError(f"{bucket!r} is not a bucket name (letters, digits, '.', '-', '_')")
        elif value.startswith("file://"):
            if not value[7:].startswith("/"):
                raise ValueError("a file:// URL needs an absolute path: file:///var/lib/sms-archiver")
        else:
            raise ValueError("expected s3://bucket[/prefix] or file:///absolute/path")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")) or not _has_host(value):
            raise ValueError("expected an http(s)://host[:port] URL, e.g. https://s3.gra.io.cloud.ovh.net")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value.strip()):
            raise ValueError("expected a region name like eu-west-3 or gra")
        return value.strip() if value else None

    @model_validator(mode="after")
    def _key_pair(self) -> StorageSettings:
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ValueError("set both ACCESS_KEY_ID and SECRET_ACCESS_KEY, or neither (boto3's own chain)")
        if bool(self.object_lock_mode) != bool(self.object_lock_days):
            raise ValueError("set both OBJECT_LOCK_MODE and OBJECT_LOCK_DAYS (retain-until = write time + days)")
        if self.object_lock_mode and not self.url.startswith("s3://"):
            raise ValueError("OBJECT_LOCK_MODE needs an s3:// storage URL")
        return self


class LeaseSettings(_Section):
    """The single-writer lease kept in the archive."""

    ttl_seconds: int = Field(default=900, ge=30, le=7 * 86400)
    wait_seconds: int = Field(default=0, ge=0, le=86400)


def _check_schedule(value: str) -> str:
    parse_schedule(value)
    return value


class RetentionSettings(_Section):
    """Deleting SMS at OVH once they are safely archived (off unless enabled, with a policy)."""

    enabled: bool = False
    delete_after_days: int | None = Field(default=None, ge=1, le=36500)
    directions: Annotated[list[Direction], NoDecode] = Field(default_factory=lambda: list(DIRECTIONS))
    # Like rclone's --max-delete: past this many deletions the run stops with an error.
    max_deletions_per_run: int = Field(default=5000, ge=1, le=10_000_000)
    # Archive-side purge for data-protection rules: archive months older than this are removed.
    archive_keep_months: int | None = Field(default=None, ge=1, le=1200)

    @field_validator("directions", mode="before")
    @classmethod
    def _directions_list(cls, value: Any) -> Any:
        return ArchiveSettings._directions_list(value)

    @field_validator("directions")
    @classmethod
    def _directions_unique(cls, value: list[Direction]) -> list[Direction]:
        return ArchiveSettings._directions_unique(value)

    @model_validator(mode="after")
    def _policy_required(self) -> RetentionSettings:
        # Enabled, retention runs on the daemon's schedule: refuse the settings now, not at its first run.
        if self.enabled and self.delete_after_days is None:
            raise ValueError(
                f"retention is enabled without a policy: set {ENV_PREFIX}RETENTION__DELETE_AFTER_DAYS "
                "(nothing is deleted without one)"
            )
        return self

    def check_policy(self, *, apply: bool) -> int:
        """Return the policy's age in days, for a retention run; with ``apply``, one that deletes at OVH.

        The rules of a run, checked here only: no run, not even a dry run, without a policy; no deletion
        unless retention is enabled. Raises ``ConfigError`` naming the setting to change.
        """
        if self.delete_after_days is None:
            raise ConfigError(
                f"invalid settings:\n  {ENV_PREFIX}RETENTION__DELETE_AFTER_DAYS: required: retention deletes "
                "nothing without a policy (e.g. 365)"
            )
        if apply and not self.enabled:
            raise ConfigError(
                f"invalid settings:\n  {ENV_PREFIX}RETENTION__ENABLED: must be true to delete at OVH (--apply); "
                "without --apply, retention only shows what it would do"
            )
        return self.delete_after_days


class ScheduleSettings(_Section):
    """When the daemon (``sms-archiver run``) runs each job: an interval (15m, 6h, 1d) or a cron line."""

    archive: str = "15m"
    retention: str = "1d"  # runs only when retention is enabled, and only after a successful archive
    compact: str = "1d"
    verify: str = ""  # empty: never (e.g. "1w" or "0 4 * * 0" for weekly)
    # Jobs that could not start on time (machine asleep, previous run still going) still run when
    # they can, if no later than this; APScheduler's own default of 1 s would silently skip them.
    misfire_grace_seconds: int = Field(default=3600, ge=1, le=7 * 86400)

    @field_validator("archive", "retention", "compact")
    @classmethod
    def _valid(cls, value: str) -> str:
        return _check_schedule(value)

    @field_validator("verify")
    @classmethod
    def _valid_or_empty(cls, value: str) -> str:
        return _check_schedule(value) if value.strip() else ""


class MetricsSettings(_Section):
    """Prometheus metrics and /healthz on an optional listen address."""

    listen: str = ""  # e.g. "127.0.0.1:9108"; empty: no HTTP endpoint
    # /healthz answers 503 when the last successful archive cycle is older than this.
    max_age_seconds: int = Field(default=3600, ge=60, le=366 * 86400)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        value = value.strip()
        if value:
            _host, sep, port = value.rpartition(":")
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9108 or 0.0.0.0:9108")
        return value


class PingSettings(_Section):
    """Dead man's switch pings (healthchecks.io style): URL, URL/start, URL/fail."""

    url: SecretStr | None = None  # ping URLs embed a token: treated as a secret

    @field_validator("url")
    @classmethod
    def _ping_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            url = value.get_secret_value().strip()
            if not url:
                return None
            if not url.startswith(("http://", "https://")) or not _has_host(url):
                raise ValueError("expected an http(s):// URL (value not shown: it holds a token)")
        return value

    timeout_seconds: float = Field(default=10.0, gt=0, le=300, allow_inf_nan=False)


class DaemonSettings(_Section):
    """The long-running daemon."""

    # After SIGTERM, how long the running cycle may take to reach a safe point.
    shutdown_seconds: int = Field(default=60, ge=1, le=3600)


class ComplianceSettings(_Section):
    """Legal holds, erasure requests and the audit trail (``hold``, ``erase``, ``audit``)."""

    # The HMAC key that names an erased phone number in the audit trail: a later request for the same
    # number can be matched without the number ever being written in clear. Required by ``erase``.
    erasure_key: SecretStr | None = None

    @field_validator("erasure_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (value not shown: it is a secret)")
        return value


class LogSettings(_Section):
    """How logs look: JSON lines for machines, colours for people."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


def _is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def web_exposure_problem(host: str, *, htpasswd_file: str | None, trusted_user_header: str | None) -> str | None:
    """Why the history browser may not listen on ``host`` as configured (None: it may).

    Phone numbers and messages are personal data: off the loopback interface, every request must be
    authenticated, by an htpasswd file or by an authenticating reverse proxy's header.
    """
    if _is_loopback(host) or htpasswd_file or trusted_user_header:
        return None
    return (
        f"SMS_ARCHIVER_WEB__HOST={host} is not a loopback address and no authentication is set: set "
        "SMS_ARCHIVER_WEB__HTPASSWD_FILE (htpasswd -B) or SMS_ARCHIVER_WEB__TRUSTED_USER_HEADER with "
        "SMS_ARCHIVER_WEB__TRUSTED_PROXIES, or listen on 127.0.0.1"
    )


class WebSettings(_Section):
    """The history browser (``sms-archiver web``, or beside the daemon when enabled)."""

    enabled: bool = False  # serve it from ``sms-archiver run`` too
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Users and bcrypt hashes, as written by Apache's ``htpasswd -B``.
    htpasswd_file: str | None = None
    # A header naming the user, set by an authenticating reverse proxy (oauth2-proxy, Authelia...);
    # believed only from the addresses of ``trusted_proxies``.
    trusted_user_header: str | None = None
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allow_delete: bool = False
    # Where the browser keeps its derived index of the archive (default: the user's cache directory).
    cache_dir: str | None = None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)") from None
        return value

    @field_validator("htpasswd_file", "trusted_user_header", "cache_dir")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="after")
    def _authenticated_off_loopback(self) -> WebSettings:
        if self.trusted_user_header and not self.trusted_proxies:
            raise ValueError(
                "SMS_ARCHIVER_WEB__TRUSTED_USER_HEADER is set without SMS_ARCHIVER_WEB__TRUSTED_PROXIES: "
                "name the reverse proxies whose header is believed"
            )
        problem = web_exposure_problem(
            self.host, htpasswd_file=self.htpasswd_file, trusted_user_header=self.trusted_user_header
        )
        if problem:
            raise ValueError(problem)
        return self


_ACCOUNT_NAME = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")


def check_account_name(name: str) -> str:
    """An account's name: lowercase letters and digits, single ``-`` or ``_`` between them (at most 40)."""
    if len(name) > 40 or not _ACCOUNT_NAME.fullmatch(name):
        raise ValueError(
            f"{name[:60]!r} is not an account name: use lowercase letters and digits, with single - or _ "
            "between them (e.g. shop or agency-2)"
        )
    return name


def accounts_by_name(value: Any) -> Any:
    """``[[accounts]]`` tables (a list, each with ``name``) or ``[accounts.NAME]`` tables, as a mapping by name.

    Names are checked here, so that a bad one is reported as such rather than as an unknown field.
    """
    if isinstance(value, list):
        mapping: dict[str, Any] = {}
        for position, item in enumerate(value, start=1):
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise ValueError(f'[[accounts]] table number {position} needs a name = "..." (e.g. name = "shop")')
            fields = {key: field for key, field in item.items() if key != "name"}
            name = check_account_name(item["name"])
            if name in mapping:
                raise ValueError(f"two [[accounts]] tables are named {name!r}: each account needs its own name")
            mapping[name] = fields
        return mapping
    if isinstance(value, Mapping):
        for name in value:
            check_account_name(str(name))
    return value


class Settings(BaseSettings):
    """Every setting of sms-archiver."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
    )

    ovh: OvhSettings = Field(default_factory=OvhSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    storage: StorageSettings = Field(default_factory=lambda: StorageSettings.model_construct())
    lease: LeaseSettings = Field(default_factory=LeaseSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    ping: PingSettings = Field(default_factory=PingSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    compliance: ComplianceSettings = Field(default_factory=ComplianceSettings)
    # Who is acting, for the audit trail (``SMS_ARCHIVER_ACTOR``); default: the OS user and host.
    actor: str | None = Field(default=None, min_length=1, max_length=200)
    # Several OVH accounts, by name, each with the fields of ``ovh``; empty: ``ovh`` is the one account.
    accounts: dict[str, OvhSettings] = Field(default_factory=dict)
    # The account a per-account copy stands for (``for_account``); the whole configuration's is "default".
    _account_name: str = PrivateAttr(default=DEFAULT_ACCOUNT)

    @field_validator("accounts", mode="before")
    @classmethod
    def _accounts_by_name(cls, value: Any) -> Any:
        return accounts_by_name(value)

    @field_validator("accounts")
    @classmethod
    def _accounts_coherent(cls, value: dict[str, OvhSettings], info: ValidationInfo) -> dict[str, OvhSettings]:
        ovh = info.data.get("ovh")
        # The ovh section is the one account of a configuration without accounts; with accounts it gives
        # nothing (no hidden inheritance), so a value there other than its default is a mistake to report.
        changed = sorted(
            name
            for name in (ovh.model_fields_set if value and isinstance(ovh, OvhSettings) else ())
            if getattr(ovh, name) != OvhSettings.model_fields[name].get_default(call_default_factory=True)
        )
        if changed:
            used = ", ".join(f"{ENV_PREFIX}OVH__{name.upper()}" for name in changed)
            raise ValueError(
                f"accounts are configured, so the ovh section must keep its defaults (it is the one account of "
                f"a configuration without accounts): move {used} into each account "
                f"([accounts.NAME] or {ENV_PREFIX}ACCOUNTS__NAME__FIELD)"
            )
        owners: dict[str, str] = {}
        for name, account in sorted(value.items()):
            for service in account.services:
                if service in owners:
                    raise ValueError(
                        f"service {service} is configured under two accounts, {owners[service]} and {name}: "
                        "a service belongs to one OVH account; remove it from one of them"
                    )
                owners[service] = name
        return value

    @property
    def account_name(self) -> str:
        """The account whose ``ovh`` these settings carry: "default", or an account of ``accounts``."""
        return self._account_name

    def account_names(self) -> list[str]:
        """Every account, in name order (the order accounts are worked on): ["default"] without ``accounts``."""
        return sorted(self.accounts) or [DEFAULT_ACCOUNT]

    def for_account(self, name: str) -> Settings:
        """These settings with ``ovh`` set to account ``name``: what every action talking to OVH is given."""
        if not self.accounts and name == DEFAULT_ACCOUNT:
            return self
        copy = self.model_copy(update={"ovh": self.accounts[name]})
        copy._account_name = name
        return copy

    def configured_services(self) -> list[str]:
        """The services named in the settings, every account's; empty when some account discovers its own.

        For the commands that only work on the archive (``compact``, ``verify``, ``status``...):
        an empty list means every service the archive holds, as ``ovh.services`` always did.
        """
        if not self.accounts:
            return list(self.ovh.services)
        if any(not account.services for account in self.accounts.values()):
            return []
        return sorted({service for account in self.accounts.values() for service in account.services})

    def archive_wide(self) -> Settings:
        """These settings for work on the archive only (no OVH call): ``ovh.services`` names every account's.

        ``compact``, ``verify``, ``status`` and the readers choose their services from ``ovh.services``
        (empty: every service the archive holds); with accounts, that is ``configured_services``.
        """
        if not self.accounts:
            return self
        return self.model_copy(update={"ovh": OvhSettings(services=self.configured_services())})

    def account_of_services(self) -> dict[str, str]:
        """The account of each service named in the settings (a discovered service is not in it)."""
        if not self.accounts:
            return {service: DEFAULT_ACCOUNT for service in self.ovh.services}
        return {service: name for name, account in self.accounts.items() for service in account.services}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest first: secret files, environment, the TOML file (read by load_settings, passed as
        # init kwargs so that a missing or broken file gets our message rather than pydantic's).
        return (_SecretFilesSource(settings_cls), env_settings, init_settings)


class _SecretFilesSource(PydanticBaseSettingsSource):
    """One file per setting in a secrets directory (systemd credentials, Docker secrets)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for directory in _secret_dirs():
            for path in sorted(directory.iterdir()) if directory.is_dir() else []:
                dotted = _secret_file_setting(path.name)
                if dotted is None or not path.is_file():
                    continue
                try:
                    value = path.read_text(encoding="utf-8").strip()
                except UnicodeDecodeError:
                    setting = ENV_PREFIX + "__".join(part.upper() for part in dotted)
                    raise ConfigError(f"invalid settings:\n  {setting}: secret file {path} is not UTF-8 text") from None
                *sections, name = dotted
                target = values
                for section in sections:
                    target = target.setdefault(section, {})
                target.setdefault(name, value)
        return values


def _secret_dirs() -> list[Path]:
    named = [os.environ.get("SMS_ARCHIVER_SECRETS_DIR"), os.environ.get("CREDENTIALS_DIRECTORY")]
    return [Path(item) for item in (*named, *_DEFAULT_SECRET_DIRS) if item]


def _secret_file_setting(file_name: str) -> tuple[str, ...] | None:
    """Map ``SMS_ARCHIVER_OVH__CONSUMER_KEY`` or ``ovh__consumer_key`` to ("ovh", "consumer_key").

    An account's secret, ``accounts__shop__consumer_key``, maps to ("accounts", "shop", "consumer_key").
    """
    name = file_name.lower()
    if name.startswith(ENV_PREFIX.lower()):
        name = name[len(ENV_PREFIX) :]
    path = _setting_path(name)
    # A file holds one field's value: never a whole section or a whole account.
    fields = 3 if path is not None and path[0] == "accounts" else 2
    return path if path is not None and len(path) == fields else None


def _setting_path(name: str) -> tuple[str, ...] | None:
    """The setting a lowercase ``section__field`` (or ``accounts__name__field``) names; None if none.

    A section alone (``ovh``, ``accounts``, ``accounts__shop``: JSON in a variable) is a setting too.
    """
    section, sep, field = name.partition("__")
    model = Settings.model_fields.get(section)
    if model is None:
        return None
    if section == "accounts":
        account, sep, field = field.partition("__")
        if not account:
            return None if sep else (section,)
        try:
            check_account_name(account)
        except ValueError:
            return None
        if not sep:
            return (section, account)
        return (section, account, field) if field in OvhSettings.model_fields else None
    if not sep:
        return (section,)
    fields = getattr(model.annotation, "model_fields", {})
    return (section, field) if field in fields else None


_OWN_VARIABLES = {"CONFIG", "SECRETS_DIR"}


def _unknown_variables() -> list[str]:
    """``SMS_ARCHIVER_*`` variables that name no setting: a typo must not pass unnoticed."""
    unknown = []
    for name in sorted(os.environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if rest.upper() in _OWN_VARIABLES:
            continue
        if _setting_path(rest) is None:
            unknown.append(name)
    return unknown


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist (from --config or SMS_ARCHIVER_CONFIG)") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"configuration file {path} is not UTF-8 text") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {path} cannot be read: it is a directory") from None
    except OSError as error:
        raise ConfigError(f"configuration file {path} cannot be read: {error.strerror}") from None


def _setting_name(location: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in location if not isinstance(part, int)]
    # pydantic reports model-level errors on the section itself; keep the section's name.
    return ENV_PREFIX + "__".join(part.upper() for part in parts)


def _secret_field_names() -> set[str]:
    """Every setting typed ``SecretStr``, in any section: its value is never echoed in an error."""
    names = set()
    for section in Settings.model_fields.values():
        for name, field in getattr(section.annotation, "model_fields", {}).items():
            if "SecretStr" in str(field.annotation):
                names.add(name)
    return names


# Storage URLs are not secret, but ping URLs are: never echo any URL back.
_SECRET_FIELDS = {"url", *_secret_field_names()}


def _from_file(names: list[str], file_values: Mapping[str, Any]) -> bool:
    """Whether the setting at ``names`` came from the TOML file (and no variable overrides it)."""
    value: Any = file_values
    for name in names:
        if not isinstance(value, Mapping) or name not in value:
            return False
        value = value[name]
    return (ENV_PREFIX + "__".join(name.upper() for name in names)) not in {key.upper() for key in os.environ}


def _toml_name(names: list[str], file_values: Mapping[str, Any]) -> str:
    """The setting as it is written in the TOML file: ``[storage] url``, a table ``[foo]``, a key ``lease``."""
    value: Any = file_values
    for name in names:
        value = value.get(name) if isinstance(value, Mapping) else None
    if isinstance(value, Mapping):
        return f"[{'.'.join(names)}]"
    if len(names) >= 2:
        return f"[{'.'.join(names[:-1])}] {names[-1]}"
    return names[0]


def _describe(error: Mapping[str, Any], file: Path | None = None, file_values: Mapping[str, Any] | None = None) -> str:
    location = tuple(error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown setting (check its spelling)"
    elif error.get("type") == "missing":
        message = "required"
    shown = ""
    value = error.get("input")
    # Only a single field's value may be echoed (a whole section's input may hold secrets), and never a
    # secret field's.
    names = [str(part) for part in location if not isinstance(part, int)]
    fields = 3 if names[:1] == ["accounts"] else 2  # an account is a section: its input may hold secrets
    echo = len(names) >= fields and not _SECRET_FIELDS.intersection(names)
    if echo and isinstance(value, str | int | float) and error.get("type") not in ("missing", "extra_forbidden"):
        shown = f" (got {str(value)[:80]!r})"
    # A setting written in the TOML file is named as it is written there, not by its variable.
    # (Unknown variables were refused before validation: an unknown key can only come from the file.)
    if file is not None and file_values is not None and names and _from_file(names, file_values):
        return f"{file}: {_toml_name(names, file_values)}: {message}{shown}"
    return f"{_setting_name(location)}: {message}{shown}"


def load_settings(config_file: str | Path | None = None, *, require_storage: bool = True) -> Settings:
    """Read every source and validate; raise ``ConfigError`` naming each wrong setting."""
    path = config_file or os.environ.get("SMS_ARCHIVER_CONFIG")
    file_values = _read_toml(Path(path)) if path else {}
    if isinstance(file_values.get("accounts"), list):
        # [[accounts]] tables by name now, so that the environment and secret files add to them.
        try:
            file_values["accounts"] = accounts_by_name(file_values["accounts"])
        except ValueError as error:
            raise ConfigError(f"invalid settings:\n  {path}: {error}") from None
    unknown = _unknown_variables()
    if unknown:
        lines = [f"{name}: unknown setting (check its spelling; levels are separated by __)" for name in unknown]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines))
    try:
        settings = Settings(**file_values)
    except ValidationError as error:
        lines = [_describe(item, Path(path) if path else None, file_values) for item in error.errors()]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(dict.fromkeys(lines))) from None
    except SettingsError as error:
        # e.g. SMS_ARCHIVER_OVH='{not json': the message names the variable; its value is not shown.
        field = str(error).split('"')[1] if str(error).count('"') >= 2 else "a section"
        raise ConfigError(
            f"invalid settings:\n  {ENV_PREFIX}{field.upper()}: not valid JSON (set its fields one by one instead)"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("a secret file is not UTF-8 text (check the files of the secrets directory)") from None
    except OSError as error:
        raise ConfigError(f"cannot read a secret file: {error}") from None
    if require_storage and not settings.storage.url:
        raise ConfigError(
            f"invalid settings:\n  {ENV_PREFIX}STORAGE__URL: required: where to keep the archive, "
            "e.g. s3://bucket/prefix or file:///var/lib/sms-archiver"
        )
    return settings
