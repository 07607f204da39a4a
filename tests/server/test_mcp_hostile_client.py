"""`tether mcp serve` against a hostile client: values the journal cannot hold, task parameters
out of range, lines the SDK's reader cannot read, requests left unread, an approval answered
after someone else decided it, and what one client can learn of another's calls. Each must get
a clear JSON-RPC error or a bounded, correct answer, and leave the database consistent."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR

from tests.server.mcp_agents import POLICY, TOOLS
from tests.server.mcp_hostile_support import RawStdio
from tests.server.mcp_support import AGENTS, calls, raw
from tether.guards import GuardConfig, Guards, inbox, loads_policy, sign_decision
from tether.runtime import Tether
from tether.server.mcp import TetherMCPServer

#: the server error answering a request over the stdio server's bound (`_stdio`), and the bound;
#: written out, not imported: the tests must run (and fail) against a server without them
TOO_MANY_REQUESTS, MAX_IN_FLIGHT = -32029, 256

#: the shared fixtures (`ran`, `keys`, `server`)
pytest_plugins = ["tests.server.mcp_support"]


async def test_an_integer_the_journal_cannot_hold_is_refused_by_name(
        server: TetherMCPServer) -> None:
    """Before: a plain call with an integer beyond 64 bits answered JSON-RPC code 0 "run ...
    does not exist: it was never written", and a task-augmented agent call code 0 "Integer
    exceeds 64-bit range"."""
    async with Client(server.sdk, mode="legacy") as client:
        with pytest.raises(MCPError) as plain:
            await raw(client, "tools/call", {"name": "add",
                                             "arguments": {"a": 10**30, "b": 1}})
        with pytest.raises(MCPError) as task:
            await raw(client, "tools/call", {"name": "research", "task": {},
                                             "arguments": {"goal": "x", "n": [1, 2**64]}})
        # the server is fine afterwards
        fine = await client.call_tool("add", {"a": 2, "b": 3})
        assert isinstance(fine.content[0], types.TextContent) and fine.content[0].text == "5"
    assert plain.value.error.code == INVALID_PARAMS
    assert "arguments.a" in plain.value.error.message
    assert "64 bits" in plain.value.error.message
    assert task.value.error.code == INVALID_PARAMS
    assert "arguments.n.1" in task.value.error.message
    # nothing half-written: only the good call is a run
    assert [r.input["tool"] for r in server.tether.runs(tenant="mcp")] == ["add"]


@pytest.mark.parametrize("ttl", [-5, 10**30, 2**53])
async def test_a_task_ttl_out_of_range_is_refused(server: TetherMCPServer, ttl: int) -> None:
    """Before: -5 was accepted and echoed as the task's retention; 10**30 answered code 0
    "Integer exceeds 64-bit range"."""
    async with Client(server.sdk, mode="legacy") as client:
        with pytest.raises(MCPError) as refused:
            await raw(client, "tools/call", {"name": "research", "arguments": {"goal": "x"},
                                             "task": {"ttl": ttl}})
        zero = await raw(client, "tools/call", {"name": "research", "task": {"ttl": 0},
                                                "arguments": {"goal": "y", "sleep": 0}})
    assert refused.value.error.code == INVALID_PARAMS
    assert "task.ttl must be between 0 and" in refused.value.error.message
    assert zero["task"]["ttl"] == 0
    assert len(server.tether.runs(tenant="mcp")) == 1


@pytest.mark.slow
def test_stdio_answers_every_line_it_cannot_read(tmp_path: Path) -> None:
    """Before: the SDK's stdio reader dropped each of these lines with a log line, so the
    client waited for ever (no answer in 10 s) — and NaN/Infinity reached the run's input
    written as null."""
    deep: Any = []
    for _ in range(400):
        deep = [deep]
    with RawStdio(tmp_path, POLICY) as server:
        server.send(b'{"jsonrpc":"2.0","id":1,"method":')
        malformed = server.receive()
        server.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "lookup", "arguments": {"order_id": "A", "x": deep}}})
        too_deep = server.receive()
        server.send(b'[{"jsonrpc":"2.0","id":3,"method":"ping"}]')
        batch = server.receive()
        server.send(b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"research",'
                    b'"arguments":{"goal":"x","sleep":Infinity},"task":{}}}')
        infinite = server.receive()
        server.send(b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"add",'
                    b'"arguments":{"a":NaN,"b":1}}}')
        nan = server.receive()
        server.send({"jsonrpc": "2.0", "id": 6, "method": "ping"})
        alive = server.receive()
    assert malformed["id"] is None and malformed["error"]["code"] == PARSE_ERROR
    assert too_deep["id"] == 2 and too_deep["error"]["code"] == INVALID_REQUEST
    assert "nested fewer than 200 levels" in too_deep["error"]["message"]
    assert batch["error"]["code"] == INVALID_REQUEST
    assert infinite["id"] == 4 and infinite["error"]["code"] == INVALID_PARAMS
    assert "arguments.sleep" in infinite["error"]["message"]
    assert nan["id"] == 5 and nan["error"]["code"] == INVALID_PARAMS
    assert alive == {"jsonrpc": "2.0", "id": 6, "result": {}}
    for answer in (malformed, too_deep, batch, infinite, nan):
        assert "Traceback" not in answer["error"]["message"]


