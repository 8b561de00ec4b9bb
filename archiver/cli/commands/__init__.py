"""The subcommands, by family; each handler takes the parsed options and returns an exit status.

- ``archiving.py``: ``archive``, ``backfill``, ``run`` (the daemon);
- ``reading.py``: ``months``, ``retrieve`` (CSV, or a workbook with ``--format xlsx``);
- ``status.py``: ``status`` (its tables);
- ``maintenance.py``: ``verify``, ``compact``, ``retention``;
- ``state.py``: ``state show``, ``state reset``;
- ``check_config.py``: ``check-config``;
- ``tools.py``: ``emulator``, ``demo``, and the version ``--version`` prints.

A handler loads the settings, calls one action (``archiver.actions``) and prints what it returns;
the rules live in the actions and the settings. Subcommands are registered in ``archiver.cli.parser``.
"""
