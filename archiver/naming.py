"""What services and directions are called: the names every layer shares, and the rule for a service name.

A service name becomes the first segment of every key the archive writes, so it is checked here,
once, before it reaches a key or a setting.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["DIRECTIONS", "Direction", "check_service_name"]

Direction = Literal["outgoing", "incoming"]
DIRECTIONS: tuple[Direction, ...] = ("outgoing", "incoming")

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_service_name(service: str) -> str:
    """Refuse a service name that could escape its place in the key space."""
    if not _SERVICE_NAME.match(service) or service.startswith(("_", ".")):
        raise ValueError(f"unexpected SMS service name {service!r}")
    return service
