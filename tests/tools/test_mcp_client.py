"""MCP servers as tool sources, against the test server (tests/tools/mcp_test_server.py, on the
official SDK) over stdio and streamable HTTP: the registry, the journal, replay, dead and
restarted servers, connection lifetimes and configuration errors."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import ToolAnnotations

from tether import Tether
from tether.tools import ToolRegistry
from tether.tools.mcp import (
    MCPConfigError,
    MCPServerConfig,
    MCPTools,
    add_mcp_server,
    classify,
    read_mcp_config,
)

from .mcp_support import free_port, http_test_server, test_server

STATE: dict[str, Any] = {}


def _ledger(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# ---------------------------------------------------------------- side effects from annotations
@pytest.mark.parametrize(("hints", "trusted", "expected"), [
    (None, True, ("destructive", False)),  # no annotations: the most cautious class
    ({}, True, ("destructive", False)),  # the spec's defaults: destructive, not idempotent
    ({"readOnlyHint": True}, True, ("read", True)),
    ({"readOnlyHint": False, "destructiveHint": False}, True, ("write", False)),
    ({"destructiveHint": False, "idempotentHint": True}, True, ("write", True)),
    ({"destructiveHint": True, "idempotentHint": True}, True, ("destructive", True)),
    ({"readOnlyHint": True}, False, ("destructive", False)),  # hints from an untrusted server
])
def test_side_effect_class_from_annotations(hints: dict[str, Any] | None, trusted: bool,
                                            expected: tuple[str, bool]) -> None:
    annotations = None if hints is None else ToolAnnotations.model_validate(hints)
    assert classify(annotations, trusted=trusted) == expected


# ---------------------------------------------------------------- the registry
async def test_tools_join_the_registry_with_schemas_classes_and_tags() -> None:
    async with MCPTools([test_server(tags=("demo-tag",), side_effects={"mystery": "read"},
                                     trust_annotations=True)]) as mcp:
        by_name = {t.name: t for t in mcp.tools}
        assert set(by_name) == {"lookup", "record", "wipe", "mystery", "fail", "die", "slow",
                                 "big"}
        lookup = by_name["lookup"]
        assert lookup.parameters["properties"]["city"]["type"] == "string"
        assert lookup.parameters["required"] == ["city"]
        assert lookup.source == "mcp:demo#lookup" and lookup.kind == "mcp"
        assert (lookup.side_effect, lookup.idempotent) == ("read", True)
        assert (by_name["record"].side_effect, by_name["record"].idempotent) == ("write", False)
        assert by_name["wipe"].side_effect == "destructive"
        assert by_name["mystery"].side_effect == "read"  # the operator's override wins
        assert lookup.tags == {"demo", "demo-tag", "read", "idempotent"}
        # select before the model sees them: by name (globs) and by tag
        assert [t.name for t in mcp.select(names=["l*", "rec*"])] == ["lookup", "record"]
        assert {t.name for t in mcp.select(tags=["destructive"])} == {"wipe", "die"}
        reg = mcp.registry(tags=["read"])
        assert reg.names() == ["big", "fail", "lookup", "mystery", "slow"]
        assert [d["name"] for d in reg.definitions()] == reg.names()
        # a bad argument is refused before anything is sent, in words the model can act on
        bad = await lookup.run({"city": 3})
        assert bad.error is not None and bad.error.type == "invalid_arguments"
        assert "city: 3 is not of type 'string'" in bad.error.message
        ok = await lookup.run({"city": "Paris"})
        assert ok.ok and "Paris: 2,100,000 people" in ok.observation()
        failed = await by_name["fail"].run({"reason": "no"})
        assert failed.error is not None and "reported an error" in failed.error.message


async def test_configured_subset_and_prefix() -> None:
    cfg = test_server("a", tools=("l*", "rec*"), exclude=("record",), prefix="a_")
    async with MCPTools([cfg, test_server("b", tools=("lookup",))]) as mcp:
        assert sorted(t.name for t in mcp.tools) == ["a_lookup", "lookup"]
        assert (await mcp.registry().get("a_lookup").run({"city": "Oslo"})).ok


async def test_a_name_clash_between_servers_is_skipped_and_explained() -> None:
    async with MCPTools([test_server("a", tools=("lookup",)),
                         test_server("b", tools=("lookup",))]) as mcp:
        assert [t.source for t in mcp.tools] == ["mcp:a#lookup"]
        assert "already named 'lookup'; give server 'b' a `prefix`" in mcp.skipped["b#lookup"]


# ---------------------------------------------------------------- the journal and replay
async def record_then_wait(ctx: Any, note: str) -> Any:
    """One MCP call, then a durable wait: resuming replays the call from the journal."""
    first = await ctx.tool(STATE["registry"], "record", {"note": note})
    await ctx.wait_for("go")
    second = await ctx.tool(STATE["registry"], "lookup", {"city": "Lima"})
    return {"first": first.output, "second": second.output}


async def test_an_mcp_call_is_one_journaled_step_never_repeated_on_replay(
        db_path: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    async with MCPTools([test_server(ledger=ledger, trust_annotations=True)]) as mcp:
        STATE["registry"] = mcp.registry()
        t = Tether(db_path, lease_ttl=5.0)
        run = await t.run(record_then_wait, "n1")
        assert run.status == "waiting"
        assert _ledger(ledger) == ["n1"]
        t.signal(run.id, "go")
        done = await t.drive(run.id)  # a worker re-executes the agent from the top
        assert done.status == "succeeded", done.error
        assert done.result["first"] == {"result": "recorded n1"}
        assert _ledger(ledger) == ["n1"]  # the completed call was answered from the journal
        steps = [e for e in t.events(run.id) if e.kind == "step_started"]
        assert [e.name for e in steps] == ["tool:record", "tool:lookup"]
        assert steps[0].data["meta"]["side_effect"] == "write"
        assert await t.replay(run.id) == done.result  # a pure replay calls nothing
        assert _ledger(ledger) == ["n1"]
        t.close()


# ---------------------------------------------------------------- dead and restarted servers
async def test_a_server_that_dies_mid_call_is_restarted_on_the_next_call(tmp_path: Path
                                                                         ) -> None:
    ledger = tmp_path / "ledger.txt"
    async with MCPTools([test_server(ledger=ledger)]) as mcp:
        reg = mcp.registry()
        died = await reg.get("die").run({})
        assert died.error is not None and died.error.type == "execution_error"
        assert "went away during the call to 'die'" in died.error.message
        assert "may or may not have taken effect" in died.error.message
        assert not mcp.connections["demo"].connected
        again = await reg.get("record").run({"note": "after"})
        assert again.ok, again.error
        assert _ledger(ledger) == ["die", "after"]  # a new process answered


async def test_a_call_the_server_does_not_answer_in_time_is_a_timeout_observation() -> None:
    async with MCPTools([test_server(timeout=1.0)]) as mcp:
        reg = mcp.registry()
        late = await reg.get("slow").run({"seconds": 5})
        assert late.error is not None
        assert "did not answer the call to 'slow' within 1s" in late.error.message
        assert "not sent again" in late.error.message
        assert (await reg.get("lookup").run({"city": "Rome"})).ok  # the session is still fine


async def test_a_killed_stdio_server_is_restarted(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    cfg = MCPServerConfig.stdio("sh", "sh", "-c", f"echo $$ > {pid_file}; exec "
                                f"{sys.executable} {test_server().command[1]} stdio")
    async with MCPTools([cfg]) as mcp:
        reg = mcp.registry()
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        first = await reg.get("lookup").run({"city": "Kyiv"})
        if not first.ok:  # the loss may show on this call; the next one reconnects
            assert first.error is not None and "went away" in first.error.message
            first = await reg.get("lookup").run({"city": "Kyiv"})
        assert first.ok, first.error


async def follow_the_model(ctx: Any, goal: str) -> Any:
    from tether.agents import react

    return await react(ctx, goal, model=STATE["model"], tools=STATE["registry"], max_steps=4)


async def test_an_unreachable_server_is_an_observation_not_a_crashed_run(db_path: str) -> None:
    from tests.guards.e2e_support import say
    from tether.models import ScriptedModel, tool_call

    port = free_port()
    with http_test_server(port) as proc:
        cfg = MCPServerConfig.http("remote", f"http://127.0.0.1:{port}/mcp", timeout=10)
        async with MCPTools([cfg], connect_timeout=5) as mcp:
            STATE["registry"] = mcp.registry()
            proc.terminate()
            proc.wait(10)
            STATE["model"] = ScriptedModel([
                say("", tool_call("lookup", {"city": "Quito"})),
                say("", tool_call("lookup", {"city": "Quito"})),
                "The lookup service is down.",
            ])
            t = Tether(db_path, lease_ttl=5.0)
            run = await t.run(follow_the_model, "How many people live in Quito?")
            assert run.status == "succeeded", run.error
            calls = [c for s in run.result["trajectory"] for c in s.get("calls", [])]
            assert [c["ok"] for c in calls] == [False, False]
            seen = " ".join(c["observation"] for c in calls)
            assert "MCP server 'remote'" in seen
            assert "is unavailable" in calls[1]["observation"]
            assert "Nothing was sent to the server" in calls[1]["observation"]
            # the model read it (the tool message answering its call)
            assert any("unavailable" in (m.content or "")
                       for m in STATE["model"].calls[2].messages if m.role == "tool")
            t.close()

            # the server comes back on the same port: the next call reconnects
            with http_test_server(port):
                back = await STATE["registry"].get("lookup").run({"city": "Quito"})
                assert back.ok, back.error


async def test_streamable_http_transport_calls_tools(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    port = free_port()
    with http_test_server(port, ledger=ledger):
        cfg = MCPServerConfig.http("web", f"http://127.0.0.1:{port}/mcp",
                                   headers={"X-Test": "1"})
        async with MCPTools([cfg]) as mcp:
            result = await mcp.registry().get("record").run({"note": "over http"})
            assert result.ok, result.error
    assert _ledger(ledger) == ["over http"]


# ---------------------------------------------------------------- lifetimes
async def test_no_connection_outlives_its_owner(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    cfg = MCPServerConfig.stdio("sh", "sh", "-c", f"echo $$ > {pid_file}; exec "
                                f"{sys.executable} {test_server().command[1]} stdio")
    async with MCPTools([cfg]) as mcp:
        lookup = mcp.registry().get("lookup")
        pid = int(pid_file.read_text())
        os.kill(pid, 0)  # alive while the owner is
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert not _alive(pid), "the stdio server outlived the MCPTools block"
    after = await lookup.run({"city": "Baku"})
    assert after.error is not None and after.error.type == "unavailable"
    assert "closed with its owner" in after.error.message


async def test_an_unreachable_required_server_is_a_clear_error() -> None:
    bad = MCPServerConfig.stdio("ghost", "/nonexistent/mcp-server")
    with pytest.raises(MCPConfigError, match=r"MCP server 'ghost' \(/nonexistent/mcp-server\) "
                       r"cannot be reached: FileNotFoundError"):
        async with MCPTools([bad]):
            pass
    async with MCPTools([bad, test_server()], required=False) as mcp:
        assert "FileNotFoundError" in mcp.unavailable["ghost"]
        assert "lookup" in mcp.registry()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- configuration
def test_config_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "mcp.yaml"
    add_mcp_server(path, MCPServerConfig.stdio("time", "mcp-server-time", "--local-timezone",
                                               "UTC", tags=("clock",), cwd="work"))
    add_mcp_server(path, MCPServerConfig.http("docs", "http://127.0.0.1:8000/mcp",
                                              tools=("search_*",)))
    with pytest.raises(MCPConfigError, match="already has a server 'time'; pass --replace"):
        add_mcp_server(path, MCPServerConfig.stdio("time", "other"))
    time_cfg, docs = read_mcp_config(path)
    assert time_cfg.command == ("mcp-server-time", "--local-timezone", "UTC")
    assert time_cfg.tags == ("clock",) and time_cfg.cwd == str(tmp_path / "work")
    assert docs.url == "http://127.0.0.1:8000/mcp" and docs.tools == ("search_*",)


@pytest.mark.parametrize(("text", "message"), [
    ("servers: {a: {command: x, url: 'http://h'}}", "give exactly one of `command`"),
    ("servers: {a: {}}", "give exactly one of `command`"),
    ("servers: {a: {command: x, colour: red}}", "unknown key(s) colour"),
    ("servers: {a: {command: x, side_effects: {t: harmless}}}", "side_effects.t is 'harmless'"),
    ("servers: {a: {url: 'ftp://h'}}", "must start with http:// or https://"),
    ("servers: [a]", "needs a top-level `servers:` mapping"),
    ("servers: {'a b': {command: x}}", "a server name uses letters"),
])
def test_config_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str
                                                 ) -> None:
    path = tmp_path / "mcp.yaml"
    path.write_text(text)
    with pytest.raises(MCPConfigError) as err:
        read_mcp_config(path)
    assert message in str(err.value)


async def test_mcp_tools_join_an_existing_registry_next_to_python_tools() -> None:
    reg = ToolRegistry()

    @reg.tool
    def local(x: int) -> int:
        """A local tool."""
        return x

    async with MCPTools([test_server()]) as mcp:
        mcp.registry(names=["lookup"], into=reg)
        assert reg.names() == ["local", "lookup"]
        assert reg.get("lookup").kind == "mcp" and reg.get("local").kind == "python"


def test_a_network_ref_in_a_schema_is_never_fetched() -> None:
    """SEP-2106: a server's schema must not make the client send requests (hostile server)."""
    from mcp_types import Tool as RemoteTool

    from tether.tools import ToolArgumentError
    from tether.tools.mcp import MCPConnection, MCPTool

    from .mcp_support import injection_page

    with injection_page() as (url, hits):
        remote = RemoteTool.model_validate({"name": "lookup_user", "inputSchema": {
            "type": "object", "$defs": {"uid": {"type": "string", "pattern": "^[a-z]+$"}},
            "properties": {"id": {"$ref": "#/$defs/uid"}, "profile": {"$ref": url}},
            "required": ["id"]}})
        tool = MCPTool(MCPConnection(test_server()), remote)
        assert tool.validate({"id": "ada"}) == {"id": "ada"}  # same-document refs resolve
        with pytest.raises(ToolArgumentError, match="bad!"):
            tool.validate({"id": "bad!"})
        with pytest.raises(ToolArgumentError, match="which Tether does not fetch"):
            tool.validate({"id": "ada", "profile": {"x": 1}})
    assert hits == []


