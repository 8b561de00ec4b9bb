"""The architecture of docs/architecture.md, checked: the import contracts, no cycle, modules of one size.

The contracts themselves (layers, actions independent of each other, the daemon through actions only,
the emulator standing alone) live in pyproject.toml's ``[tool.importlinter]``, so ``lint-imports``
on a command line checks the same thing.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "archiver"


def test_import_contracts_are_kept(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def import_cycle(graph: grimp.ImportGraph) -> list[str] | None:
    """One cycle of direct imports between the package's modules, or None (depth-first search)."""
    state: dict[str, str] = {}  # module -> "open" (on the current path) or "done"
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(imported) == "open":
                return [*path[path.index(imported) :], imported]
            if imported not in state and (cycle := visit(imported)) is not None:
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph.modules):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_no_module_imports_itself_through_others() -> None:
    cycle = import_cycle(grimp.build_graph("archiver", cache_dir=None))
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    assert import_cycle(graph) is None
    graph.add_import(importer="p.c", imported="p.a")
    assert import_cycle(graph) == ["p.a", "p.b", "p.c", "p.a"]


# Modules allowed past the size limit, each with why it is one concern all the same.
LONG_BUT_ONE_CONCERN = {
    "config.py": "the settings: one pydantic model per section, their validators and the sources they load from",
    "store/s3.py": "the S3 backend: the Store protocol on boto3, with conditional writes proven or emulated",
}


def test_modules_stay_small_enough_to_read() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    too_long = {name: lines for name, lines in sizes.items() if lines > 500 and name not in LONG_BUT_ONE_CONCERN}
    assert not too_long, f"split these modules by concern (docs/architecture.md): {too_long}"
