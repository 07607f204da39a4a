"""Two deciders on one approval at the same instant, each with a Tether of its own on one database
(two `tether serve` processes, or `tether approve` next to the API).

Before: `inbox.decide` read the approval's decisions, checked the new one against them and sent
it, three store calls with nothing held across them but, in the API, a lock of its own process.
Two deciders that both read before either sent were both told they succeeded: an approval and a
denial of one refund both "recorded", or one approver's two decisions on a two-person approval
both accepted (the run then obeyed one and logged the other as rejected). Now the check is made
again inside the transaction that sends the decision, holding the run: the second decider reads
the first one's decision there and is refused with the reason.

The instant is forced: each decider's store waits for the other one after the reads of its
pre-check (its second journal read; `find` makes the first), so both have checked before either
sends. The last test races two real processes through the CLI's code path the same way.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from tether import Tether
from tether.guards import ApprovalError, KeyRegistry, inbox, sign_decision
from tether.guards.approvals import ApprovalDecision

from . import agents_guarded as A
from .e2e_support import APPROVER_KEYS, APPROVERS, make_guards, open_tether, search_forever

REFUND = [["refund", {"card": "c", "amount": 5}]]
TRANSFER = [["transfer", {"to": "acct-9", "amount": 1e4}]]  # critical: two approvers


class _MeetsAfterCheck:
    """A store that, on its `nth` journal read, waits for the other decider to get there too."""

    def __init__(self, store: Any, barrier: threading.Barrier, nth: int = 2) -> None:
        self._store, self._barrier, self._nth, self._reads = store, barrier, nth, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def load_events(self, run_id: str, *args: Any) -> Any:
        out = self._store.load_events(run_id, *args)
        self._reads += 1
        if self._reads == self._nth:
            self._barrier.wait(timeout=20)
        return out


def _waiting(db: str, calls: list[list[Any]], approvers: KeyRegistry) -> tuple[str, Any]:
    guards = make_guards(None, approvers=approvers)
    A.reset(search_forever(), guards)
    A.STATE["guards"] = guards
    t = open_tether(db, guards)
    try:
        run = asyncio.run(t.run(A.propose, calls))
        assert run.status == "waiting", (run.status, run.error)
        [pending] = inbox.list_pending(t.store, approvers)
        return run.id, pending.request
    finally:
        t.close()


def _race(db: str, decisions: list[ApprovalDecision], keys: KeyRegistry
          ) -> list[str | ApprovalError]:
    """Decide each of `decisions` at once, each through a Tether of its own on `db`."""
    barrier = threading.Barrier(len(decisions))
    tethers = [Tether(db) for _ in decisions]

    def decide(i: int) -> str | ApprovalError:
        t = tethers[i]
        decider = SimpleNamespace(store=_MeetsAfterCheck(t.store, barrier), kick=t.kick)
        try:
            return inbox.decide(decider, decisions[i], keys)
        except ApprovalError as exc:
            return exc

    try:
        with ThreadPoolExecutor(len(decisions)) as pool:
            return list(pool.map(decide, range(len(decisions))))
    finally:
        for t in tethers:
            t.close()


def _sign(who: str, request: Any, verdict: str, keys: dict[str, Any]) -> ApprovalDecision:
    return sign_decision(keys[who], request.id, verdict, who,  # type: ignore[arg-type]
                         request.digest, f"{who} says {verdict}")


def _drive(db: str, run_id: str, calls: list[list[Any]], approvers: KeyRegistry) -> Any:
    guards = make_guards(None, approvers=approvers)
    A.STATE["guards"] = guards
    t = open_tether(db, guards)
    try:
        return asyncio.run(t.drive(run_id))
    finally:
        t.close()


def test_an_approval_and_a_denial_at_once_one_wins(db_path):
    run_id, request = _waiting(db_path, REFUND, APPROVERS)
    results = _race(db_path, [_sign("carol", request, "approve", APPROVER_KEYS),
                              _sign("dave", request, "deny", APPROVER_KEYS)], APPROVERS)
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, ApprovalError)]
    assert len(won) == 1 and len(lost) == 1, results
    assert f"is already {won[0]}" in str(lost[0])
    t = Tether(db_path)
    delivered = t.store.pending_signals(run_id)
    t.close()
    assert len(delivered) == 1  # the loser's decision never reached the run
    done = _drive(db_path, run_id, REFUND, APPROVERS)
    assert done.status == "succeeded", done.error
    # the run did what the winner was told
    assert done.result[0]["ok"] is (won[0] == "approved")
    refunded = [("refund", {"card": "c", "amount": 5.0})] if won[0] == "approved" else []
    assert refunded == A.EXECUTED


def test_one_approver_twice_at_once_counts_once(db_path, people):
    keys, reg = people
    run_id, request = _waiting(db_path, TRANSFER, reg)
    assert request.required == 2
    results = _race(db_path, [_sign("alice", request, "approve", keys),
                              _sign("alice", request, "approve", keys)], reg)
    [refused] = [r for r in results if isinstance(r, ApprovalError)]
    assert [r for r in results if not isinstance(r, ApprovalError)] == ["pending"], results
    assert "two distinct approvers" in str(refused)
    t = Tether(db_path)
    assert len(t.store.pending_signals(run_id)) == 1  # alice's second never reached the run
    # the second approver is still needed, and enough
    assert inbox.decide(t, _sign("bob", request, "approve", keys), reg) == "approved"
    t.close()
    done = _drive(db_path, run_id, TRANSFER, reg)
    assert done.status == "succeeded" and A.EXECUTED == [("transfer", {"to": "acct-9",
                                                                       "amount": 1e4})]


def test_two_approvers_at_once_both_count(db_path, people):
    """Not a conflict: the second of two distinct approvers completes the approval."""
    keys, reg = people
    _, request = _waiting(db_path, TRANSFER, reg)
    results = _race(db_path, [_sign("alice", request, "approve", keys),
                              _sign("bob", request, "approve", keys)], reg)
    assert sorted(results) == ["approved", "pending"], results  # type: ignore[type-var]


_PROCESS = r"""
import sys, threading, time
from pathlib import Path
from tether import Tether
from tether.guards import inbox, ApprovalError
from tether.guards.approvals import ApprovalDecision, load_key_registry
import orjson

