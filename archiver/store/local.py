"""``LocalStore``: the archive in a directory on this host (atomic, durable writes; metadata in sidecars)."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from archiver.errors import PreconditionFailed, StorageError
from archiver.store.base import ObjectInfo, ObjectVersion, bare_etag, check_key, check_prefix, normalize_metadata

if TYPE_CHECKING:
    pass


def _md5_of_stream(stream: BinaryIO) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """Make renames and unlinks in ``directory`` durable (a file's own fsync does not cover them)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(directory: Path, data: bytes) -> Path:
    """Write ``data`` durably to a new hidden temporary file in ``directory``; return its path.

    Same directory as the target, so the final ``os.replace``/``os.link`` is a rename within
    one filesystem. Temporary files are created mode 0600: the archive holds private messages.
    """
    fd, name = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def _mtime(result: os.stat_result) -> dt.datetime:
    return dt.datetime.fromtimestamp(result.st_mtime, tz=dt.UTC)


class LocalStore:
    """A directory on this host: atomic, durable writes; metadata in hidden sidecar files.

    An object ``a/b.csv`` lives at ``<directory>/a/b.csv``; its metadata, if any, in
    ``<directory>/a/.b.csv.meta.json`` together with the etag of the content it belongs to, so
    a sidecar left behind by an interrupted write is recognised and ignored.
    ``put_if_absent`` is atomic (a hard link fails if the target exists). ``put_if_match``
    holds an ``flock`` on ``.b.csv.lock`` for its read-compare-replace: that excludes writers on
    this host, which is all a local directory is meant to serve (not NFS shared between hosts).
    Unlike S3, a key cannot be both an object and a "directory" of others (``a/b`` and ``a/b/c``):
    the second write raises ``StorageError``.
    """

    conditional_writes_supported = True
    emulation_reason = ""  # as on S3Store: conditional writes here are real (a link, a file lock)
    # A read is a copy from the page cache: reading ahead in threads costs more in GIL handovers (each
    # waits up to the switch interval behind the thread sorting a day) than the copy it would hide.
    parallel_reads = 1

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).absolute()

    def describe(self) -> str:
        return self.directory.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.directory)!r})"

    def _path(self, key: str) -> Path:
        return self.directory.joinpath(*check_key(key).split("/"))

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(f".{path.name}.meta.json")

    def _error(self, operation: str, key: str, path: Path, exc: OSError) -> StorageError:
        reason = exc.strerror or str(exc)
        code = errno.errorcode.get(exc.errno or 0, "")
        return StorageError(
            f"{operation} {key!r} in {self.describe()} failed at {exc.filename or path}: {reason}"
            + (f" ({code})" if code else "")
        )

    def _ensure_directory(self, directory: Path) -> None:
        """Create ``directory`` and its missing parents, making each new entry durable."""
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            missing.append(current)
            if current.parent == current:
                break
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                if not path.is_dir():
                    raise
                continue  # another writer created it meanwhile
            _fsync_directory(path.parent)

    def check(self) -> None:
        """Prove the directory can be created and written: write, fsync and remove a probe file."""
        try:
            self._ensure_directory(self.directory)
            _write_temp(self.directory, b"probe\n").unlink()
        except OSError as exc:
            raise StorageError(
                f"check of {self.describe()} failed at {exc.filename or self.directory}:"
                f" {exc.strerror or exc}; the directory must be creatable and writable by this user"
            ) from exc

    def _replace(self, key: str, path: Path, data: bytes, metadata: dict[str, str]) -> ObjectInfo:
        """Write ``data`` and its metadata at ``path``, replacing what is there (OSError escapes)."""
        self._ensure_directory(path.parent)
        temporary = _write_temp(path.parent, data)
        try:
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        # Object first, then sidecar: a crash in between leaves the previous sidecar, whose etag
        # no longer matches, rather than the new metadata on the old object.
        self._write_sidecar(path, etag, metadata)
        _fsync_directory(path.parent)
        return ObjectInfo(key, len(data), _mtime(path.stat()), etag, dict(metadata))

    def _write_sidecar(self, path: Path, etag: str, metadata: dict[str, str]) -> None:
        sidecar = self._sidecar(path)
        if not metadata:
            sidecar.unlink(missing_ok=True)
            return
        document = json.dumps({"etag": etag, "metadata": metadata}, sort_keys=True).encode()
        temporary = _write_temp(path.parent, document)
        try:
            os.replace(temporary, sidecar)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def put(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None, lock: bool = False) -> ObjectInfo:
        # ``lock`` has no meaning for a directory (settings refuse Object Lock without s3://).
        path = self._path(key)
        normalized = normalize_metadata(metadata)
        try:
            return self._replace(key, path, data, normalized)
        except OSError as exc:
            raise self._error("put", key, path, exc) from exc

    def put_if_absent(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        path = self._path(key)
        normalized = normalize_metadata(metadata)
        try:
            self._ensure_directory(path.parent)
            temporary = _write_temp(path.parent, data)
            try:
                # link() refuses an existing target, atomically: exactly one concurrent writer wins.
                os.link(temporary, path)
            except FileExistsError:
                raise PreconditionFailed(
                    f"put_if_absent {key!r} in {self.describe()}: an object already exists at {path}"
                ) from None
            finally:
                temporary.unlink(missing_ok=True)
            etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
            self._write_sidecar(path, etag, normalized)
            _fsync_directory(path.parent)
            written = _mtime(path.stat())
        except OSError as exc:
            raise self._error("put_if_absent", key, path, exc) from exc
        return ObjectInfo(key, len(data), written, etag, normalized)

    def put_if_match(self, key: str, data: bytes, etag: str, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        path = self._path(key)
        normalized = normalize_metadata(metadata)
        expected = bare_etag(etag)
        try:
            if not path.is_file():
                # Checked before locking so a failed attempt leaves no lock file behind.
                raise PreconditionFailed(f"put_if_match {key!r} in {self.describe()}: the object does not exist")
            with self._locked(path):
                try:
                    with path.open("rb") as stream:
                        current = _md5_of_stream(stream)
                except FileNotFoundError:
                    current = None
                if current != expected:
                    raise PreconditionFailed(f"put_if_match {key!r} in {self.describe()}: the object changed")
                return self._replace(key, path, data, normalized)
        except OSError as exc:
            raise self._error("put_if_match", key, path, exc) from exc

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        # The lock file is never removed: unlinking it could let two writers lock different inodes.
        fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def get(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise KeyError(key) from exc
        except OSError as exc:
            raise self._error("get", key, path, exc) from exc

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            try:
                stream = path.open("rb")
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
            # One descriptor for size, time and hash, so they describe the same content.
            with stream:
                result = os.fstat(stream.fileno())
                if not stat.S_ISREG(result.st_mode):
                    return None
                etag = _md5_of_stream(stream)
            metadata = self._read_sidecar(path, etag)
        except OSError as exc:
            raise self._error("head", key, path, exc) from exc
        return ObjectInfo(key, result.st_size, _mtime(result), etag, metadata)

    def _read_sidecar(self, path: Path, etag: str) -> dict[str, str]:
        sidecar = self._sidecar(path)
        try:
            document = json.loads(sidecar.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise StorageError(f"metadata file {sidecar} is not valid JSON: {exc}") from exc
        if not isinstance(document, dict) or document.get("etag") != etag:
            return {}  # left by an interrupted write: it belongs to other content
        metadata = document.get("metadata")
        return {str(name): str(value) for name, value in metadata.items()} if isinstance(metadata, dict) else {}

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            for victim in (path, self._sidecar(path)):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    victim.unlink()
            if path.parent.is_dir():
                _fsync_directory(path.parent)
        except OSError as exc:
            raise self._error("delete", key, path, exc) from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        prefix = check_prefix(prefix)
        directory_segments = prefix.split("/")[:-1]
        start = self.directory.joinpath(*directory_segments)
        yield from self._walk(start, "/".join(directory_segments), prefix)

    def _walk(self, directory: Path, directory_key: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as scan:
                entries = [entry for entry in scan if not entry.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise self._error("list", prefix, directory, exc) from exc
        # Sorting directories as "name/" yields whole keys in code point order, the order S3 uses:
        # every key below "a/" sorts exactly where "a/" does among its siblings.
        named = []
        for entry in entries:
            key = f"{directory_key}/{entry.name}" if directory_key else entry.name
            is_directory = entry.is_dir(follow_symlinks=False)
            named.append((key + "/" if is_directory else key, key, is_directory, entry))
        named.sort(key=lambda item: item[0])
        for sort_key, key, is_directory, entry in named:
            if is_directory:
                if sort_key.startswith(prefix) or prefix.startswith(sort_key):
                    yield from self._walk(Path(entry.path), key, prefix)
                continue
            if not key.startswith(prefix) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                result = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while we were listing
            except OSError as exc:
                raise self._error("list", key, Path(entry.path), exc) from exc
            yield ObjectInfo(key, result.st_size, _mtime(result))

    # A directory keeps no older versions: what ``delete`` or ``put`` replaced is gone.

    def old_versions(self, prefix: str) -> Iterator[ObjectVersion]:
        check_prefix(prefix)
        return iter(())

    def get_version(self, key: str, version_id: str) -> bytes:
        raise KeyError(f"{check_key(key)} (version {version_id}): a directory keeps no versions")

    def old_version_lock(self, key: str, version_id: str) -> dt.datetime | None:
        check_key(key)
        return None

    def delete_version(self, key: str, version_id: str) -> None:
        check_key(key)
