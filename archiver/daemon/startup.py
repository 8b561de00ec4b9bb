"""The daemon's start-up check, the one systemd waits for before ``READY=1``.

The settings are valid (checked by the caller); then the store answers and takes writes, and OVH
answers for the services to archive (``archiver.actions.check``, the same checks as
``sms-archiver check-config``). A failed check raises the ``ArchiverError`` that says why, prefixed
with which side failed, so the CLI exits non-zero and ``Restart=on-failure`` retries later.

Once both sides answer, the metrics start from what the archive remembers: when each service and
direction last completed a cycle, so that ``/healthz`` judges a restarted daemon by the archive's
age, not by its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from archiver.actions.check import check_ovh_services, check_storage
from archiver.actions.status import last_cycles_finished
from archiver.config import Settings
from archiver.errors import ArchiverError, StorageError
from archiver.metrics import Metrics
from archiver.services import Accounts
from archiver.source import OvhSource
from archiver.store import Store, open_store

__all__ = ["Connected", "connect_both_sides"]

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Connected:
    """Both sides, checked: the store, the OVH accounts and their sources (the caller closes them), the services."""

    store: Store
    accounts: Accounts
    services: list[str]

    @property
    def source(self) -> OvhSource:
        """The first account's source: a configuration's one source when it has one account."""
        return next(iter(self.accounts.sources.values()))


def connect_both_sides(settings: Settings, metrics: Metrics) -> Connected:
    """Open and check the store, then OVH (each account); seed the metrics from the archive.

    Raise ``ArchiverError`` on a failure.
    """
    store = open_store(settings.storage)
    try:
        check_storage(store)
    except StorageError as error:
        raise StorageError(f"start-up check of the storage failed: {error}") from error
    accounts = Accounts(settings)
    services: list[str] = []
    try:
        for name, source in accounts.sources.items():
            account = settings.for_account(name)
            try:
                found = check_ovh_services(account.ovh, source)
            except ArchiverError as error:
                which = f" (account {name})" if settings.accounts else ""
                raise type(error)(f"start-up check of the OVH API{which} failed: {error}") from error
            services += [service for service in found if service not in services]
    except BaseException:
        accounts.close()
        raise
    metrics.observe_source(accounts.calls(), accounts.retries())
    metrics.set_service_accounts(settings.account_of_services())
    finished = last_cycles_finished(store, services, settings.archive.directions)
    for (service, direction), when in finished.items():
        metrics.seed_last_success(service, direction, when.timestamp())
    log.info("start_up_checks_passed", storage=store.describe(), services=services)
    return Connected(store, accounts, services)
