"""`tether mcp serve` frozen at random (SIGSTOP ... SIGCONT) while a client calls it: every call
still gets its answer, and every call's run ends succeeded in the journal.

Why: a server process can stall at any point (a loaded host, a paused container, a profiler),
and its timers (the heartbeat, the lease, the 0.5 s limit on unwritten runs) then fire in
orders a quiet machine never shows. This found a heartbeat that stopped a run started for a call
before its task first ran (the client got "run ... was never written"); the lease here is short
(0.3 s) so that beats, and leases lost while frozen, are many."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.freezer import Freezer
from tests.server.test_mcp_serve import ROOT, make_setup, serve_args
from tether.runtime import Tether

CALLS = 150


def _server_pid(setup: dict[str, Any]) -> int:
    found = subprocess.run(["pgrep", "-f", setup["policy"]], capture_output=True, text=True)
    pids = [int(p) for p in found.stdout.split()]
    assert len(pids) == 1, f"expected one server process, found {pids}"
    return pids[0]


@pytest.mark.slow
async def test_every_call_to_a_server_frozen_at_random_is_answered(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    args = serve_args(setup, "--lease-ttl", "0.3")
    params = StdioServerParameters(command=args[0], args=args[1:], env=setup["env"],
                                   cwd=str(ROOT))
    wrong: list[str] = []
    async with Client(params, mode="legacy") as client:
        await client.call_tool("add", {"a": 0, "b": 0})
        with Freezer(_server_pid(setup), seed=3) as freezer:
            for i in range(CALLS):
                try:
                    if i % 2:
                        got = await client.call_tool("lookup", {"order_id": f"o-{i}"})
                        ok = got.structured_content == {"order_id": f"o-{i}",
                                                        "status": "shipped"}
                    else:
                        got = await client.call_tool("add", {"a": i, "b": 1})
                        ok = (isinstance(got.content[0], types.TextContent)
                              and got.content[0].text == str(i + 1))
                    if got.is_error or not ok:
                        wrong.append(f"call {i}: {got}")
                except Exception as exc:  # what the client raised is the failure
                    wrong.append(f"call {i}: {type(exc).__name__}: {exc}")
    assert freezer.freezes > 20, f"only {freezer.freezes} freezes: the test froze too little"
    assert wrong == [], f"{len(wrong)} of {CALLS} calls failed:\n" + "\n".join(wrong[:5])
    t = Tether(setup["db"])
    try:
        runs = t.runs(tenant="mcp", limit=1000)
        assert len(runs) == CALLS + 1
        assert {r.status for r in runs} == {"succeeded"}, [
            (r.id, r.status, r.reason) for r in runs if r.status != "succeeded"]
    finally:
        t.close()
