"""Memory given back to the system (archiver/memory.py): never at the cost of a live object."""

from __future__ import annotations

from archiver.memory import release_free_memory


def test_free_memory_goes_back_to_the_system_without_touching_live_objects() -> None:
    kept = [bytes(range(256)) * 64 for _ in range(200)]
    dropped = [bytearray(4096) for _ in range(2000)]
    del dropped
    release_free_memory()  # glibc's malloc_trim; nothing elsewhere
    assert all(block == bytes(range(256)) * 64 for block in kept)
