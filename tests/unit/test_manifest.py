"""Month manifests: the order of versions is the order of writes, whatever the writers' clocks say."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.manifest import load_manifest
from archiver.store import LocalStore
from tests.unit.reader.test_reader import SERVICE, incoming, retrieved, write

CREATED = dt.datetime(2025, 1, 30, 22, 0, tzinfo=dt.UTC)


def test_a_writer_whose_clock_ran_ahead_does_not_make_later_versions_older(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    write(store, [incoming(1, CREATED, 0)], dt.datetime(2099, 1, 1, tzinfo=dt.UTC))  # a clock decades ahead
    write(store, [incoming(1, CREATED, 1)], dt.datetime(2025, 4, 1, tzinfo=dt.UTC))  # the later write, true clock
    assert retrieved(store, 2025, 1) == [list(incoming(1, CREATED, 1).fields)]


@settings(max_examples=50, deadline=None)
@given(clock_offsets=st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=6))
def test_entries_are_stamped_in_the_order_they_were_recorded(clock_offsets: list[int]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = LocalStore(Path(directory))
        base = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
        keys = []
        for index, offset in enumerate(clock_offsets):
            # Each write from a writer whose clock is off by ``offset`` microseconds.
            [entry] = write(store, [incoming(index + 1, CREATED, index)], base + dt.timedelta(microseconds=offset))
            keys.append(entry.key)
        manifest = load_manifest(store, SERVICE, "incoming", 2025, 1)
        stamps = [dt.datetime.fromisoformat(manifest.parts[key].written_at) for key in keys]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
