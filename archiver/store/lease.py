"""The lease of a service, kept in the archive itself: one instance at a time works on a service.

The lease (``_state/{service}/lease.json``) keeps two instances from archiving one service at
once. It is taken and renewed with conditional writes (emulated, best effort, on a store that
does not enforce them: see ``archiver.store.S3Store``). A lease is stale, and may be taken over,
once it has expired or been released, or at once when its holder was a process of this host and
PID namespace that no longer runs (so that a restart after a crash or ``kill -9`` goes straight
on; a pid seen from another PID namespace, e.g. a container sharing only the network, says
nothing).

Each acquisition gets a **fencing token**, higher than every token written before under this
service. Every state write made under a lease checks first that the lease object still names
its holder, and refuses to replace a state written under a higher token (``state.save_state``):
an instance whose lease was taken over finds out before it writes, even where two takeovers
could both "win".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import structlog

from archiver.errors import LeaseHeldError, PreconditionFailed, StorageError
from archiver.naming import DIRECTIONS
from archiver.store import Store
from archiver.store.layout import lease_key, state_key

if TYPE_CHECKING:
    from archiver.config import LeaseSettings

__all__ = ["FENCE_METADATA", "Lease", "LeaseInfo", "current_pid_namespace", "is_stale", "read_lease", "stored_fence"]

log = structlog.get_logger()


# Object metadata holding the fencing token a state or lease object was written under.
FENCE_METADATA = "fence"


def stored_fence(store: Store, key: str) -> int:
    """The fencing token the object at ``key`` was written under (0: none, or no object)."""
    info = store.head(key)
    if info is None:
        return 0
    text = info.metadata.get(FENCE_METADATA)
    if text is None:
        # Written by an older version, or by a store that drops metadata: the document tells.
        try:
            document = json.loads(store.get(key))
        except (KeyError, ValueError):
            return 0
        text = str(document.get("fence", 0)) if isinstance(document, dict) else "0"
    try:
        return max(0, int(text))
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who holds a lease, and until when.

    ``pid_namespace``: which processes ``pid`` names (see ``current_pid_namespace``; "" unknown,
    as in leases written by older versions). ``fence``: the fencing token of this acquisition.
    ``released``: its holder gave it up (the object stays, so a release can be conditional).
    """

    owner: str
    host: str
    pid: int
    pid_started: str
    acquired: dt.datetime
    expires: dt.datetime
    pid_namespace: str = ""
    fence: int = 0
    released: bool = False

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "owner": self.owner,
                "host": self.host,
                "pid": self.pid,
                "pid_started": self.pid_started,
                "pid_namespace": self.pid_namespace,
                "acquired": self.acquired.isoformat(),
                "expires": self.expires.isoformat(),
                "fence": self.fence,
                "released": self.released,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseInfo | None:
        try:
            doc = json.loads(data)
            return cls(
                str(doc["owner"]),
                str(doc["host"]),
                int(doc["pid"]),
                str(doc.get("pid_started", "")),
                dt.datetime.fromisoformat(doc["acquired"]),
                dt.datetime.fromisoformat(doc["expires"]),
                pid_namespace=str(doc.get("pid_namespace") or ""),
                fence=int(doc.get("fence") or 0),
                released=doc.get("released") is True,
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None  # unreadable: treated as stale, since nobody could renew it

    def describe(self) -> str:
        since, expires = f"{self.acquired:%Y-%m-%d %H:%M:%S %Z}", f"{self.expires:%H:%M:%S %Z}"
        return f"pid {self.pid} on {self.host} since {since} (expires {expires})"


def current_pid_namespace() -> str:
    """Identify the space this process's pids live in: this kernel's boot and PID namespace.

    Two processes may compare pids only when this is equal and not "" (unknown): containers on
    one host (even sharing a hostname and network) each have their own PID namespace, and the
    same namespace inode on two machines (or after a reboot) is told apart by the boot id.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot}/{namespace}" if boot and namespace else ""


def _process_started(pid: int) -> str:
    """The start time of a process in clock ticks since boot, to tell a reused pid apart ("" if unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22 (starttime), counted after the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def _process_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not started or not (now_started := _process_started(pid)) or now_started == started


def is_stale(info: LeaseInfo | None, now: dt.datetime, *, host: str, pid_namespace: str) -> bool:
    """Whether a lease may be taken over: unreadable, released, expired, or its holder is dead.

    The holder's pid is looked at only when it lives in our PID namespace on our host (both
    known): elsewhere the same number names another process, or none, and only expiry counts.
    """
    if info is None or info.released or info.expires <= now:
        return True
    same_pid_space = info.host == host and bool(pid_namespace) and info.pid_namespace == pid_namespace
    return same_pid_space and not _process_alive(info.pid, info.pid_started)


class Lease:
    """The single-writer lease of one service, as a context manager.

    ``acquire`` raises ``LeaseHeldError`` when a live holder keeps it past ``wait_seconds``.
    ``renew`` extends it at once; ``renew_if_due`` only once a third of the TTL has gone (no I/O
    before: call it as often as you like, e.g. in every loop over records); call ``renew`` right
    before anything that cannot be undone (deleting). ``check_held`` looks whether the lease
    object still names us. All three raise ``LeaseHeldError`` once another instance has taken
    the lease over. ``release`` marks it released, only if it is still ours.
    """

    def __init__(
        self,
        store: Store,
        service: str,
        *,
        ttl_seconds: int,
        wait_seconds: int = 0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.service = service
        self.key = lease_key(service)
        self.ttl = dt.timedelta(seconds=ttl_seconds)
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.host = socket.gethostname()
        self.pid_namespace = current_pid_namespace()
        self.owner = uuid.uuid4().hex
        self.etag = ""
        self.info: LeaseInfo | None = None
        self._renewed_at = dt.datetime.min.replace(tzinfo=dt.UTC)

    @classmethod
    def on_service(cls, store: Store, service: str, settings: LeaseSettings) -> Lease:
        """The lease every action takes on a service before it touches its archive or its records at OVH."""
        return cls(store, service, ttl_seconds=settings.ttl_seconds, wait_seconds=settings.wait_seconds)

    @property
    def fence(self) -> int:
        """The fencing token of this holding (0 before ``acquire``)."""
        return self.info.fence if self.info is not None else 0

    def _new_info(self, fence: int, acquired: dt.datetime | None = None) -> LeaseInfo:
        now = self.clock()
        pid = os.getpid()
        return LeaseInfo(
            self.owner,
            self.host,
            pid,
            _process_started(pid),
            acquired or now,
            now + self.ttl,
            pid_namespace=self.pid_namespace,
            fence=fence,
        )

    def _write(self, info: LeaseInfo, *, etag: str | None) -> None:
        """Write ``info`` if the lease object is absent (``etag`` None) or still at ``etag``."""
        data, metadata = info.to_json(), {FENCE_METADATA: str(info.fence)}
        if etag is None:
            written = self.store.put_if_absent(self.key, data, metadata=metadata)
        else:
            written = self.store.put_if_match(self.key, data, etag, metadata=metadata)
        self.etag, self.info, self._renewed_at = written.etag, info, self.clock()

    def _highest_fence(self, holder: LeaseInfo | None) -> int:
        """The highest fencing token written so far under this service (lease and states)."""
        # The states too: the lease object may have been deleted (by hand, or by an older version).
        states = (stored_fence(self.store, state_key(self.service, direction)) for direction in DIRECTIONS)
        return max(holder.fence if holder else 0, *states)

    def _try_acquire(self) -> LeaseInfo | None:
        """Take the lease if free or stale; return the live holder otherwise."""
        current = self.store.head(self.key)
        try:
            if current is None:
                self._write(self._new_info(self._highest_fence(None) + 1), etag=None)
                return None
            holder = LeaseInfo.from_json(self.store.get(self.key))
            if not is_stale(holder, self.clock(), host=self.host, pid_namespace=self.pid_namespace):
                return holder
            if holder is None or not holder.released:
                log.warning(
                    "lease_taken_over",
                    service=self.service,
                    stale_holder=holder.describe() if holder else "?",
                )
            self._write(self._new_info(self._highest_fence(holder) + 1), etag=current.etag)
        except PreconditionFailed:
            # Lost a race: someone else has it now.
            return LeaseInfo.from_json(self._read_or_empty()) or self._new_info(0)
        except KeyError:
            return self._try_acquire()  # removed between head and get: try again
        return None

    def _read_or_empty(self) -> bytes:
        try:
            return self.store.get(self.key)
        except KeyError:
            return b""

    def acquire(self) -> Lease:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            holder = self._try_acquire()
            if holder is None:
                log.debug("lease_acquired", service=self.service, fence=self.fence)
                return self
            if time.monotonic() >= deadline:
                raise LeaseHeldError(
                    f"service {self.service} is being archived by another instance ({holder.describe()}); "
                    "try again later, or raise SMS_ARCHIVER_LEASE__WAIT_SECONDS to wait for it"
                )
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))

    def _lost(self) -> LeaseHeldError:
        return LeaseHeldError(f"lost the lease of service {self.service} to another instance; this instance stops here")

    def renew(self) -> None:
        """Extend the lease now; raise ``LeaseHeldError`` if someone took it over meanwhile."""
        assert self.info is not None, "renew() before acquire()"
        try:
            self._write(self._new_info(self.info.fence, self.info.acquired), etag=self.etag)
        except PreconditionFailed:
            raise self._lost() from None

    def renew_if_due(self) -> None:
        """Renew once a third of the TTL has passed since the last renewal; no I/O before that.

        Two thirds of the TTL are left then: a step slower than that between two calls would
        let the lease expire (keep steps shorter, or raise SMS_ARCHIVER_LEASE__TTL_SECONDS).
        """
        if self.info is not None and self.clock() >= self._renewed_at + self.ttl / 3:
            self.renew()

    def check_held(self) -> None:
        """Raise ``LeaseHeldError`` unless the lease object still names us (one head)."""
        assert self.info is not None, "check_held() before acquire()"
        current = self.store.head(self.key)
        if current is not None and current.etag == self.etag:
            return
        holder = LeaseInfo.from_json(self._read_or_empty())
        if current is not None and holder == self.info:
            self.etag = current.etag  # ours, under an etag the store reports differently
            return
        raise self._lost()

    def release(self) -> None:
        """Mark the lease released, only if it is still ours (a takeover meanwhile is left alone).

        A conditional write, not a delete: between a look at the object and a delete, another
        instance could take it over, and the delete would remove its lease.
        """
        if self.info is None:
            return
        released = dataclasses.replace(self.info, expires=self.clock(), released=True)
        try:
            self._write(released, etag=self.etag)
        except PreconditionFailed:
            log.warning(
                "lease_release_lost",
                service=self.service,
                reason="another instance took the lease over meanwhile; left to it",
            )
        finally:
            self.info = None

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self.release()
        except StorageError as error:
            log.warning("lease_release_failed", service=self.service, error=str(error))


def read_lease(store: Store, service: str) -> LeaseInfo | None:
    """The current holder of a service's lease, or None when nobody holds it (absent or released)."""
    try:
        info = LeaseInfo.from_json(store.get(lease_key(service)))
    except KeyError:
        return None
    return None if info is not None and info.released else info
