"""Issue 17 §8 for approvals: `tether approve|deny RUN.aN` takes a unique run-id prefix for RUN,
resolved before anything is signed (the signature covers the whole id); an ambiguous prefix
decides nothing and names the candidates. Before: only the whole id was found."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.guards import agents_guarded as A
from tests.guards.e2e_support import make_guards, open_tether, say
from tether.cli import app
from tether.guards import generate_keypair
from tether.guards.approvals import load_key_registry
from tether.models import ScriptedModel, tool_call

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args), env={"COLUMNS": "300"})
    return r.exit_code, " ".join(r.output.split())


async def test_approve_and_deny_take_a_run_id_prefix(tmp_path: Path) -> None:
    db = str(tmp_path / "approvals.db")
    alice_priv, alice_pub = generate_keypair()
    (tmp_path / "alice.key").write_text(alice_priv)
    keys = tmp_path / "approvers.yaml"
    keys.write_text(json.dumps({"alice": alice_pub}))
    guards = make_guards(None, approvers=load_key_registry(keys))
    A.reset(ScriptedModel([say("", tool_call("refund", {"card": "c", "amount": 5})), "ok"]),
            guards)
    t = open_tether(db, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "waiting"
    sign = ("--db", db, "--keys", str(keys), "--approver", "alice",
            "--key", str(tmp_path / "alice.key"))

    # a second run makes the bare "r" prefix ambiguous
    other = t.submit("tests.runtime.agents_core:sequential", 1, run_id=run.id[:6] + "zz")
    code, out = invoke("approve", "r.a1", *sign)
    assert code == 1 and "ambiguous" in out and run.id in out and other in out
    code, out = invoke("approve", run.id[:6] + ".a1", *sign)
    assert code == 1 and "ambiguous" in out  # still two runs start with those 6 characters
    code, out = invoke("approve", "rnothere.a1", *sign)
    assert code == 1 and "nor one starting with it" in out

    listed = invoke("approvals", "--db", db, "--keys", str(keys))[1]
    assert f"{run.id}.a1" in listed  # nothing was decided by the refused attempts

    code, out = invoke("approve", run.id[:7] + ".a1", *sign, "--reason", "ok")
    assert code == 0, out
    assert f"{run.id}.a1: approve recorded by alice" in out  # the whole id, signed as such
    assert "no pending approvals" in invoke("approvals", "--db", db, "--keys", str(keys))[1]
