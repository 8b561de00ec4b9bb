"""``sms-archiver check-config`` and the daemon's start-up check: do OVH and the storage answer?

The checks both run, in one place:

- ``check_storage``: the store is reachable and takes writes (``Store.check``);
- ``check_ovh_services``: OVH answers for the services to archive: each configured service, or
  else the account's list of services (one call), which names them;
- ``run_check``: every check (settings, OVH credentials and clock, each configured service, of
  each OVH account; the storage and its conditional writes), each reported as a ``CheckResult`` instead of stopping at
  the first failure, for ``check-config`` to print.

The daemon stops at the first failure, with the error that says why (systemd restarts it later).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archiver.errors import ArchiverError
from archiver.source import CLOCK_TOLERANCE_SECONDS, OvhSource
from archiver.store import LocalStore, Store, open_store

if TYPE_CHECKING:
    from archiver.config import OvhSettings, Settings
    from archiver.store import S3Store  # a type only: boto3 is imported when an s3:// store is opened

__all__ = ["CheckResult", "check_ovh_services", "check_storage", "run_check"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's answer: what was checked, and either a detail (passed) or the error (failed)."""

    what: str
    detail: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_storage(store: Store) -> None:
    """Prove the store is reachable and writable; raise ``StorageError`` saying why not."""
    store.check()


def check_ovh_services(ovh: OvhSettings, source: OvhSource) -> list[str]:
    """Prove OVH answers for each configured service, or list the account's; return the services.

    Each configured service is asked for by name, so that an API key restricted to those services
    passes. Raises the first ``ArchiverError`` (credentials refused, unknown service, OVH down).
    """
    if not ovh.services:
        return source.list_services()
    for service in ovh.services:
        source.check_service(service)
    return list(ovh.services)


def run_check(settings: Settings) -> list[CheckResult]:
    """Every check, in the order ``check-config`` prints them; a failed check does not stop the next.

    Opens the OVH source and the store itself, so that settings neither can be built from (e.g.
    an endpoint python-ovh refuses) are reported like any other failure.
    """
    endpoints = ", ".join(
        f"{name}: {settings.for_account(name).ovh.endpoint}" if settings.accounts else settings.ovh.endpoint
        for name in settings.account_names()
    )
    which = "OVH accounts (endpoints)" if settings.accounts else "OVH endpoint"
    results = [CheckResult("settings", f"storage {settings.storage.url}, {which} {endpoints}")]
    for name in settings.account_names():
        account = settings.for_account(name).ovh
        # With several accounts, each check names its account.
        label = f"account {name}: " if settings.accounts else ""
        if settings.accounts and not account.has_credentials:
            setting = f"SMS_ARCHIVER_ACCOUNTS__{name.upper()}__APPLICATION_KEY"
            needed = "required (with APPLICATION_SECRET and CONSUMER_KEY), or CLIENT_ID with CLIENT_SECRET"
            results.append(CheckResult(f"{label}OVH API", error=f"{setting}: {needed}"))
            continue
        try:
            with OvhSource(account) as source:
                results += [
                    CheckResult(label + result.what, result.detail, result.error)
                    for result in _ovh_results(account, source)
                ]
        except ArchiverError as error:
            results.append(CheckResult(f"{label}OVH API", error=str(error)))
    try:
        store = open_store(settings.storage)
    except ArchiverError as error:
        return [*results, CheckResult("storage", error=str(error))]
    return results + _storage_results(store)


def _ovh_results(ovh: OvhSettings, source: OvhSource) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        services = source.list_services()
        results.append(
            CheckResult("OVH credentials", f"{len(services)} SMS service(s): {', '.join(services) or 'none'}")
        )
        offset = source.clock_offset_seconds()
        clock = f"OVH's clock minus this machine's: {offset} s"
        if abs(offset) > CLOCK_TOLERANCE_SECONDS:
            clock += " (windows and cutoffs use OVH's clock; synchronise this machine's with NTP)"
        results.append(CheckResult("clock", clock))
        for service in ovh.services:
            try:
                source.check_service(service)
                results.append(CheckResult(f"OVH service {service}"))
            except ArchiverError as error:
                results.append(CheckResult(f"OVH service {service}", error=str(error)))
    except ArchiverError as error:
        results.append(CheckResult("OVH API", error=str(error)))
    return results


def _storage_results(store: S3Store | LocalStore) -> list[CheckResult]:
    try:
        check_storage(store)
    except ArchiverError as error:
        return [CheckResult("storage", error=str(error))]
    if store.conditional_writes_supported:
        writes = "enforced by the store: the single-writer lease is a real fence"
    else:
        writes = f"emulated ({store.emulation_reason}): best effort, each write read back, fencing tokens on state"
    return [
        CheckResult("storage", store.describe() + " is reachable and writable"),
        CheckResult("conditional writes", writes),
    ]
