"""Agents, guards, approvers and a server config for the API tests; importable by reference
from any process (a real `tether serve` subprocess resolves the same names).

The approvers' Ed25519 keys are derived from fixed seeds (test keys, known to everyone who
reads this file): the guards' registry, the server's signing keys and a test that signs a
decision itself all agree without passing files around. Side effects of the governed tools are
appended to the file named by TETHER_TEST_LEDGER, so a test sees what any process executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tether import Context
from tether.agents import react
from tether.guards import GuardConfig, Guards, KeyRegistry, loads_policy
from tether.models import ScriptedModel, tool_call
from tether.models.scripted import ScriptedCall
from tether.server.api import AgentEntry, ServerConfig
from tether.tools import ToolRegistry, tool

APPROVERS = ("alice", "bob", "carol")


def private_key(approver: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(approver.encode()).digest())


def private_pem(approver: str) -> bytes:
    return private_key(approver).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def write_signing_keys(folder: Path, approvers: tuple[str, ...] = APPROVERS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in approvers:
        (folder / f"{name}.key").write_bytes(private_pem(name))
    return folder


POLICY = """\
version: 1
name: payments
rules:
  - {id: lookups, tools: lookup, effect: allow}
  - {id: transfers, tools: transfer, effect: approve, critical: true}
  - {id: refunds, tools: refund, effect: approve}
"""


def _did(what: str) -> None:
    ledger = os.environ.get("TETHER_TEST_LEDGER")
    if ledger:
        with open(ledger, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")


@tool(side_effect="read")
def lookup(account: str) -> dict[str, Any]:
    """The balance of an account."""
    return {"account": account, "balance": 900}


@tool(side_effect="write")
def transfer(to: str, amount: float) -> str:
    """Move money (critical: two approvers)."""
    _did(f"transfer {to} {amount}")
    return f"sent {amount} to {to}"


@tool(side_effect="write")
def refund(order: str) -> str:
    """Refund an order (one approver)."""
    _did(f"refund {order}")
    return f"refunded {order}"


@tool(side_effect="destructive")
def wipe(target: str) -> str:
    """Delete everything: no policy rule allows it."""
    _did(f"wipe {target}")
    return f"wiped {target}"


TOOLS = ToolRegistry([lookup, transfer, refund, wipe])
_REGISTRY = KeyRegistry()
for _name in APPROVERS:
    _REGISTRY.register(_name, private_key(_name).public_key())
GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "payments.yaml"), approvers=_REGISTRY),
                tools=TOOLS)


def _script(call: ScriptedCall) -> Any:
    """A function of the conversation: a run resumed anywhere is answered the same way."""
    goal = next(m.content or "" for m in call.messages if m.role == "user")
    seen = [m for m in call.messages if m.role == "tool"]
    if seen:
        return f"done: {seen[-1].content}"
    if goal.startswith("transfer"):
        return tool_call("transfer", {"to": "acct-9", "amount": 250})
    if goal.startswith("refund"):
        return tool_call("refund", {"order": "A-7"})
    if goal.startswith("wipe"):
        return tool_call("wipe", {"target": "prod"})
    return tool_call("lookup", {"account": "acct-1"})


MODEL = ScriptedModel(fn=_script)


async def assistant(ctx: Context, goal: str) -> Any:
    """ReAct with no guards= argument: it runs under whatever guards the run declares."""
    return await react(ctx, goal, model=MODEL, tools=TOOLS, max_steps=4)


async def echo(ctx: Context, inp: Any = None) -> Any:
    return inp


async def waiter(ctx: Context, _: Any = None) -> Any:
    """Waits for the signal `go` and returns its payload."""
    return await ctx.wait_for("go")


async def counter(ctx: Context, n: int = 3) -> int:
    """n journaled steps, then waits for `go` (something for an event stream to show)."""
    total = 0
    for i in range(int(n)):
        total += await ctx.step(f"add{i}", _add, i)
    await ctx.wait_for("go")
    return total


def _add(i: int) -> int:
    return i


def config(db: str | os.PathLike[str], *, signing_keys: Path | None = None,
           embedded_worker: bool = True, extra_agents: dict[str, Any] | None = None,
           **kwargs: Any) -> ServerConfig:
    here = "tests.server.api_support"
    return ServerConfig(
        db=db,
        agents={
            "echo": f"{here}:echo",
            "waiter": f"{here}:waiter",
            "counter": f"{here}:counter",
            "slow": f"{here}:slow",
            "assistant": AgentEntry("assistant", f"{here}:assistant", guards=f"{here}:GUARDS",
                                    description="pays, refunds and wipes, under guards"),
            **(extra_agents or {}),
        },
        signing_keys=signing_keys, embedded_worker=embedded_worker, sse_poll=0.05, **kwargs)


# ------------------------------------------------------------------------------ test harness
KEYS = {  # label -> (tenant, role, name)
    "viewer": ("acme", "viewer", "vic"),
    "operator": ("acme", "operator", "olga"),
    "alice": ("acme", "approver", "alice"),
    "bob": ("acme", "approver", "bob"),
    "admin": ("acme", "admin", "ada"),
    "b-viewer": ("globex", "viewer", "gus"),
    "b-operator": ("globex", "operator", "gina"),
    "b-approver": ("globex", "approver", "carol"),
    "b-admin": ("globex", "admin", "gabe"),
}


def make_keys(db: str | os.PathLike[str]) -> dict[str, str]:
    from tether.runtime import Tether
    from tether.server.keys import ApiKeys

    t = Tether(db)
    try:
        keys = ApiKeys(t.store)
        return {label: keys.create(tenant, role, name)[0]
                for label, (tenant, role, name) in KEYS.items()}
    finally:
        t.close()


class Api:
    """A TestClient with the keys above; `as_(label)` gives the headers of one of them."""

    def __init__(self, client: Any, keys: dict[str, str]) -> None:
        self.client, self.keys = client, keys
        self.app: Any = None

    def as_(self, label: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[label]}"}

    def submit(self, agent: str, inp: Any = None, label: str = "operator", **body: Any
               ) -> dict[str, Any]:
        r = self.client.post("/v1/runs", json={"agent": agent, "input": inp, **body},
                             headers=self.as_(label))
        assert r.status_code in (200, 201), r.text
        return dict(r.json()["run"])

    def wait(self, run_id: str, *statuses: str, label: str = "viewer",
             timeout: float = 20.0) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        while True:
            r = self.client.get(f"/v1/runs/{run_id}", headers=self.as_(label))
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            if body["run"]["status"] in statuses:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} is {body['run']['status']}, not {statuses}")
            time.sleep(0.05)


@contextlib.contextmanager
def running(tmp: Path, **kwargs: Any) -> Iterator[Api]:
    """The app on a fresh database in `tmp`, lifespan (and embedded worker) running."""
    from fastapi.testclient import TestClient

    from tether.server.api import create_app

    db = tmp / "tether.db"
    keys = make_keys(db)
    kwargs.setdefault("signing_keys", write_signing_keys(tmp / "signing-keys"))
    app = create_app(config(db, **kwargs))
    with TestClient(app) as client:
        api = Api(client, keys)
        api.app = app
        yield api


async def slow(ctx: Context, seconds: float = 2.0) -> str:
    """One step that blocks its thread for `seconds` (the event loop keeps serving)."""
    import time

    return str(await ctx.step("nap", time.sleep, float(seconds)))
