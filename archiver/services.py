"""Which services an action works on: the one place that decides it.

Three rules, by what the action needs:

- ``services_at_ovh``: archiving and retention talk to OVH, so they act on the configured services
  (``SMS_ARCHIVER_OVH__SERVICES``), or else on every service the account has;
- ``services_to_maintain``: compaction and verification only read and rewrite the archive, so they
  act on the configured services, or else on every service the archive holds;
- ``services_known``: status and the reading commands show the configured services *and* every one
  the archive holds (a service dropped from the settings is still there to read), or the one asked
  for, which must be one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archiver.errors import ConfigError
from archiver.naming import check_service_name
from archiver.reader import archived_services
from archiver.store import Store

if TYPE_CHECKING:
    from archiver.config import OvhSettings
    from archiver.source import OvhSource

__all__ = ["holds_service", "services_at_ovh", "services_known", "services_to_maintain"]


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
