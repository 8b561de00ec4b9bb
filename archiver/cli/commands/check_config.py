"""``check-config``: the settings are valid, and OVH and the storage answer with them."""

from __future__ import annotations

import argparse

from archiver.cli.wiring import ovh_source, settings_from
from archiver.errors import ArchiverError
from archiver.source import CLOCK_TOLERANCE_SECONDS
from archiver.store import open_store

__all__ = ["cmd_check_config"]


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    problems = 0

    def report(what: str, error: Exception | None, detail: str = "") -> None:
        nonlocal problems
        if error is None:
            print(f"ok    {what}{': ' + detail if detail else ''}")
        else:
            problems += 1
            print(f"FAIL  {what}: {error}")

    report("settings", None, f"storage {settings.storage.url}, OVH endpoint {settings.ovh.endpoint}")
    try:
        with ovh_source(settings) as source:
            services = source.list_services()
            report("OVH credentials", None, f"{len(services)} SMS service(s): {', '.join(services) or 'none'}")
            offset = source.clock_offset_seconds()
            clock = f"OVH's clock minus this machine's: {offset} s"
            if abs(offset) > CLOCK_TOLERANCE_SECONDS:
                clock += " (windows and cutoffs use OVH's clock; synchronise this machine's with NTP)"
            report("clock", None, clock)
            for service in settings.ovh.services:
                try:
                    source.check_service(service)
                    report(f"OVH service {service}", None)
                except ArchiverError as error:
                    report(f"OVH service {service}", error)
    except ArchiverError as error:
        report("OVH API", error)
    try:
        store = open_store(settings.storage)
        store.check()
        report("storage", None, store.describe() + " is reachable and writable")
        if store.conditional_writes_supported:
            report("conditional writes", None, "enforced by the store: the single-writer lease is a real fence")
        else:
            report(
                "conditional writes",
                None,
                f"emulated ({store.emulation_reason}): best effort, each write read back, fencing tokens on state",
            )
    except ArchiverError as error:
        report("storage", error)
    return 1 if problems else 0
