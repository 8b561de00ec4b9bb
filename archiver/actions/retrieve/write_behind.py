"""The output written on a thread of its own, in order, while the next day is read and sorted.

Writing a month's CSV is a third of ``retrieve``'s time (the kernel copying hundreds of MB, or gzip
compressing them), and both let other threads run: on a second core it overlaps the work on the
next day instead of following it. Memory holds at most ``depth`` pieces waiting, besides the one
being written.
"""

from __future__ import annotations

import queue
import threading
from types import TracebackType
from typing import BinaryIO

from archiver.reader.day_bytes import Piece, write_piece

__all__ = ["WriteBehind"]

# A piece waiting is a day at most (``day_bytes.CHUNK_DAY_BELOW``). The thread writes a day about as
# fast as the next is sorted, but waits for the GIL after each write (up to the switch interval): two
# waiting absorb that, at a day more in memory (bench/results.md: peak RSS of a 1M-row retrieve).
DEPTH = 2
_END = None


class WriteBehind:
    """Writes pieces given by ``write`` to ``output`` on its own thread, in the order given.

    Pieces must not change once given (``bytes``, ``memoryview`` of ``bytes``, or ``Lines``): they are
    written later. The first error of the output is raised by the next ``write_all`` or by ``close``; what
    follows it is dropped, so a failed output is never written past a hole. Used as a context
    manager: leaving it waits for the thread (``close``), or, on an error, stops it at once.
    """

    def __init__(self, output: BinaryIO, *, depth: int = DEPTH) -> None:
        self._output = output
        self._pieces: queue.Queue[list[Piece] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name="write-behind", daemon=True)
        self._thread.start()

    def write_all(self, pieces: list[Piece]) -> None:
        """Queue ``pieces`` (written one after the other); waits while ``depth`` are already waiting."""
        self._raise_error()
        if pieces:
            self._pieces.put(pieces)

    def write(self, piece: bytes | memoryview) -> int:
        """Queue one piece (a file-like ``write``, for ``shutil.copyfileobj``); return its length."""
        self.write_all([piece])
        return len(piece)

    def close(self) -> None:
        """Wait until everything given is written; raise the output's error if there was one."""
        self._stop()
        self._raise_error()

    def abandon(self) -> None:
        """Stop soon, writing nothing more than the piece under way (the caller is failing: what would
        follow is not whole, and is dropped with the output)."""
        self._abandoned = True
        self._stop()

    def _stop(self) -> None:
        if self._thread.is_alive():  # only ``close`` and ``abandon`` end it, from the caller's thread
            self._pieces.put(_END)
            self._thread.join()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (pieces := self._pieces.get()) is not _END:
            if self._error is not None or self._abandoned:
                continue  # keep taking pieces, so that ``write`` never waits on a thread that stopped
            try:
                for piece in pieces:
                    write_piece(self._output, piece)  # ``Lines`` are joined here, on this thread
            except BaseException as error:  # handed to the caller's thread, raised there
                self._error = error
