"""The house rule, checked: imports point down the layers, and nothing imports in a circle.

Layers (docs/architecture.md): cli/demo > agents > guards·observe > runtime >
models·tools·sandbox > store. Every import counts — at module level, inside a function (a lazy
import is still an import) and under `if TYPE_CHECKING:` (a type reference is still a
dependency a reader has to follow).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "tether"
LAYER = {"store": 0, "models": 1, "tools": 1, "sandbox": 1, "runtime": 2, "guards": 3,
         "observe": 3, "memory": 3, "evals": 3, "agents": 4, "cli": 5, "server": 5, "demo": 6}


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = ["tether", *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    mods = modules(root)

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base_name = ".".join(base + ([node.module] if node.module else []))
                else:
                    base_name = node.module or ""
                # `from pkg import sub` imports the submodule; `from pkg import name`, the package
                targets = [f"{base_name}.{a.name}" if f"{base_name}.{a.name}" in mods
                           else base_name for a in node.names]
            for t in targets:
                if t.startswith("tether") and (k := known(t)) and k != mod:
                    graph[mod].add(k)
    return graph


def layer(mod: str) -> int | None:
    parts = mod.split(".")
    return LAYER.get(parts[1]) if len(parts) > 1 else None


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(LAYER), f"add {packages - set(LAYER)} to LAYER and the docs"


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if (la := layer(a)) is not None and (lb := layer(b)) is not None and lb > la)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for mod in list(graph):
        if mod not in index:
            visit(mod)
    return found


def test_imports_point_down() -> None:
    assert upward(import_graph()) == [], "upward imports (lazy and type-only ones count)"


def test_no_import_circles() -> None:
    assert circles(import_graph()) == [], "modules importing each other around a circle"


def test_the_checker_catches_lazy_and_type_only_violations(tmp_path: Path) -> None:
    """The rule can fail: a lazy upward import and a type-only circle are both caught."""
    for pkg in ("store", "cli", "runtime"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "store" / "low.py").write_text("def f():\n    from tether.cli import app\n")
    (tmp_path / "runtime" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tether.runtime.b import B\n")
    (tmp_path / "runtime" / "b.py").write_text("from .a import A\n")
    graph = import_graph(tmp_path)
    assert upward(graph) == [("tether.store.low", "tether.cli")]
    assert circles(graph) == [["tether.runtime.a", "tether.runtime.b"]]
