"""Month manifests: what was written, with its SHA-256 and row count, recorded at write time.

``{service}/{direction}/year=YYYY/month=MM/_manifest.json`` lists the month's parts. Verify compares
the stored bytes with it; a part missing from the bucket, a part the manifest does not know, or
bytes whose checksum differs are all reported. The manifest is updated after its parts are
durable and before the cursor moves, under the service's lease (single writer).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

from archiver.errors import StorageError
from archiver.naming import Direction
from archiver.store import Store
from archiver.store.layout import manifest_key, parse_part_key

__all__ = ["Manifest", "PartEntry", "load_manifest", "parse_row_key", "record_parts", "row_key", "save_manifest"]

MANIFEST_VERSION = 1


@dataclass(frozen=True, slots=True)
class PartEntry:
    """One part as it was written."""

    key: str
    sha256: str
    rows: int
    size: int
    first_id: int
    last_id: int
    written_at: str
    # The (creation instant, id) of the part's first and last rows, as "ISO-UTC id": readers copy parts
    # whose spans do not overlap without merging them. Empty in manifests written before this field.
    first_row: str = ""
    last_row: str = ""


def row_key(created: dt.datetime, sms_id: int) -> str:
    """A row's sort key as text, for ``PartEntry.first_row`` / ``last_row``."""
    return f"{created.astimezone(dt.UTC).isoformat(timespec='microseconds')} {sms_id}"


def parse_row_key(text: str) -> tuple[dt.datetime, int] | None:
    if not text:
        return None
    instant, _, sms_id = text.partition(" ")
    return dt.datetime.fromisoformat(instant), int(sms_id)


@dataclass(slots=True)
class Manifest:
    """The parts of one month of one service and direction."""

    service: str
    direction: Direction
    year: int
    month: int
    parts: dict[str, PartEntry] = field(default_factory=dict)
    # Parts merged into a compacted one, and about to be deleted: neither missing nor foreign.
    superseded: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        return manifest_key(self.service, self.direction, self.year, self.month)

    def to_json(self) -> bytes:
        document = {
            "version": MANIFEST_VERSION,
            "service": self.service,
            "direction": self.direction,
            "month": f"{self.year:04d}-{self.month:02d}",
            "parts": [asdict(entry) for _, entry in sorted(self.parts.items())],
            "superseded": sorted(self.superseded),
        }
        return json.dumps(document, indent=1, sort_keys=True).encode()


def load_manifest(store: Store, service: str, direction: Direction, year: int, month: int) -> Manifest:
    """Read a month's manifest (an empty one if none was written yet)."""
    manifest = Manifest(service, direction, year, month)
    try:
        data = store.get(manifest.key)
    except KeyError:
        return manifest
    try:
        document = json.loads(data)
        if document.get("version") != MANIFEST_VERSION:
            raise ValueError(f"unsupported version {document.get('version')!r}")
        for item in document["parts"]:
            entry = PartEntry(**item)
            manifest.parts[entry.key] = entry
        manifest.superseded = set(document.get("superseded", []))
    except (ValueError, TypeError, KeyError) as error:
        raise StorageError(f"manifest {manifest.key} is damaged ({error})") from None
    return manifest


def save_manifest(store: Store, manifest: Manifest) -> None:
    store.put(manifest.key, manifest.to_json())


def record_parts(store: Store, service: str, direction: Direction, entries: Iterable[PartEntry]) -> None:
    """Add entries to their months' manifests (read, merge, write each month once)."""
    by_month: dict[tuple[int, int], list[PartEntry]] = {}
    for entry in entries:
        day = _entry_day(entry.key)
        by_month.setdefault((day.year, day.month), []).append(entry)
    for (year, month), month_entries in sorted(by_month.items()):
        manifest = load_manifest(store, service, direction, year, month)
        for entry in month_entries:
            manifest.parts[entry.key] = _after_every_other(entry, manifest)
        save_manifest(store, manifest)


def _after_every_other(entry: PartEntry, manifest: Manifest) -> PartEntry:
    """Stamp a new entry after every other of its month, whatever the writer's clock says.

    Readers take the version of a row from the part written last (``written_at``): a writer whose
    clock ran ahead must not make the versions written after it look older. Writers of one service
    take turns under its lease, so the month's manifest is the order in which they wrote.
    """
    others = [other.written_at for key, other in manifest.parts.items() if key != entry.key]
    if not others:
        return entry
    latest = max(dt.datetime.fromisoformat(text) for text in others)
    if dt.datetime.fromisoformat(entry.written_at) > latest:
        return entry
    later = latest + dt.timedelta(microseconds=1)
    return replace(entry, written_at=later.isoformat(timespec="microseconds"))


def _entry_day(key: str) -> dt.date:
    parsed = parse_part_key(key)
    if parsed is None:
        raise ValueError(f"not a part key: {key}")
    return parsed.day
