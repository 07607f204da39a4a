"""A newcomer's first approval from the shell, as docs/cli.md and docs/guards.md tell it: make a
key pair, register it, run an agent whose tool call needs approval, approve it, resume it.

Before: `tether approvals --keygen` wrote a PEM public key and said "register the public key in
the approvers file" without the line to write (PEM pasted after `alice: ` is not YAML), and a
second `--keygen alice` was a FileExistsError traceback; `tether approve --key alice.key` signed
as the OS user (`root`), refused with a hint to pass --keys even when --keys was given; a run
waiting for an approval said only "waiting for signal 'approval:…'", `tether signal RUN
approval:ID` with an unsigned payload said "delivered" (the run then rejects it and keeps
waiting), and a decision did not say that a worker must then resume the run."""

from __future__ import annotations

import json
from pathlib import Path

from tether.guards import generate_keypair
from tether.guards.approvals import load_key_registry

from .cli_support import tether

AGENT = '''
from tether.agents import react
from tether.models import ScriptedModel, tool_call
from tether.tools import ToolRegistry, tool


@tool(side_effect="write")
def refund(order: str) -> str:
    """Refund an order."""
    return f"refunded {order}"


TOOLS = ToolRegistry([refund])
MODEL = ScriptedModel([tool_call("refund", {"order": "A-7"}), "Refunded A-7."])


async def support(ctx, goal):
    return await react(ctx, goal, model=MODEL, tools=TOOLS)
'''

GOVERNANCE = '''
from tether.guards import GuardConfig, Guards, load_key_registry, loads_policy
from shop import TOOLS

POLICY = "version: 1\\nname: shop\\nrules:\\n  - {id: refunds, tools: refund, effect: approve}\\n"
GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "shop.yaml"),
                            approvers=load_key_registry("approvers.yaml")), tools=TOOLS)
'''


def said(proc: object) -> str:
    return " ".join((proc.stdout + proc.stderr).split())  # type: ignore[attr-defined]


def keygen_line(tmp_path: Path, name: str) -> str:
    """What `--keygen NAME` prints last: the approvers-file line for the new key."""
    out = tether("approvals", "--keygen", name, cwd=tmp_path).stdout
    return out.strip().splitlines()[-1]


def test_keygen_prints_the_line_for_the_approvers_file(tmp_path: Path) -> None:
    lines = [keygen_line(tmp_path, "alice"), keygen_line(tmp_path, "bob")]
    assert lines[0].startswith("alice: ssh-ed25519 ")
    (tmp_path / "approvers.yaml").write_text("\n".join(lines) + "\n")
    assert load_key_registry(tmp_path / "approvers.yaml").approvers() == ["alice", "bob"]

    again = tether("approvals", "--keygen", "alice", cwd=tmp_path, check=False)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "alice.key already exists" in said(again)


def test_approve_signs_as_the_approver_the_key_belongs_to(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(AGENT)
    (tmp_path / "governance.py").write_text(GOVERNANCE)
    approvers = {}
    for name in ("alice", "bob"):  # as --keygen writes them, without depending on its output
        private, approvers[name] = generate_keypair()
        (tmp_path / f"{name}.key").write_text(private)
    (tmp_path / "approvers.yaml").write_text(json.dumps(approvers))
    db = tmp_path / "t.db"

    run = tether("run", "--guards", "governance.py:GUARDS", "shop.py:support", "--input",
                 '"refund A-7"', "--quiet", db=db, cwd=tmp_path)
    run_id = run.stdout.split("journal of run ")[1].split()[0]
    approval = f"{run_id}.a1"
    assert f"tether approve {approval} --key" in said(run)  # how to decide it, not just a name

    raw = tether("signal", run_id, f"approval:{approval}", '{"verdict": "approve"}', db=db,
                 cwd=tmp_path)
    assert "the run rejects this one" in said(raw) and f"tether approve {approval}" in said(raw)

    wrong = tether("approve", approval, "--key", "alice.key", "--keys", "approvers.yaml",
                   "--approver", "carol", db=db, cwd=tmp_path, check=False)
    assert wrong.returncode == 1
    assert "pass --approver NAME, one of alice, bob" in said(wrong)

    decided = tether("approve", approval, "--key", "bob.key", "--keys", "approvers.yaml",
                     "--reason", "ok", db=db, cwd=tmp_path, env={"TETHER_APPROVER": ""})
    out = said(decided)
    assert f"{approval}: approve recorded by bob; status approved" in out
    assert "tether worker" in out  # nothing resumes it until a worker runs
