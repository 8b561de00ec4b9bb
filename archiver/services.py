"""Which services an action works on: the one place that decides it.

Three rules, by what the action needs:

- ``services_at_ovh``: archiving and retention talk to OVH, so they act on the configured services
  (``SMS_ARCHIVER_OVH__SERVICES``), or else on every service the account has;
- ``services_to_maintain``: compaction and verification only read and rewrite the archive, so they
  act on the configured services, or else on every service the archive holds;
- ``services_known``: status and the reading commands show the configured services *and* every one
  the archive holds (a service dropped from the settings is still there to read), or the one asked
  for, which must be one of them.

Several OVH accounts (``SMS_ARCHIVER_ACCOUNTS``): ``Accounts`` opens one ``OvhSource`` per account
(its own rate limiter and retry policy) and runs an action once per account, with settings whose
``ovh`` is that account. OVH service names are unique across OVH, so every account's services live
at the archive's root as with one account (the object layout does not change): a service named
under two accounts is refused by the settings, and a service *discovered* in two accounts (no
services list: an API key that sees another account's service) is worked on under the first account
in name order only, with a ``service_in_two_accounts`` warning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import structlog

from archiver.config import OvhSettings, Settings
from archiver.errors import ConfigError, CycleInterrupted
from archiver.naming import check_service_name
from archiver.reader import archived_services
from archiver.store import Store

if TYPE_CHECKING:
    from archiver.source import OvhSource

__all__ = ["Accounts", "holds_service", "services_at_ovh", "services_known", "services_to_maintain"]

log = structlog.get_logger()

T = TypeVar("T")


def services_at_ovh(ovh: OvhSettings, source: OvhSource) -> list[str]:
    """The configured services, else every SMS service of the OVH account (one API call)."""
    return list(ovh.services) or source.list_services()


def services_to_maintain(ovh: OvhSettings, store: Store) -> list[str]:
    """The configured services, else every service the archive holds."""
    return list(ovh.services) or archived_services(store)


def holds_service(store: Store, service: str) -> bool:
    """Whether the archive has a folder or a cursor for ``service`` (reads one key, not the whole listing)."""
    try:
        check_service_name(service)
    except ValueError:
        return False
    for prefix in (f"{service}/", f"_state/{service}/"):
        for _info in store.list(prefix):
            return True
    return False


def services_known(ovh: OvhSettings, store: Store, wanted: str | None = None) -> list[str]:
    """The configured services and those the archive holds; only ``wanted`` if given.

    ``wanted`` must be configured or held by the archive, else ``ConfigError`` names the known ones.
    """
    if wanted and (wanted in ovh.services or holds_service(store, wanted)):
        return [wanted]
    known = sorted(set(ovh.services) | set(archived_services(store)))
    if wanted:
        if wanted not in known:
            raise ConfigError(
                f"--service {wanted}: no such service in the archive at {store.describe()} nor in the settings; "
                + (f"known: {', '.join(known)}" if known else "the archive holds no service yet")
            )
        return [wanted]
    return known


class Accounts:
    """The OVH accounts of the settings, each with its own source; closed when the block ends.

    Without ``accounts`` in the settings there is one, "default", whose source is built from ``ovh``:
    an action then runs exactly as it always did.
    """

    def __init__(self, settings: Settings) -> None:
        # Here, not at the top: the OVH client (python-ovh, requests) only for the commands that talk to OVH,
        # not for those that only read the archive and import this module for ``services_known`` (start-up time).
        from archiver.source import OvhSource

        self.settings = settings
        self.sources: dict[str, OvhSource] = {}
        try:
            for name in settings.account_names():
                account = settings.for_account(name).ovh
                if settings.accounts and not account.has_credentials:
                    raise ConfigError(
                        f"invalid settings:\n  SMS_ARCHIVER_ACCOUNTS__{name.upper()}__APPLICATION_KEY: required "
                        "(with APPLICATION_SECRET and CONSUMER_KEY), or CLIENT_ID with CLIENT_SECRET"
                    )
                self.sources[name] = OvhSource(account)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Accounts:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for source in self.sources.values():
            source.close()

    def run(self, work: Callable[[Settings, OvhSource], T]) -> list[tuple[str, T]]:
        """Call ``work(settings, source)`` once per account, in name order; return each account's result.

        ``settings.ovh`` is the account's, with the services it works on this time (see the module's
        rule for a service seen in two accounts); an account left with no service is not worked on.
        One account's failure does not keep the others from their turn: once every account had it,
        the first failure is raised (each logged with its account). A ``CycleInterrupted`` (a stop)
        ends the run at once.
        """
        if len(self.sources) == 1:
            ((name, source),) = self.sources.items()
            return [(name, work(self.settings.for_account(name), source))]
        results: list[tuple[str, T]] = []
        failures: list[Exception] = []
        taken: dict[str, str] = {}
        for name, source in self.sources.items():
            settings = self.settings.for_account(name)
            try:
                services = []
                for service in services_at_ovh(settings.ovh, source):
                    if service in taken:
                        log.warning(
                            "service_in_two_accounts", service=service, account=name, worked_on_by=taken[service]
                        )
                        continue
                    taken[service] = name
                    services.append(service)
                if not services:
                    log.info("account_without_services", account=name)
                    continue
                ovh = settings.ovh.model_copy(update={"services": services})
                results.append((name, work(settings.model_copy(update={"ovh": ovh}), source)))
            except CycleInterrupted:
                raise
            except Exception as error:
                log.error("account_failed", account=name, error_type=type(error).__name__, error=str(error))
                failures.append(error)
        if failures:
            raise failures[0]
        return results

    def calls(self) -> dict[str, int]:
        """Every source's API calls by outcome, summed: running totals that only grow."""
        total: Counter[str] = Counter()
        for source in self.sources.values():
            total.update(source.calls)
        return dict(total)

    def retries(self) -> int:
        """Every source's retries, summed."""
        return sum(source.retries for source in self.sources.values())
