"""``python -m archiver.emulator``: serve the emulator in the foreground (see ``serve_forever_cli``)."""

from __future__ import annotations

import sys

from archiver.emulator.cli import serve_forever_cli

if __name__ == "__main__":
    sys.exit(serve_forever_cli())
