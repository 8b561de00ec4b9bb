"""The actions: what a command or a scheduled job does, one module each, each with a ``run_*`` entry point.

- ``archive/``: ``run_archive`` (one cycle: new and changed records from OVH to the bucket), ``run_backfill``;
- ``retrieve.py``: ``run_retrieve`` (months of the archive as one CSV);
- ``verify.py``: ``run_verify`` (every part checked against its manifest entry and its contents);
- ``compact.py``: ``run_compact`` (a settled day's parts merged into one);
- ``retention/``: ``run_retention`` (delete at OVH what the archive verifiably keeps);
- ``status.py``: ``run_status`` (the archive's state and the daemons' as a document), ``run_state_show``;
- ``check.py``: ``run_check`` (do OVH and the storage answer: ``check-config`` and the daemon's start-up).

Actions use the machinery (``writer``, ``reader``) and the infrastructure (``source``, ``store``) and never
each other: see docs/architecture.md, Layers.
"""
