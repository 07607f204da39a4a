"""The drift contract over live MCP servers: `tether tools lock` records every tool's schema from
the servers of an MCP config; `tether tools check` starts them again and fails, naming the tool
and the field, when a server's schema changed (the test server's variant file changes it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .mcp_support import TEST_SERVER, local_pages

TETHER = [sys.executable, "-m", "tether"]


def tether(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TETHER, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "variant").write_text("v1")
    return tmp_path


def test_add_mcp_then_lock_then_check_names_the_drifted_tool_and_field(project: Path) -> None:
    added = tether(project, "tools", "add-mcp", "demo", "--tag", "test", "--trust-annotations",
                   "--",
                   sys.executable, str(TEST_SERVER), "stdio", "--variant-file", "variant")
    assert added.returncode == 0, added.stderr
    assert "added MCP server 'demo'" in added.stdout
    config = yaml.safe_load((project / "mcp.yaml").read_text())
    assert config["servers"]["demo"]["command"][-3:] == ["stdio", "--variant-file", "variant"]
    assert config["servers"]["demo"]["tags"] == ["test"]
    assert config["servers"]["demo"]["trust_annotations"] is True

    locked = tether(project, "tools", "lock")  # no flags, no lock yet: the mcp.yaml here
    assert locked.returncode == 0, locked.stderr
    lock = json.loads((project / "tools.lock.json").read_text())
    assert lock["sources"]["mcp"] == ["mcp.yaml"]
    assert lock["tools"]["lookup"]["source"] == "mcp:demo#lookup"
    assert lock["tools"]["lookup"]["side_effect"] == "read"
    assert lock["tools"]["wipe"]["side_effect"] == "destructive"

    clean = tether(project, "tools", "check")  # the lock records its sources
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "ok: 8 tools match" in clean.stdout

    (project / "variant").write_text("v2")  # the server now wants a second argument
    drifted = tether(project, "tools", "check")
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "parameter_added    lookup.units: required parameter added (string)" in drifted.stdout
    assert "1 difference(s)" in drifted.stdout


def test_check_catches_a_rug_pull(project: Path) -> None:
    """A reviewed server later marks a writing tool read-only and slips instructions into its
    description (tool poisoning): same name, same parameters; check still fails on it."""
    (project / "mcp.yaml").write_text(yaml.safe_dump({"servers": {"demo": {"command": [
        sys.executable, str(TEST_SERVER), "stdio", "--variant-file", "variant"],
        "trust_annotations": True}}}))  # reviewed, and trusted: its hints count
    assert tether(project, "tools", "lock", "--mcp", "mcp.yaml").returncode == 0
    (project / "variant").write_text("v3")
    drifted = tether(project, "tools", "check")
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    lines = [" ".join(line.split()) for line in drifted.stdout.splitlines()]
    assert "tool_changed record: side_effect 'write' -> 'read'" in lines
    assert "tool_changed record: idempotent False -> True" in lines
    assert "tool_changed record: description changed" in lines
    assert not any("lookup" in line for line in lines)


def test_check_fails_clearly_when_a_live_server_is_gone(project: Path) -> None:
    (project / "mcp.yaml").write_text(yaml.safe_dump({"servers": {"demo": {
        "command": [sys.executable, str(TEST_SERVER), "stdio"]}}}))
    assert tether(project, "tools", "lock", "--mcp", "mcp.yaml").returncode == 0
    (project / "mcp.yaml").write_text(yaml.safe_dump({"servers": {"demo": {
        "command": [str(project / "gone-server")]}}}))
    gone = tether(project, "tools", "check")
    assert gone.returncode == 2
    assert "MCP server 'demo'" in gone.stderr and "cannot be reached" in gone.stderr
    assert "Traceback" not in gone.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["tools", "add-mcp", "x"], "give the server's command after `--`"),
    (["tools", "add-mcp", "x", "--url", "http://h/mcp", "--", "cmd"], "not both"),
    (["tools", "add-mcp", "x", "--url", "ftp://h"], "must start with http:// or https://"),
    (["tools", "add-mcp", "x y", "--", "cmd"], "a server name uses letters"),
    (["tools", "add-mcp", "x", "--env", "NOVALUE", "--", "cmd"], "--env takes KEY=VALUE"),
])
def test_add_mcp_usage_errors(project: Path, args: list[str], message: str) -> None:
    result = tether(project, *args)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert not (project / "mcp.yaml").exists()


@pytest.fixture
def served_spec(petstore_spec: Path) -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    """The pet store's OpenAPI document served on 127.0.0.1 (the test may change it)."""
    pages = {"/openapi.yaml": ("application/yaml", petstore_spec.read_text())}
    with local_pages(pages) as (base, _):
        yield f"{base}/openapi.yaml", pages


def test_lock_and_check_a_live_openapi_url(
        project: Path, served_spec: tuple[str, dict[str, tuple[str, str]]]) -> None:
    url, pages = served_spec
    locked = tether(project, "tools", "lock", "--openapi", url)
    assert locked.returncode == 0, locked.stderr
    lock = json.loads((project / "tools.lock.json").read_text())
    assert lock["sources"]["openapi"] == [{"spec": url}]
    assert "list_pets" in lock["tools"]
    clean = tether(project, "tools", "check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    spec = yaml.safe_load(pages["/openapi.yaml"][1])
    spec["paths"]["/pets"]["get"]["parameters"][1]["schema"]["type"] = "integer"
    pages["/openapi.yaml"] = ("application/yaml", yaml.safe_dump(spec))
    drifted = tether(project, "tools", "check")
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "type_changed       list_pets.tag: type string -> integer" in drifted.stdout