@pytest.mark.slow
def test_stdio_bounds_the_requests_a_client_leaves_unread(tmp_path: Path) -> None:
    """A client that writes requests without reading the answers. Before: the server read
    every line at once and started a handler for each (20,000 unread pings: RSS 99 -> 296 MB),
    so all 5,000 here were written at once and none refused."""
    pings = [{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(1, 5001)]
    with RawStdio(tmp_path, POLICY) as server:
        writer = server.flood(pings)
        writer.join(3.0)
        stalled = writer.is_alive()  # the server stopped reading: its stdin pipe is full
        answers = [server.receive() for _ in pings]
        writer.join(10.0)
    assert stalled
    assert sorted(a["id"] for a in answers) == list(range(1, 5001))  # each answered once
    refused = [a for a in answers if "error" in a]
    assert refused and all(a["error"]["code"] == TOO_MANY_REQUESTS for a in refused)
    assert f"{MAX_IN_FLIGHT} of this client's requests are unanswered" in \
        refused[0]["error"]["message"]
    assert len(refused) < len(answers)  # the others were answered as usual
    assert all(a["result"] == {} for a in answers if "error" not in a)


@pytest.mark.slow
def test_no_call_runs_before_the_handshake(tmp_path: Path) -> None:
    """A failed `initialize`, then calls. Before: the SDK refused tools/list on the connection
    (its gate comes after Tether's middleware), but tools/call ran the tool and journaled it."""
    with RawStdio(tmp_path, POLICY, handshake=False) as server:
        server.send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                     "params": {"protocolVersion": 123}})
        failed = server.receive()
        server.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                     "params": {"name": "lookup", "arguments": {"order_id": "o-1"}}})
        call = server.receive()
        server.send({"jsonrpc": "2.0", "id": 3, "method": "tasks/list"})
        tasks = server.receive()
        server.send({"jsonrpc": "2.0", "id": 4, "method": "ping"})
        ping = server.receive()
    assert "error" in failed
    assert call["id"] == 2 and call["error"]["code"] == INVALID_PARAMS
    assert "has not completed the initialize handshake" in call["error"]["message"]
    assert tasks["error"]["code"] == INVALID_PARAMS
    assert ping == {"jsonrpc": "2.0", "id": 4, "result": {}}
    assert not (tmp_path / "ran.txt").exists()  # the tool never ran
    assert Tether(tmp_path / "t.db").runs() == []  # and no run was written


async def test_an_elicited_answer_that_comes_too_late_does_not_fail_the_call(
        eliciting: TetherMCPServer, ran: Path, keys: dict[str, Any]) -> None:
    """Alice approves with `tether approve` while the client's user still has the question
    open; the user then answers. Before: the call answered an error ("approval ... is already
    approved") although the refund ran — a client that retries it refunds twice."""
    async def answer_late(context: Any, params: Any) -> types.ElicitResult:
        (run,) = eliciting.tether.runs(tenant="mcp")
        approver = Tether(eliciting.tether.store.path)  # type: ignore[attr-defined]
        request, _ = inbox.find(approver.store, f"{run.id}.a1")
        inbox.decide(approver, sign_decision(keys["private"], request.id, "approve", "alice",
                                             request.digest), keys["registry"])
        return types.ElicitResult(action="accept", content={"approve": False})

    async with Client(eliciting.sdk, mode="legacy", elicitation_callback=answer_late) as client:
        result = await asyncio.wait_for(
            client.call_tool("refund", {"order_id": "o-1", "amount": 2.0}), 30)
    assert isinstance(result, types.CallToolResult) and not result.is_error
    assert result.structured_content == {"refunded": "o-1", "amount": 2.0}
    assert calls(ran) == ["refund"]
    (run,) = eliciting.tether.runs(tenant="mcp")
    assert run.status == "succeeded"