db, decision, keys, me, other = sys.argv[1:6]

class Meets:
    # waits, after its pre-check's journal read, until the other process has read too
    def __init__(self, store):
        self.store, self.reads = store, 0
    def __getattr__(self, name):
        return getattr(self.store, name)
    def load_events(self, run_id, *args):
        out = self.store.load_events(run_id, *args)
        self.reads += 1
        if self.reads == 2:
            Path(me).touch()
            deadline = time.monotonic() + 20
            while not Path(other).exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        return out

t = Tether(db)
t.store = Meets(t.store)
try:
    print(inbox.decide(t, ApprovalDecision.from_json(orjson.loads(decision)),
                       load_key_registry(keys)))
except ApprovalError as exc:
    print("refused:", exc)
"""


def test_two_processes_racing_on_one_sqlite_file(db_path, people, tmp_path: Path):
    keys, reg = people
    _, request = _waiting(db_path, REFUND, reg)
    approvers = tmp_path / "approvers.yaml"
    approvers.write_text(_public_lines(keys))
    procs = [subprocess.Popen(
        [sys.executable, "-c", _PROCESS, db_path,
         orjson.dumps(_sign(who, request, verdict, keys).to_json()).decode(), str(approvers),
         str(tmp_path / f"{i}.read"), str(tmp_path / f"{1 - i}.read")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i, (who, verdict) in enumerate([("alice", "approve"), ("bob", "deny")])]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    lines = sorted(o[0].strip() for o in outs)
    refused = [line for line in lines if line.startswith("refused:")]
    assert len(refused) == 1, lines
    assert lines[0] in ("approved", "denied") and f"already {lines[0]}" in refused[0], lines


def _public_lines(keys: dict[str, Any]) -> str:
    from cryptography.hazmat.primitives import serialization

    def line(k: Any) -> str:
        return k.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()

    return "".join(f"{name}: {line(k)}\n" for name, k in keys.items())
