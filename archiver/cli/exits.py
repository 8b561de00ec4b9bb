"""Exit statuses: each kind of error mapped to one status, in this one place.

0 success; 1 a failure the message explains (OVH, storage, integrity); 2 a wrong setting or argument;
3 an erasure left incomplete by Object Lock (run ``erase --yes`` again once the lock ends);
75 another instance holds the lease (try again later); 130 interrupted; 141 the reader of standard
output went away (``| head``), quietly, without a traceback.
"""

from __future__ import annotations

import os
import sys

from archiver.errors import ArchiverError, ConfigError, LeaseHeldError

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_CODES", "EXIT_ERASURE_INCOMPLETE", "EXIT_INTERRUPTED", "exit_code", "reader_gone"]

EXIT_CODES: dict[type[ArchiverError], int] = {ConfigError: 2, LeaseHeldError: 75, ArchiverError: 1}
# The reader of our standard output went away (``sms-archiver retrieve ... | head``): 128 + SIGPIPE, the
# status a shell reports for a program that SIGPIPE ended, such as ``yes`` in ``yes | head -1``.
EXIT_BROKEN_PIPE = 141
# Parts under Object Lock kept part of the number's SMS: run ``erase --yes`` again once their lock ends.
EXIT_ERASURE_INCOMPLETE = 3
# 128 + SIGINT, as a shell reports a program that Ctrl-C ended.
EXIT_INTERRUPTED = 130


def exit_code(error: ArchiverError) -> int:
    """The exit status for ``error``: that of its nearest class in ``EXIT_CODES``, else 1."""
    for kind in type(error).__mro__:
        if kind in EXIT_CODES:
            return EXIT_CODES[kind]
    return 1


def reader_gone() -> int:
    """The reader of standard output went away (``| head``): stop quietly, as ``cat`` or ``yes`` do.

    Python's documentation (signal module, "Note on SIGPIPE") recommends pointing standard output at
    devnull, so that the interpreter's final flush of what is still buffered does not fail again.
    Returns ``EXIT_BROKEN_PIPE``.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE
