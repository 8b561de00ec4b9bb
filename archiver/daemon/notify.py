"""systemd's notify protocol (``sd_notify``), without a dependency: one datagram per message.

Under ``Type=notify`` systemd sets ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket) and waits for ``READY=1``; ``STATUS=`` text shows in ``systemctl status``; ``STOPPING=1``
says a stop has begun. With ``WatchdogSec=`` it also sets ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``) and restarts the service when no ``WATCHDOG=1`` arrives within that period:
``Heartbeat`` sends one every half period, but only while the daemon says it is healthy, so that
a stalled scheduler is restarted instead of being kept alive by a thread that knows nothing of it.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing. A failed send is logged once and
never raised: the archive does not depend on systemd hearing from it.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping

import structlog

__all__ = ["Heartbeat", "Notifier", "start_heartbeat", "watchdog_interval"]

log = structlog.get_logger()


def _address(name: str) -> str | bytes:
    # A leading "@" names a socket in the abstract namespace, which the kernel spells with a NUL.
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


class Notifier:
    """Send sd_notify messages to ``$NOTIFY_SOCKET`` (or to ``socket_name``); a no-op without one."""

    def __init__(self, socket_name: str | None = None, *, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.socket_name = socket_name if socket_name is not None else environ.get("NOTIFY_SOCKET", "")
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return bool(self.socket_name)

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; return whether it was sent."""
        if not self.socket_name:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, _address(self.socket_name))
        except OSError as error:
            with self._lock:
                warned, self._warned = self._warned, True
            if not warned:
                log.warning("notify_failed", error=error.strerror or type(error).__name__)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={_one_line(text)}")

    def stopping(self, status: str = "") -> bool:
        return self.send("STOPPING=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")


def _one_line(text: str) -> str:
    # A newline would start another KEY=value field of the message.
    return " ".join(text.split())[:500]


def watchdog_interval(environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> float | None:
    """The watchdog period in seconds from ``$WATCHDOG_USEC``, or ``None`` when none applies to us.

    ``$WATCHDOG_PID``, when set, names the process the watchdog is meant for: a child that inherited
    the variables must not answer for its parent.
    """
    environ = os.environ if environ is None else environ
    usec, owner = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != (pid if pid is not None else os.getpid())):
        return None
    return int(usec) / 1_000_000


class Heartbeat:
    """A thread sending ``WATCHDOG=1`` every ``interval`` seconds while ``healthy()`` is true.

    ``stop()`` ends it promptly (the thread waits on an event, not a sleep).
    """

    def __init__(self, notifier: Notifier, interval: float, healthy: Callable[[], bool]) -> None:
        self.notifier = notifier
        self.interval = interval
        self.healthy = healthy
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        reported_unhealthy = False
        while True:
            if self.healthy():
                reported_unhealthy = False
                if self.notifier.watchdog():
                    self.beats += 1
            elif not reported_unhealthy:
                # Say it once: systemd will restart us when the watchdog period runs out.
                reported_unhealthy = True
                log.error("watchdog_withheld", reason="the scheduler is not running")
            if self._stop.wait(self.interval):
                return


def start_heartbeat(
    notifier: Notifier, healthy: Callable[[], bool], *, environ: Mapping[str, str] | None = None
) -> Heartbeat | None:
    """Start a heartbeat at half the watchdog period systemd asked for; ``None`` when it asked for none."""
    period = watchdog_interval(environ)
    if period is None or not notifier.enabled:
        return None
    log.debug("watchdog_heartbeat", every_seconds=period / 2)
    return Heartbeat(notifier, period / 2, healthy).start()
