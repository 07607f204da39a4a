from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from tether.cli.tools import register
from tether.tools import (
    LockError,
    ToolRegistry,
    ToolSources,
    check_lock,
    diff_lock,
    load_sources,
    lock_entries,
    read_lock,
    tool,
    write_lock,
)

TOOLS_PY = '''
from pydantic import BaseModel
from tether.tools import tool

class Money(BaseModel):
    amount: float
    currency: str = "EUR"

@tool(side_effect="write", version="1")
def pay(to: str, money: Money, memo: str | None = None) -> str:
    """Pay someone."""
    return to

@tool
def balance(account: str) -> float:
    """Current balance."""
    return 1.0
'''


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Tether (test root)."""

    register(app)
    return app


@pytest.fixture
def project(tmp_path: Path, petstore_spec: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(petstore_spec, tmp_path / "petstore.yaml")
    (tmp_path / "paytools.py").write_text(TOOLS_PY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def test_lock_round_trip(tmp_path: Path, petstore_spec: Path) -> None:
    @tool(version="3")
    def search(query: str, limit: int = 10) -> list[str]:
        """Search."""
        return []

    reg = ToolRegistry([search])
    reg.add_openapi(petstore_spec, "http://127.0.0.1:1/v1")
    path = tmp_path / "tools.lock.json"
    sources = ToolSources(modules=["x.y"])
    written = write_lock(reg, path, sources)
    data = read_lock(path)
    assert data == json.loads(path.read_text()) == written
    assert data["format"] == 1
    assert data["sources"] == {"modules": ["x.y"], "openapi": []}
    entry = data["tools"]["search"]
    assert entry["version"] == "3"
    assert entry["hash"] == search.schema_hash
    assert entry["parameters"] == search.parameters
    assert set(data["tools"]) == {"search", "list_pets", "get_pet", "create_pet", "create_pets",
                                  "delete_pet"}
    assert check_lock(reg, path) == []
    first = path.read_bytes()
    write_lock(reg, path, sources)
    assert path.read_bytes() == first  # deterministic: no timestamps, sorted keys


def test_several_versions_are_locked_separately(tmp_path: Path) -> None:
    def f(x: int) -> int:
        return x

    reg = ToolRegistry([tool(name="f", version="1")(f), tool(name="f", version="2")(f)])
    assert set(lock_entries(reg)) == {"f@1", "f@2"}


def test_read_lock_errors(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="not found; create it with `tether tools lock`"):
        read_lock(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(LockError, match="not valid JSON"):
        read_lock(bad)
    bad.write_text('{"format": 99, "tools": {}}')
    with pytest.raises(LockError, match="unknown format"):
        read_lock(bad)


def test_diff_reports_each_kind_of_drift() -> None:
    class_v1 = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "default": 1},
            "unit": {"enum": ["c", "f"], "type": "string"},
            "where": {"$ref": "#/$defs/Place"},
        },
        "required": ["city"],
        "$defs": {"Place": {"type": "object", "properties": {"lat": {"type": "number"}}}},
    }
    class_v2 = {
        "type": "object",
        "properties": {
            "city": {"type": "integer"},
            "unit": {"enum": ["c", "k"], "type": "string"},
            "lang": {"type": "string"},
            "where": {"$ref": "#/$defs/Place"},
        },
        "required": ["city", "lang"],
        "$defs": {"Place": {"type": "object", "properties": {"lat": {"type": "string"}}}},
    }
    old = {"weather": {"version": "1", "hash": "a", "side_effect": "read", "idempotent": True,
                       "description": "d", "parameters": class_v1},
           "gone": {"version": "1", "hash": "g"}}
    new = {"weather": {"version": "1", "hash": "b", "side_effect": "write", "idempotent": True,
                       "description": "d", "parameters": class_v2},
           "fresh": {"version": "2", "hash": "f"}}
    drifts = {(d.kind, d.tool, d.parameter): d.detail for d in diff_lock(old, new)}
    assert drifts == {
        ("tool_removed", "gone", None): "tool removed (locked version 1)",
        ("tool_added", "fresh", None): "tool added (version 2)",
        ("tool_changed", "weather", None): "side_effect 'read' -> 'write'",
        ("type_changed", "weather", "city"): "type string -> integer",
        ("parameter_removed", "weather", "days"): "parameter removed (was integer)",
        ("parameter_added", "weather", "lang"): "required parameter added (string)",
        ("parameter_changed", "weather", "unit"):
            "allowed values changed (removed ['f'], added ['k'])",
        ("type_changed", "weather", "where.lat"): "type number -> string",
    }


def test_cli_lock_then_check_clean(project: Path) -> None:
    code, out = _run("tools", "lock", "--module", "paytools.py",
                     "--openapi", "petstore.yaml=http://127.0.0.1:1/v1")
    assert code == 0, out
    assert "locked 7 tools in tools.lock.json" in out
    lock = json.loads((project / "tools.lock.json").read_text())
    assert lock["sources"] == {
        "modules": ["paytools.py"],
        "openapi": [{"spec": "petstore.yaml", "base_url": "http://127.0.0.1:1/v1"}],
    }
    # check and list need no flags: the lock records its sources
    code, out = _run("tools", "check")
    assert code == 0, out
    assert "ok: 7 tools match tools.lock.json" in out
    code, out = _run("tools", "list")
    assert code == 0, out
    for name in ("pay", "balance", "list_pets", "delete_pet", "destructive"):
        assert name in out
    code, out = _run("tools", "list", "--json")
    assert code == 0
    listed = {t["name"]: t for t in json.loads(out)}
    assert listed["pay"]["side_effect"] == "write"
    assert listed["pay"]["parameters"]["required"] == ["to", "money"]


def test_cli_check_detects_injected_openapi_drift(project: Path) -> None:
    code, out = _run("tools", "lock", "--openapi", "petstore.yaml")
    assert code == 0, out
    spec = project / "petstore.yaml"
    doc = yaml.safe_load(spec.read_text())
    get_pets = doc["paths"]["/pets"]["get"]
    get_pets["parameters"] = [p for p in get_pets["parameters"] if p.get("name") != "tag"]
    doc["components"]["parameters"]["Limit"]["schema"]["type"] = "string"
    doc["paths"]["/pets/{pet_id}"]["get"]["parameters"] = [
        {"name": "fields", "in": "query", "required": True, "schema": {"type": "string"}}
    ]
    del doc["paths"]["/pets/{pet_id}"]["delete"]
    doc["paths"]["/owners"] = {"get": {"operationId": "list_owners", "responses": {}}}
    doc["components"]["schemas"]["NewPet"]["properties"]["name"]["type"] = "integer"
    spec.write_text(yaml.safe_dump(doc))

    code, out = _run("tools", "check")
    assert code == 1, out
    assert "drift: 7 difference(s) between live tools and tools.lock.json" in out
    lines = [line.split() for line in out.splitlines() if line.startswith("  ")]
    heads = {(w[0], w[1]) for w in lines}
    assert heads == {
        ("tool_removed", "delete_pet:"),
        ("tool_added", "list_owners:"),
        ("parameter_removed", "list_pets.tag:"),
        ("type_changed", "list_pets.limit:"),
        ("parameter_added", "get_pet.fields:"),
        ("type_changed", "create_pet.name:"),
        ("type_changed", "create_pets.body[].name:"),  # the shared NewPet schema, via $defs
    }
    assert "type integer -> string" in out
    assert "required parameter added (string)" in out
    assert "bump the tool's version and run `tether tools lock`" in out


def test_cli_check_detects_python_tool_drift(project: Path) -> None:
    assert _run("tools", "lock", "--module", "paytools.py")[0] == 0
    drifted = TOOLS_PY.replace("memo: str | None = None", "memo: int | None = None").replace(
        'currency: str = "EUR"', 'currency: str = "USD"'
    ).replace('side_effect="write", version="1"', 'side_effect="destructive", version="1"')
    (project / "paytools.py").write_text(drifted)
    code, out = _run("tools", "check")
    assert code == 1, out
    assert "tool_changed       pay: side_effect 'write' -> 'destructive'" in out
    assert "type_changed       pay.memo: type null|string -> integer|null" in out
    assert "parameter_changed  pay.money.currency: default 'EUR' -> 'USD'" in out


def test_cli_imports_modules_by_name(project: Path) -> None:
    pkg = project / "clipkg_tools_by_name"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(textwrap.dedent(TOOLS_PY))
    try:
        code, out = _run("tools", "list", "--module", "clipkg_tools_by_name.mod:pay")
        assert code == 0, out
        assert "pay" in out and "balance" not in out
    finally:
        for name in [m for m in sys.modules if m.startswith("clipkg_tools_by_name")]:
            del sys.modules[name]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tools", "check"), "lock file 'tools.lock.json' not found"),
        (("tools", "list"), "no tool sources: pass --module"),
        (("tools", "list", "--module", "no_such_module_xyz"), "cannot import tool module"),
        (("tools", "list", "--openapi", "missing.yaml"), "cannot read OpenAPI spec"),
        (("tools", "list", "--module", "json"), "defines no tools"),
    ],
)
def test_cli_usage_errors_exit_2(project: Path, args: tuple[str, ...], message: str) -> None:
    code, out = _run(*args)
    assert code == 2
    assert message in out


def test_load_sources_relative_to_base_dir(project: Path, tmp_path: Path) -> None:
    reg = load_sources(ToolSources(modules=["paytools.py"]), base_dir=project)
    assert reg.names() == ["balance", "pay"]


_MAIN = "import sys; from tether.cli import main; sys.argv[0] = 'tether'; main()"


def test_installed_cli_check_exits_nonzero_on_drift(project: Path) -> None:
    """The real `tether` command line (root app from tether.cli), in a separate process."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(repo), *filter(None, [os.environ.get("PYTHONPATH")])])}

    def tether(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", _MAIN, "tools", *args], cwd=project,
                              env=env, capture_output=True, text=True, timeout=60)

    locked = tether("lock", "--openapi", "petstore.yaml", "--module", "paytools.py")
    assert locked.returncode == 0, locked.stderr
    assert tether("check").returncode == 0
    spec = project / "petstore.yaml"
    spec.write_text(spec.read_text().replace("operationId: get_pet", "operationId: fetch_pet"))
    drifted = tether("check")
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "tool_removed       get_pet" in drifted.stdout
    assert "tool_added         fetch_pet" in drifted.stdout
