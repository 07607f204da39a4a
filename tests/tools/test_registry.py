from __future__ import annotations

import pytest

from tether.tools import (
    FunctionTool,
    ToolConflictError,
    ToolNotFoundError,
    ToolRegistry,
    tool,
)


def _search(query: str) -> list[str]:
    """Search the catalogue."""
    return [query]


def _versions() -> tuple[FunctionTool, FunctionTool, FunctionTool]:
    def a(x: int) -> int:
        return x

    def b(x: int, y: int = 0) -> int:
        return x + y

    return (
        tool(name="calc", version="1.9")(a),
        tool(name="calc", version="1.10")(b),
        tool(name="calc", version="1.10-beta")(b),
    )


def test_register_get_list_and_contains() -> None:
    reg = ToolRegistry()
    t = reg.register(_search)  # plain function gets default metadata
    assert isinstance(t, FunctionTool)
    assert reg.get("_search") is t
    assert "_search" in reg and "other" not in reg
    assert reg.list() == [t]
    assert len(reg) == 1
    assert list(reg) == [t]


def test_registry_decorator_form() -> None:
    reg = ToolRegistry()

    @reg.tool(side_effect="destructive")
    def wipe(path: str) -> None:
        """Delete a file."""

    @reg.tool
    def peek(path: str) -> str:
        return path

    assert reg.names() == ["peek", "wipe"]
    assert reg.get("wipe").side_effect == "destructive"
    assert reg.get("wipe").idempotent is False


def test_versions_newest_by_default_exact_on_request() -> None:
    v19, v110, beta = _versions()
    reg = ToolRegistry([v19, beta, v110])
    assert reg.versions("calc") == ["1.9", "1.10-beta", "1.10"]
    assert reg.get("calc") is v110  # 1.10 > 1.9 (numeric, not lexicographic)
    assert reg.get("calc", "1.9") is v19
    assert reg.list() == [v110]
    assert reg.list(all_versions=True) == [v19, beta, v110]
    assert v19.schema_hash != v110.schema_hash


def test_same_name_and_version_conflicts_unless_replaced() -> None:
    v19, _, _ = _versions()
    reg = ToolRegistry([v19])
    reg.register(v19)  # the same object again is harmless

    def other(z: str) -> str:
        return z

    clash = tool(name="calc", version="1.9")(other)
    with pytest.raises(ToolConflictError, match=r"'calc' version '1\.9' is already registered"):
        reg.register(clash)
    reg.register(clash, replace=True)
    assert reg.get("calc", "1.9") is clash


def test_unknown_tool_error_lists_what_exists() -> None:
    reg = ToolRegistry([_search])
    with pytest.raises(ToolNotFoundError) as info:
        reg.get("serch")
    assert str(info.value) == "unknown tool 'serch'; available tools: _search"
    assert info.value.kind == "unknown_tool"
    v19, _, _ = _versions()
    reg.register(v19)
    with pytest.raises(ToolNotFoundError, match=r"'calc' version '2'.*calc@1\.9"):
        reg.get("calc", "2")


def test_unregister() -> None:
    v19, v110, _ = _versions()
    reg = ToolRegistry([v19, v110])
    reg.unregister("calc", "1.10")
    assert reg.get("calc") is v19
    reg.unregister("calc")
    assert "calc" not in reg
    with pytest.raises(ToolNotFoundError):
        reg.unregister("calc")


def test_definitions_and_subset() -> None:
    v19, v110, _ = _versions()
    reg = ToolRegistry([v19, v110, _search])
    defs = reg.definitions()
    assert [d["name"] for d in defs] == ["_search", "calc"]
    assert defs[1]["parameters"]["properties"].keys() == {"x", "y"}
    assert defs[0]["description"] == "Search the catalogue."
    sub = reg.subset(["calc"])
    assert sub.names() == ["calc"] and sub.get("calc") is v110
    assert reg.definitions(["_search"]) == [defs[0]]