async def test_a_digest_the_client_sent_does_not_open_an_artifact(
        server: TetherMCPServer) -> None:
    secret = server.tether.store.put_artifact(b"another tenant's payroll")
    async with Client(server.sdk, mode="legacy") as client:
        await client.call_tool("lookup", {"order_id": secret})
        (run,) = server.tether.runs(tenant="mcp")
        leaked: Any = None
        try:
            body = await client.read_resource(f"tether://runs/{run.id}/artifacts/{secret}")
            blob = body.contents[0]
            assert isinstance(blob, types.BlobResourceContents)
            leaked = base64.b64decode(blob.blob)
        except MCPError:
            pass
    assert leaked is None, f"read {leaked!r} by naming its digest in a call"


async def test_a_client_cannot_enumerate_another_clients_tasks(
        server: TetherMCPServer) -> None:
    async with Client(server.sdk, mode="legacy") as alice:
        created = await raw(alice, "tools/call", {"name": "research", "task": {},
                                                  "arguments": {"goal": "alice's secret"}})
    task_id = created["task"]["taskId"]
    async with Client(server.sdk, mode="legacy") as mallory:
        listed = [t["taskId"] for t in (await raw(mallory, "tasks/list", {}))["tasks"]]
        resources = [str(r.uri) for r in (await mallory.list_resources()).resources]
    assert task_id not in listed
    assert f"tether://runs/{task_id}" not in resources


@pytest.mark.parametrize("method", ["tasks/get", "tasks/result", "tasks/cancel"])
async def test_a_huge_task_id_is_refused_without_being_echoed(
        server: TetherMCPServer, method: str) -> None:
    """Before: a 100 KB `taskId` came back whole in the error message ("no task '...'")."""
    async with Client(server.sdk, mode="legacy") as client:
        with pytest.raises(MCPError) as refused:
            await raw(client, method, {"taskId": "x" * 100_000})
    assert refused.value.error.code == INVALID_PARAMS
    assert "taskId" in refused.value.error.message and "at most 256" in refused.value.error.message
    assert len(str(refused.value.error.model_dump())) < 2_000


async def test_a_connection_cannot_queue_tasks_without_bound(tmp_path: Path) -> None:
    """Before: a task answers at once, so a client could queue agent runs as fast as it could
    send tools/call; now a connection holds at most `max_open_tasks` unfinished ones."""
    guards = Guards(GuardConfig(policy=loads_policy(POLICY)), tools=TOOLS)
    srv = TetherMCPServer(TOOLS, db=tmp_path / "t.db", guards=guards, agents=AGENTS,
                          max_open_tasks=2)
    async with srv.running(), Client(srv.sdk, mode="legacy") as greedy:
        made = [(await raw(greedy, "tools/call", {"name": "forever", "task": {},
                                                  "arguments": {"goal": str(i)}}))
                ["task"]["taskId"] for i in range(2)]
        with pytest.raises(MCPError) as refused:
            await raw(greedy, "tools/call", {"name": "forever", "task": {},
                                             "arguments": {"goal": "3"}})
        assert refused.value.error.code == TOO_MANY_REQUESTS
        assert "2 unfinished tasks" in refused.value.error.message
        assert "tasks/cancel" in refused.value.error.message
        async with Client(srv.sdk, mode="legacy") as other:  # its own bound
            third = await raw(other, "tools/call", {"name": "forever", "task": {},
                                                    "arguments": {"goal": "other"}})
            await raw(other, "tasks/cancel", {"taskId": third["task"]["taskId"]})
        await raw(greedy, "tasks/cancel", {"taskId": made[0]})  # one ended: room for one
        again = await raw(greedy, "tools/call", {"name": "forever", "task": {},
                                                 "arguments": {"goal": "4"}})
        for task_id in (made[1], again["task"]["taskId"]):
            await raw(greedy, "tasks/cancel", {"taskId": task_id})
    runs = srv.tether.runs(tenant="mcp")
    srv.close()
    assert len(runs) == 4 and {r.status for r in runs} == {"cancelled"}  # never the refused
