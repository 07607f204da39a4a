"""What keeps an MCP tool call cheap without weakening it: the end of a tool-call run does not
wake the worker's claim loop (it makes nothing else runnable), while every other end still
does; the guards build their PII recognizers once per server, not per call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import Client

from tests.server.mcp_agents import POLICY, TOOLS
from tether.guards import GuardConfig, Guards, PiiPattern, loads_policy
from tether.runtime import Context, Tether
from tether.server.mcp import AgentTool, TetherMCPServer

#: the shared fixtures (`ran`, `keys`, `server`)
pytest_plugins = ["tests.server.mcp_support"]


def text(result: types.CallToolResult) -> str:
    assert not result.is_error and isinstance(result.content[0], types.TextContent)
    return result.content[0].text


def guarded(tmp_path: Path, **kwargs: Any) -> TetherMCPServer:
    guards = Guards(GuardConfig(policy=loads_policy(POLICY)), tools=TOOLS)
    return TetherMCPServer(TOOLS, db=tmp_path / "t.db", guards=guards, **kwargs)


async def test_a_tool_call_ending_does_not_wake_the_claim_loop(tmp_path: Path, ran: Path) -> None:
    srv = guarded(tmp_path)
    async with srv.running(), Client(srv.sdk, mode="legacy") as client:
        answers = [await client.call_tool("add", {"a": i, "b": 1}) for i in range(5)]
    srv.close()
    assert [text(a) for a in answers] == [str(i + 1) for i in range(5)]
    assert srv.worker.quiet_ends == 5  # every call's end: the waiter woken, not the loop
    assert [r.status for r in srv.tether.runs(tenant="mcp")] == ["succeeded"] * 5


async def test_an_agent_run_ending_still_wakes_the_claim_loop(tmp_path: Path) -> None:
    """An agent may have spawned children or be a child: its end is not a tool call's."""
    srv = guarded(tmp_path, agents={"research": AgentTool(
        "research", "tests.server.mcp_agents:research")})
    async with srv.running(), Client(srv.sdk, mode="legacy") as client:
        answer = await client.call_tool("research", {"goal": "sync"})
    srv.close()
    assert not answer.is_error
    assert srv.worker.quiet_ends == 0


async def test_a_full_worker_is_woken_when_a_tool_call_frees_its_slot(tmp_path: Path) -> None:
    srv = guarded(tmp_path)
    srv.worker.concurrency = 1  # the call holds the only slot: its end frees one to claim
    async with srv.running(), Client(srv.sdk, mode="legacy") as client:
        answer = await client.call_tool("add", {"a": 1, "b": 1})
    srv.close()
    assert text(answer) == "2"
    assert srv.worker.quiet_ends == 0


SEEN: list[tuple[Any, ...]] = []


async def note_recognizers(ctx: Context, _input: Any = None) -> str:
    SEEN.append(ctx.guards.state(ctx).masker.recognizers)
    return "ok"


async def test_pii_recognizers_are_built_once_per_guards(tmp_path: Path) -> None:
    custom = PiiPattern.custom("TICKET", r"TCK-\d{6}")
    guards = Guards(GuardConfig(policy=loads_policy(POLICY), pii_patterns=[custom]), tools=TOOLS)
    tether = Tether(tmp_path / "t.db", guards=guards)
    SEEN.clear()
    for _ in range(2):
        run = await tether.run(note_recognizers)
        assert run.status == "succeeded", run.error
    tether.close()
    first, second = SEEN
    assert len(first) == len(second)
    assert all(a is b for a, b in zip(first, second, strict=True))  # shared, not rebuilt
    assert custom in first and {r.label for r in first} >= {"EMAIL", "PHONE", "TICKET"}


async def test_a_fresh_call_reads_its_run_only_once_something_changed(tmp_path: Path) -> None:
    """`settled(since=...)`: until the worker has kicked since the submission, the run cannot
    have moved, so the waiter does not read it; the first kick (its end) wakes it."""
    srv = guarded(tmp_path)
    run_id = srv.tether.submit("tests.server.mcp_agents:research", {"goal": "x"}, tenant="mcp")
    # taken after the submission, whose client kicks the server's worker (adopted by it): the
    # server submits through its worker instead, which does not
    since = srv.worker.changed
    reads: list[str] = []
    get_run = srv.tether.store.get_run

    def counted(rid: str) -> Any:
        reads.append(rid)
        return get_run(rid)

    srv.tether.store.get_run = counted  # type: ignore[method-assign,assignment]
    waiter = asyncio.create_task(srv.worker.settled(run_id, poll=60.0, until=lambda r: True,
                                                        since=since))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiter.done() and reads == []  # nothing changed: not even read
    srv.worker.kick()
    run = await asyncio.wait_for(waiter, 60.0)
    assert run.id == run_id and reads == [run_id]
    srv.close()


async def test_a_plain_call_is_answered_without_reading_its_run_back(tmp_path: Path) -> None:
    """The worker hands the run it ended, as committed, to the request waiting for it: no
    read of the run after its end (one store read less per call); every other read path is
    unchanged (a run ended by another process is still read)."""
    srv = guarded(tmp_path)
    reads: list[str] = []
    get_run = srv.tether.store.get_run

    def counted(rid: str) -> Any:
        reads.append(rid)
        return get_run(rid)

    async with srv.running(), Client(srv.sdk, mode="legacy") as client:
        await client.call_tool("add", {"a": 0, "b": 1})  # warm: the policy's tool metadata
        srv.tether.store.get_run = counted  # type: ignore[method-assign,assignment]
        answers = [await client.call_tool("add", {"a": i, "b": 1}) for i in range(3)]
    srv.close()
    assert [text(a) for a in answers] == ["1", "2", "3"]
    assert reads == [], f"the calls read their runs back: {reads}"
    runs = srv.tether.runs(tenant="mcp")
    assert len(runs) == 4 and {r.status for r in runs} == {"succeeded"}
    assert srv.worker._ended_runs == {}  # nothing kept once answered
