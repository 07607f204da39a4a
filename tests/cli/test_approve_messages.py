"""What `tether approve` says when the approver got something wrong (a new user's walkthrough).

Before: a mistyped approval id with alice's key said "'root' is not in the approvers file: pass
--approver NAME" (the OS user stood in for the approver, and the id was not the only thing
blamed); an unregistered key said "approver 'root' has no registered key"; the public half given
to --key printed cryptography's "Valid PEM but no BEGIN/END delimiters for a private key" without
naming the flag. Now the key says who signs, and each refusal names the one thing wrong: the id,
the key file and the approvers file, or the flag. Nothing is decided by any of them.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.guards import agents_guarded as A
from tests.guards.e2e_support import make_guards, open_tether, say
from tether.cli import app
from tether.guards import generate_keypair, inbox
from tether.guards.approvals import load_key_registry
from tether.models import ScriptedModel, tool_call

runner = CliRunner()
USER = f"'{getpass.getuser()}'"  # who used to be blamed: the OS user, quoted as an approver
# none of the approver's settings may come from the environment of whoever runs the tests
CLEAN_ENV: dict[str, str | None] = {"COLUMNS": "300", "TETHER_APPROVER": None,
                                    "TETHER_APPROVER_KEY": None, "TETHER_APPROVERS": None}


def invoke(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args), env=CLEAN_ENV)
    return r.exit_code, " ".join(r.output.split())


@pytest.fixture
async def waiting(tmp_path: Path) -> Any:
    """A run waiting for one approval; alice is registered in approvers.yaml, bob is not."""
    db = str(tmp_path / "approvals.db")
    keys: dict[str, str] = {}
    for name in ("alice", "bob"):
        private, keys[name] = generate_keypair()
        (tmp_path / f"{name}.key").write_text(private)
        (tmp_path / f"{name}.pub").write_text(keys[name])  # a PEM .pub, as --keygen wrote
    (tmp_path / "approvers.yaml").write_text(json.dumps({"alice": keys["alice"]}))
    registry = load_key_registry(tmp_path / "approvers.yaml")
    guards = make_guards(None, approvers=registry)
    A.reset(ScriptedModel([say("", tool_call("refund", {"card": "c", "amount": 5})), "ok"]),
            guards)
    t = open_tether(db, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "waiting"
    yield t, run, db, tmp_path, registry
    t.close()


def _nothing_decided(t: Any, registry: Any) -> None:
    pending = inbox.list_pending(t.store, registry)
    assert len(pending) == 1 and pending[0].decided_by == ()


def test_an_unknown_approval_id_is_reported_alone(waiting: Any) -> None:
    t, run, db, d, registry = waiting
    files = ("--db", db, "--keys", str(d / "approvers.yaml"))
    code, out = invoke("approve", f"{run.id[:6]}.a9", "--key", str(d / "alice.key"), *files)
    assert code == 1, out
    assert f"unknown approval id '{run.id}.a9'" in out
    assert "list the pending ones with `tether approvals`" in out
    assert "--approver" not in out and "approvers file" not in out  # alice's key was fine
    code, out = invoke("deny", f"{run.id}.a2", *files)  # no key: still the id alone
    assert code == 1 and "unknown approval id" in out and "--key" not in out, out
    _nothing_decided(t, registry)


def test_an_unregistered_key_names_the_key_file_and_the_approvers_file(waiting: Any) -> None:
    t, run, db, d, registry = waiting
    code, out = invoke("approve", f"{run.id}.a1", "--key", str(d / "bob.key"),
                       "--keys", str(d / "approvers.yaml"), "--db", db)
    assert code == 1, out
    assert f"the key in {d / 'bob.key'} matches no approver in {d / 'approvers.yaml'}" in out
    assert "(its approvers: alice)" in out
    assert "`bob: ssh-ed25519 AAAA" in out  # the line that would register it
    assert USER not in out and "has no registered key" not in out
    _nothing_decided(t, registry)


def test_a_public_key_given_to_key_is_named_as_such(waiting: Any) -> None:
    t, run, db, d, registry = waiting
    for pub in (d / "alice.pub", d / "alice-line.pub"):
        if pub.name == "alice-line.pub":  # the one-line form --keygen writes now
            invoke("approvals", "--keygen", str(d / "alice-line"))
        code, out = invoke("approve", f"{run.id}.a1", "--key", str(pub),
                           "--keys", str(d / "approvers.yaml"), "--db", db)
        assert code == 2, out
        assert (f"--key {pub} is a public key; pass the private key file "
                f"({pub.with_suffix('.key')}) written by `tether approvals --keygen`"
                ) in out
        assert "BEGIN/END" not in out
    code, out = invoke("approve", f"{run.id}.a1", "--key", str(d / "approvers.yaml"),
                       "--keys", str(d / "approvers.yaml"), "--db", db)
    assert code == 2 and f"--key {d / 'approvers.yaml'} is not an Ed25519 private key" in out
    _nothing_decided(t, registry)


def test_a_key_that_is_not_the_named_approvers_says_whose_it_is(waiting: Any) -> None:
    t, run, db, d, registry = waiting
    (d / "both.yaml").write_text(json.dumps({
        "alice": (d / "alice.pub").read_text(), "bob": (d / "bob.pub").read_text()}))
    code, out = invoke("approve", f"{run.id}.a1", "--key", str(d / "alice.key"), "--approver",
                       "bob", "--keys", str(d / "both.yaml"), "--db", db)
    assert code == 1, out
    assert f"--key {d / 'alice.key'} is not bob's key in {d / 'both.yaml'} (it is alice's)" in out
    assert "leave --approver out to sign as alice" in out
    _nothing_decided(t, registry)


def test_without_an_approvers_file_the_key_cannot_be_checked(waiting: Any) -> None:
    t, run, db, d, registry = waiting
    code, out = invoke("approve", f"{run.id}.a1", "--key", str(d / "alice.key"), "--db", db)
    assert code == 1, out
    assert f"no registered key to check --key {d / 'alice.key'} against: pass --keys" in out
    assert USER not in out
    _nothing_decided(t, registry)


def test_the_key_says_who_signs(waiting: Any) -> None:
    t, run, db, d, registry = waiting
    code, out = invoke("approve", f"{run.id}.a1", "--key", str(d / "alice.key"),
                       "--keys", str(d / "approvers.yaml"), "--db", db, "--reason", "ok")
    assert code == 0, out
    assert f"{run.id}.a1: approve recorded by alice; status approved" in out
    assert inbox.list_pending(t.store, registry) == []
