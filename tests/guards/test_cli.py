"""`tether policy|pii|approvals|approve|deny` through the real root app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether.cli import app
from tether.guards import generate_keypair
from tether.models import ScriptedModel, tool_call

from . import agents_guarded as A
from .e2e_support import make_guards, open_tether, say

runner = CliRunner()

GOOD = """\
name: demo
rules:
  - id: files
    tools: read_file
    effect: allow
    args:
      path: {path_under: /workspace}
"""


class Out:
    """Exit code and output with whitespace collapsed (rich wraps long lines)."""

    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code = exit_code
        self.raw = output
        self.output = " ".join(output.split())


def invoke(*args: str, input: str | None = None) -> Out:
    r = runner.invoke(app, list(args), input=input)
    return Out(r.exit_code, r.output)


def test_policy_check_ok_and_invalid(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    r = invoke("policy", "check", str(good))
    assert r.exit_code == 0 and "1 rule(s)" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("path_under", "path_undr"))
    r = invoke("policy", "check", str(bad))
    assert r.exit_code == 1
    assert f"{bad}:7" in r.output and "unknown condition 'path_undr'" in r.output
    r = invoke("policy", "check", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 1 and "cannot read policy file" in r.output


def test_policy_explain(tmp_path: Path):
    f = tmp_path / "p.yaml"
    f.write_text(GOOD)
    r = invoke("policy", "explain", str(f), "read_file", '{"path": "/workspace/a"}')
    assert r.exit_code == 0 and "ALLOW read_file by rule 'files'" in r.output
    r = invoke("policy", "explain", str(f), "read_file", '{"path": "/workspace/../etc"}')
    assert r.exit_code == 1 and "DENY" in r.output and "outside /workspace" in r.output
    r = invoke("policy", "explain", str(f), "read_file", '{"path": "/workspace/a"}', "--json")
    assert json.loads(r.raw)["rule"] == "files"
    r = invoke("policy", "explain", str(f), "read_file", "{not json")
    assert r.exit_code == 2 and "not valid JSON" in r.output
    # what the runtime refuses before the policy judges it is not explained as ALLOW
    r = invoke("policy", "explain", str(f), "read_file", '["/workspace/a"]')
    assert r.exit_code == 2 and "must be a JSON object" in r.output and "ALLOW" not in r.output
    r = invoke("policy", "explain", str(f), "read_file",
               '{"path": "/etc/passwd", "path": "/workspace/a"}')
    assert r.exit_code == 2 and "'path' twice" in r.output and "ALLOW" not in r.output


def test_pii_mask_stdin():
    r = invoke("pii", "mask", "-p", "TICKET=T-\\d{4}", input="mail a@b.io about T-1234\n")
    assert r.exit_code == 0
    assert r.raw.startswith("mail [EMAIL_1] about [TICKET_1]\n")
    r = invoke("pii", "mask", "--json", input="ssn 123-45-6789")
    assert json.loads(r.raw)["masked"] == "ssn [SSN_1]"
    r = invoke("pii", "mask", "-p", "bad", input="x")
    assert r.exit_code == 2 and "LABEL=REGEX" in r.output


async def test_approvals_approve_deny_via_cli(tmp_path: Path, db_path: str):
    alice_priv, alice_pub = generate_keypair()
    bob_priv, bob_pub = generate_keypair()
    (tmp_path / "alice.key").write_text(alice_priv)
    (tmp_path / "bob.key").write_text(bob_priv)
    keys = tmp_path / "approvers.yaml"
    keys.write_text(json.dumps({"alice": alice_pub, "bob": bob_pub}))
    from tether.guards.approvals import load_key_registry

    guards = make_guards(None, approvers=load_key_registry(keys))
    A.reset(ScriptedModel([say("", tool_call("transfer", {"to": "a", "amount": 5})),
                           say("", tool_call("refund", {"card": "c", "amount": 5})), "ok"]),
            guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    aid = f"{run.id}.a1"
    r = invoke("approvals", "--db", db_path, "--keys", str(keys))
    assert r.exit_code == 0 and aid in r.output and "2 signed approvals" in r.output

    r = invoke("approve", aid, "--db", db_path, "--keys", str(keys), "--approver", "alice")
    assert r.exit_code == 1 and "must be signed" in r.output
    r = invoke("approve", aid, "--db", db_path, "--keys", str(keys), "--approver", "bob",
               "--key", str(tmp_path / "alice.key"))
    assert r.exit_code == 1 and "invalid signature" in r.output
    r = invoke("approve", aid, "--db", db_path, "--keys", str(keys), "--approver", "alice",
               "--key", str(tmp_path / "alice.key"), "--reason", "looks fine")
    assert r.exit_code == 0 and "one more distinct approver" in r.output
    r = invoke("approve", aid, "--db", db_path, "--keys", str(keys), "--approver", "alice",
               "--key", str(tmp_path / "alice.key"))
    assert r.exit_code == 1 and "two distinct approvers" in r.output
    r = invoke("approve", aid, "--db", db_path, "--keys", str(keys), "--approver", "bob",
               "--key", str(tmp_path / "bob.key"))
    assert r.exit_code == 0 and "status approved" in r.output
    run = await t.drive(run.id)
    assert run.status == "waiting" and A.EXECUTED == [("transfer", {"to": "a", "amount": 5.0})]

    r = invoke("deny", f"{run.id}.a2", "--db", db_path, "--reason", "no")
    assert r.exit_code == 1 and "must be signed" in r.output  # a denial too (issue 13)
    r = invoke("deny", f"{run.id}.a2", "--db", db_path, "--reason", "no", "--keys", str(keys),
               "--approver", "bob", "--key", str(tmp_path / "bob.key"))
    assert r.exit_code == 0 and "status denied" in r.output
    run = await t.drive(run.id)
    assert run.status == "succeeded" and len(A.EXECUTED) == 1
    r = invoke("deny", f"{run.id}.a2", "--db", db_path)
    assert r.exit_code == 1 and "already finished" in r.output
    r = invoke("approve", "no-such-id", "--db", db_path)
    assert r.exit_code == 1 and "unknown approval id" in r.output
    t.close()


@pytest.mark.parametrize("content,fragment", [
    ("alice: not-a-key\n", "malformed public key"),
    ("- just a list\n", "must map approver ids"),
    ("alice: [1]\n", "must be a string"),
])
def test_malformed_key_files(tmp_path: Path, db_path: str, content: str, fragment: str):
    keys = tmp_path / "k.yaml"
    keys.write_text(content)
    r = invoke("approvals", "--db", db_path, "--keys", str(keys))
    assert r.exit_code == 2 and fragment in r.output


def test_keygen(tmp_path: Path):
    prefix = str(tmp_path / "carol")
    r = invoke("approvals", "--keygen", prefix)
    assert r.exit_code == 0
    assert (tmp_path / "carol.key").stat().st_mode & 0o777 == 0o600
    # one `ssh-ed25519 ...` line: what follows `carol: ` in an approvers file
    assert (tmp_path / "carol.pub").read_text().startswith("ssh-ed25519 ")


async def test_honeypot_run_is_listed_by_runs_flagged(db_path: str):
    guards = make_guards(None)
    A.reset(ScriptedModel([say("", tool_call("delete_all", {})), "done"]), guards)
    t = open_tether(db_path, guards)
    flagged = await t.run(A.react, {"task": "clean up"})
    A.reset(ScriptedModel([say("", tool_call("search", {"q": "x"})), "done"]), guards)
    clean = await t.run(A.react, {"task": "search"})
    assert (flagged.status, clean.status) == ("succeeded", "succeeded") and A.EXECUTED == [
        ("search", {"q": "x"})]
    t.close()
    r = invoke("runs", "--flagged", "--json", "--db", db_path)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.raw)
    assert [row["id"] for row in rows] == [flagged.id]
    assert rows[0]["flags"] == [{"reason": "honeypot tool 'delete_all' was called",
                                 "flag": "honeypot", "tool": "delete_all",
                                 "rule": "honeypot:delete_all"}]
    r = invoke("runs", "--json", "--db", db_path)
    assert {row["id"] for row in json.loads(r.raw)} == {flagged.id, clean.id}
    r = invoke("runs", "--flagged", "--db", db_path)
    assert r.exit_code == 0 and "flagged" in r.output and clean.id not in r.output
    # older than the newest --limit runs, it is listed all the same (before: the filter looked
    # only at those, so a flagged run was hidden by any later ones)
    r = invoke("runs", "--flagged", "--limit", "1", "--json", "--db", db_path)
    assert [row["id"] for row in json.loads(r.raw)] == [flagged.id]
