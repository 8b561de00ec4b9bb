"""Who is asking: HTTP Basic against an htpasswd file (bcrypt), or a trusted reverse proxy's header.

- No authentication configured (allowed on a loopback address only, see ``WebSettings``): every
  request is served, as user ``-``.
- ``htpasswd_file``: Apache's ``htpasswd -B`` format, ``user:$2y$...`` per line; only bcrypt hashes
  are accepted (the MD5 and SHA-1 forms are too weak for personal data, and refused at start-up).
- ``trusted_user_header``: believed only when the connection itself comes from one of
  ``trusted_proxies`` (the peer address of the TCP connection; forwarded-for headers are not
  trusted for this). From any other address the header is ignored, as if absent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from archiver.config import WebSettings
from archiver.errors import ConfigError

__all__ = ["ANONYMOUS", "Authenticator", "read_htpasswd"]

ANONYMOUS = "-"
_BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
_CACHE_LIMIT = 1024


def read_htpasswd(path: Path) -> dict[str, bytes]:
    """Users and their bcrypt hashes; ``ConfigError`` naming the setting on anything else."""
    setting = "SMS_ARCHIVER_WEB__HTPASSWD_FILE"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{setting}: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{setting}: {path}: cannot be read ({error})") from None
    users: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, hashed = line.strip().partition(":")
        if not sep or not user:
            raise ConfigError(f"{setting}: {path}, line {number}: expected user:hash")
        if not hashed.startswith(_BCRYPT_PREFIXES):
            raise ConfigError(
                f"{setting}: {path}, line {number}: user {user!r} has no bcrypt hash (create it with htpasswd -B)"
            )
        users[user] = hashed.encode()
    if not users:
        raise ConfigError(f"{setting}: {path}: no users (add one with htpasswd -B {path} NAME)")
    return users


@dataclass(frozen=True, slots=True)
class Verdict:
    user: str | None  # None: not authenticated
    challenge: bool  # answer 401 with a Basic challenge


class Authenticator:
    def __init__(self, settings: WebSettings) -> None:
        self.users = read_htpasswd(Path(settings.htpasswd_file)) if settings.htpasswd_file else None
        self.header: str | None = settings.trusted_user_header.lower() if settings.trusted_user_header else None
        self.proxies = [ipaddress.ip_network(item, strict=False) for item in settings.trusted_proxies]
        # bcrypt is slow on purpose (~0.1-0.3 s a check): remember passwords already checked, as a keyed
        # digest, so that each page of a session does not pay it again.
        self._key = os.urandom(32)
        self._checked: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        return self.users is not None or self.header is not None

    def identify(self, peer: str | None, headers: Mapping[str, str]) -> Verdict:
        if not self.required:
            return Verdict(ANONYMOUS, challenge=False)
        if self.header is not None and peer is not None and self._trusted(peer):
            user = headers.get(self.header, "").strip()
            if user:
                return Verdict(user, challenge=False)
        if self.users is not None:
            checked = self._basic(headers.get("authorization", ""))
            return Verdict(checked, challenge=checked is None)
        return Verdict(None, challenge=False)

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def _basic(self, authorization: str) -> str | None:
        scheme, _sep, encoded = authorization.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return None
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        assert self.users is not None
        hashed = self.users.get(user)
        if not sep or hashed is None:
            return None
        digest = hmac.new(self._key, f"{user}\0{password}\0".encode() + hashed, hashlib.sha256).digest()
        with self._lock:
            if digest in self._checked:
                return user
        if not bcrypt.checkpw(password.encode(), hashed):
            return None
        with self._lock:
            if len(self._checked) >= _CACHE_LIMIT:
                self._checked.clear()
            self._checked.add(digest)
        return user