@pytest.mark.parametrize(("options", "message"), [
    ({"protocol": "v9"}, "use auto, legacy or a protocol version"),
    ({"callbacks": {"on_anything": print}}, "unknown callback(s) on_anything"),
    ({"auth": object()}, "auth applies to an HTTP server"),
])
def test_code_only_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(MCPConfigError, match=re.escape(message)):
        test_server(**options)


async def agent_with_its_own_servers(ctx: Any, note: str) -> Any:
    """How an agent run by any worker uses MCP: it opens the servers itself, so they live
    exactly as long as this execution (a resumed run opens them again; its completed calls
    are answered from the journal)."""
    async with MCPTools([test_server(ledger=Path(STATE["ledger"]))]) as mcp:
        tools = mcp.registry(names=["record"])
        first = await ctx.tool(tools, "record", {"note": note})
        await ctx.wait_for("go")  # suspends: the block closes, the server process ends
        second = await ctx.tool(tools, "record", {"note": note + " again"})
    return [first.output, second.output]


async def test_an_agent_that_opens_its_servers_suspends_and_resumes(db_path: str,
                                                                    tmp_path: Path) -> None:
    STATE["ledger"] = str(tmp_path / "ledger.txt")
    t = Tether(db_path, lease_ttl=5.0)
    run = await t.run(agent_with_its_own_servers, "n")
    assert run.status == "waiting", run.error
    assert _ledger(Path(STATE["ledger"])) == ["n"]
    t.signal(run.id, "go")
    done = await t.drive(run.id)
    assert done.status == "succeeded", done.error
    assert done.result == [{"result": "recorded n"}, {"result": "recorded n again"}]
    assert _ledger(Path(STATE["ledger"])) == ["n", "n again"]
    t.close()


