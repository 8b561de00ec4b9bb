"""The emulator stands for OVH: it must import nothing from the archiver outside its own package."""

from __future__ import annotations

import ast
from pathlib import Path

import archiver.emulator

PACKAGE = Path(archiver.emulator.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            names.add(node.module or "")
    return names


def test_the_emulator_imports_only_itself_from_the_archiver() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 10
    outside = {
        f"{path.name}: {name}"
        for path in modules
        for name in imported_modules(path)
        if (name == "archiver" or name.startswith("archiver.")) and not name.startswith("archiver.emulator")
    }
    assert outside == set()
