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