async def test_a_flooding_result_is_cut_before_the_journal() -> None:
    async with MCPTools([test_server(max_output_chars=1000)]) as mcp:
        flood = await mcp.registry().get("big").run({"chars": 2_000_000})
        assert flood.ok and isinstance(flood.output, str)
        assert len(flood.output) < 1200
        assert "the result had 2000013 characters; Tether keeps 1000" in flood.output


def test_hostile_tool_names_and_schemas() -> None:
    from mcp_types import Tool as RemoteTool

    from tether.tools import ToolDefinitionError
    from tether.tools.mcp import MCPConnection, MCPTool

    conn = MCPConnection(test_server())

    def remote(name: str, schema: dict[str, Any]) -> Any:
        return RemoteTool.model_validate({"name": name, "inputSchema": schema})

    weird = MCPTool(conn, remote("../../etc/passwd; rm -rf", {"type": "object"}))
    assert weird.name == "______etc_passwd__rm_-rf" and weird.remote_name.startswith("../")
    assert len(MCPTool(conn, remote("n" * 300, {"type": "object"})).name) == 64
    with pytest.raises(ToolDefinitionError, match="tool 'bad' has an invalid input schema"):
        MCPTool(conn, remote("bad", {"type": "object", "properties": {"a": {"type": 5}}}))
