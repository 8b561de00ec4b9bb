"""From the command line's options to what the actions need: settings, the store, a service.

The OVH sources, one per account, come from ``archiver.services.Accounts``.
"""

from __future__ import annotations

import argparse
import sys

from archiver.config import Settings, load_settings
from archiver.errors import ConfigError
from archiver.logs import configure_logging
from archiver.naming import DIRECTIONS, Direction
from archiver.services import services_known
from archiver.store import LocalStore, Store, open_store

__all__ = [
    "chosen_directions",
    "note_if_empty",
    "one_service",
    "reading_store",
    "settings_from",
]


def settings_from(args: argparse.Namespace, *, archive_only: bool = False) -> Settings:
    """The settings (``--config``, environment, secret files), logging configured by them and the options.

    ``archive_only``: for a command that makes no OVH call, ``ovh.services`` names every account's
    services (``Settings.archive_wide``). Raises ``ConfigError`` naming each wrong setting.
    """
    settings = load_settings(args.config)
    configure_logging(args.log_level or settings.log.level, args.log_format or settings.log.format)
    return settings.archive_wide() if archive_only else settings


def reading_store(settings: Settings) -> Store:
    """The store, for a command that only reads: a local archive directory that does not exist is an error.

    Writers create the directory on their first write; a reader would silently show an empty archive.
    """
    store = open_store(settings.storage)
    if isinstance(store, LocalStore) and not store.directory.is_dir():
        raise ConfigError(
            f"SMS_ARCHIVER_STORAGE__URL (storage.url): {store.describe()}: no such directory; "
            "check the path, or run 'sms-archiver archive' or 'backfill' to start an archive there"
        )
    return store


def one_service(settings: Settings, store: Store, wanted: str | None) -> str:
    """The service a single-service command works on: ``wanted`` (``--service``), or the only one known.

    Raises ``ConfigError`` when none is known, or several and none was chosen.
    """
    services = services_known(settings.ovh, store, wanted)
    if len(services) == 1:
        return services[0]
    if not services:
        raise ConfigError(
            f"the archive at {store.describe()} holds no service yet (run 'sms-archiver archive' or 'backfill' first)"
        )
    raise ConfigError(f"the archive holds several services; choose one with --service: {', '.join(services)}")


def chosen_directions(args: argparse.Namespace) -> list[Direction]:
    """The ``--direction`` given, else both."""
    return [args.direction] if args.direction else list(DIRECTIONS)


def note_if_empty(store: Store, services: list[str]) -> None:
    """Say on stderr that the archive holds nothing yet, so that an empty table is not taken for a failure."""
    if not services:
        print(f"note: nothing archived yet in {store.describe()}", file=sys.stderr)
