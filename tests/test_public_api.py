"""The curated public API: every exported name resolves, and the core import stays light."""

from __future__ import annotations

import subprocess
import sys

import tether


def test_every_exported_name_resolves() -> None:
    missing = [name for name in tether.__all__ if getattr(tether, name, None) is None]
    assert missing == []


def test_importing_tether_does_not_import_the_upper_layers() -> None:
    code = ("import sys, tether; heavy = [m for m in ('httpx', 'jsonschema', 'numpy', "
            "'tether.models', 'tether.guards') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_type_checkers_see_every_lazy_name() -> None:
    """`from tether import Message` must type as the class, not `object` (what `__getattr__`
    returns): every lazily imported name is also imported under `TYPE_CHECKING`, from the
    module it is loaded from at run time."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(tether.__file__).read_text())
    guarded: dict[str, str] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                guarded.update({alias.name: imp.module for alias in imp.names})
    assert guarded == tether._LAZY


def test_all_lists_every_lazy_name() -> None:
    assert set(tether._LAZY) <= set(tether.__all__)
