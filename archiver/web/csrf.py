"""CSRF tokens for the page's forms (deleting at OVH): bound to the user, valid for a while, unforgeable.

A token is ``{expiry}.{mac}``: the expiry (Unix seconds) and an HMAC-SHA256, under a secret drawn at
random when the process starts, of the user's name and that expiry. Nothing is stored: a token is
valid if its MAC is right for the user asking and it has not expired. A restart voids every token
(the secret is new), which only costs a reload of the page.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable

__all__ = ["CsrfTokens"]

LIFETIME_SECONDS = 3600


class CsrfTokens:
    def __init__(
        self,
        secret: bytes | None = None,
        *,
        lifetime: int = LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret or os.urandom(32)
        self.lifetime = lifetime
        self.clock = clock

    def _mac(self, user: str, expiry: int) -> str:
        # The NUL separates the name from the expiry: no (user, expiry) pair can spell another's message.
        message = user.encode("utf-8", "surrogatepass") + b"\0" + str(expiry).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def issue(self, user: str) -> str:
        expiry = int(self.clock()) + self.lifetime
        return f"{expiry}.{self._mac(user, expiry)}"

    def valid(self, token: str, user: str) -> bool:
        """Whether ``token`` was issued by this process to ``user``, and has not expired."""
        expiry_text, sep, mac = token.partition(".")
        if not sep or not expiry_text.isascii() or not expiry_text.isdigit() or len(expiry_text) > 12:
            return False
        expiry = int(expiry_text)
        if str(expiry) != expiry_text:  # one spelling per expiry: no leading zeros
            return False
        now = self.clock()
        if expiry < now or expiry > now + self.lifetime:
            return False
        return hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(user, expiry).encode())
