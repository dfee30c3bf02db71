"""The package's shape: no module imports, directly or through others, one that imports it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "speechseq"


def imports_of(path: Path) -> set[str]:
    """The speechseq modules `path` imports anywhere in it (functions included: a deferred
    import is still a dependency)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "speechseq":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("speechseq."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("speechseq.")}
    return found - {path.stem}


def test_no_import_cycle():
    graph = {path.stem: imports_of(path) for path in PACKAGE.glob("*.py")}
    assert graph["transcribe"] and graph["train"]  # the scan sees imports at all
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for dependency in sorted(graph.get(module, ())):
            assert state.get(dependency) != "open", "import cycle: " + " -> ".join(trail + [dependency])
            if dependency not in state:
                visit(dependency, trail + [dependency])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
