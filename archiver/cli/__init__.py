"""The ``sms-archiver`` command: parse arguments, wire settings to actions, print, exit.

No business rules live here: each subcommand calls one action (``archiver.actions``), whose rules
and settings checks are its own, and prints what it returns. The modules:

- ``program.py``: ``main``, the entry point (console script ``sms-archiver``, ``python -m archiver``);
- ``parser.py``: ``build_parser``, every subcommand and option (the one place to register one), the
  argument types;
- ``exits.py``: the exit statuses, each kind of error mapped to one, the closed pipe;
- ``wiring.py``: from the options to the settings, the OVH source, the store and the service to work on;
- ``commands/``: the handlers, one module per family of subcommands (see its docstring);
- ``tables.py``: the rich console and columns every table uses; ``progress.py``: the progress bar;
  ``output.py``: output files written whole or not at all, sizes for people.

Exit statuses: 0 success; 1 a failure the message explains (OVH, storage, integrity); 2 a wrong
setting or argument; 75 another instance holds the lease (try again later); 130 interrupted; 141 the
reader of standard output went away (``| head``), quietly, without a traceback.
"""

from __future__ import annotations

from archiver.cli.exits import EXIT_CODES, exit_code
from archiver.cli.parser import build_parser
from archiver.cli.program import main

__all__ = ["EXIT_CODES", "build_parser", "exit_code", "main"]
