"""Crash hunt: one run tree killed again and again at random moments.

`marathon` (crash_hunt_support.py) does everything at once: non-idempotent sends, a keyed
charge, a gather of coroutine sends, a long durable timer, an external signal and two child runs.
Two real worker processes serve it; every few hundred milliseconds (seeded) one of them, most
often one holding a lease, is SIGKILLed and replaced. The tools spend a random few milliseconds
before and after their effect, so kills land before effects, after them and between steps. The
test acts as the operator: it answers the signal when asked, and settles each in-doubt step from
the ledger (`--skip` with the result when the effect is there, `--retry` otherwise).

At the end: the result is what an uninterrupted run returns; every effect is in the ledger
exactly once; no non-idempotent step was started again without a human's `--retry`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .crash_hunt_support import DELAY_ENV, MODULE, Lab

pytestmark = pytest.mark.slow

SENDS = 14
# the root's journal keys (see `marathon`): sends 1-14, charge 15, gather 16, sleep 17,
# send 18, wait_for 19, send 20, spawns 21 and 22, the joins' gather 23, send 24
ROOT_KEYS = {**{str(i + 1): (f"s{i}", "send") for i in range(SENDS)},
             **{f"16:{i}.1": (f"g{i}", "send_async") for i in range(3)},
             "18": ("t", "send"), "20": ("w-P", "send"), "24": ("end", "send")}
CHILDREN = ["21", "22"]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    lab.env[DELAY_ENV] = "60"
    yield lab
    lab.close()


def _token_of(tag: str) -> Any:
    def token_of(run: Any) -> tuple[str, str]:
        key = run.options["in_doubt"]["key"]
        if run.parent_id:  # a child `pipeline`: key N sends its Nth token
            return run.input["tokens"][int(key) - 1], "send"
        token, tool_name = ROOT_KEYS[key]
        return f"{tag}-{token}", tool_name
    return token_of


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_marathon_under_repeated_random_kills(lab: Lab, seed: int) -> None:
    rng = random.Random(seed)
    tag = f"m{seed}"
    run_id = lab.tether.submit(f"{MODULE}:marathon", {"tag": tag, "sends": SENDS,
                                                      "sleep": 1.2})
    workers = [lab.worker(), lab.worker()]
    token_of = _token_of(tag)
    decisions: list[tuple[str, str]] = []
    wanted_kills = 7
    signalled = False
    deadline = time.monotonic() + 45  # ~11 s on a quiet machine; it failed once at 25 under load
    kill_at: dict[int, float] = {}
    while time.monotonic() < deadline:
        run = lab.tether.get(run_id)
        if run.finished:
            break
        if lab.kills < wanted_kills:
            # a worker executing part of the tree (one holding a lease), a random time after
            # it was first seen holding one: in replay, inside a step, between steps
            holders = lab.lease_holders()
            for w in workers:
                if w.pid in holders and w.pid not in kill_at:
                    kill_at[w.pid] = time.monotonic() + rng.uniform(0.0, 0.3)
            for w in [w for w in workers if kill_at.get(w.pid, 1e18) <= time.monotonic()]:
                if w.pid not in lab.lease_holders():
                    del kill_at[w.pid]  # it let go meanwhile: aim again when it holds one
                    continue
                lab.kill(w)
                workers.remove(w)
                workers.append(lab.worker())
        decisions += lab.settle_all(token_of)
        if not signalled and "go" in lab.tether.awaited_signals(run_id):
            lab.tether.signal(run_id, "go", "P")
            signalled = True
        time.sleep(0.02)
    run = lab.tether.get(run_id)
    assert run.status == "succeeded", (run.status, run.reason, run.error, lab.describe())
    # that the hunt did kill, repeatedly: 7 are aimed at; under load a worker starts slower
    # and fewer land before the run ends (4 did once, in a CI run at load ~14)
    assert lab.kills >= 3, f"only {lab.kills} kills landed before the run ended"

    t = f"{tag}-"
    assert run.result == {"out": [
        *[f"did {t}s{i}" for i in range(SENDS)], f"did {t}k",
        [f"did {t}g{i}" for i in range(3)], f"did {t}t", f"did {t}w-P",
        [[f"did {t}c0a", f"did {t}c0b"], [f"did {t}c1a", f"did {t}c1b"]], f"did {t}end"]}
    lab.assert_exactly_once([*(f"{t}s{i}" for i in range(SENDS)), f"{t}k",
                             *(f"{t}g{i}" for i in range(3)), f"{t}t", f"{t}w-P",
                             f"{t}c0a", f"{t}c0b", f"{t}c1a", f"{t}c1b", f"{t}end"])
    tree = [r.id for r in lab.tether.runs(limit=100)]
    assert sorted(tree) == sorted([run_id, *(f"{run_id}.{k}" for k in CHILDREN)])
    for r in tree:
        lab.assert_no_silent_rerun(r)
    assert len(lab.step_events(run_id, "signal_received")) == 1
    assert len(lab.step_events(run_id, "timer_fired")) == 1


def test_many_runs_sharing_group_commits_under_repeated_kills(lab: Lab) -> None:
    """40 runs execute at once in two workers, so their writes share group commits on the
    committer's thread (not the inline path of a lone run); workers holding leases are killed
    at random moments, 6 times. Every run ends with its result, every effect exactly once."""
    rng = random.Random(7)
    runs = {lab.tether.submit(f"{MODULE}:pipeline",
                              {"tokens": [f"r{n}-{i}" for i in range(4)]}): n
            for n in range(40)}
    workers = [lab.worker(), lab.worker()]
    kill_at: dict[int, float] = {}
    deadline = time.monotonic() + 45  # ~11 s on a quiet machine; it failed once at 25 under load
    while time.monotonic() < deadline:
        if all(lab.tether.get(r).finished for r in runs):
            break
        if lab.kills < 6:
            holders = lab.lease_holders()
            for w in workers:
                if w.pid in holders and w.pid not in kill_at:
                    kill_at[w.pid] = time.monotonic() + rng.uniform(0.0, 0.5)
            for w in [w for w in workers if kill_at.get(w.pid, 1e18) <= time.monotonic()]:
                lab.kill(w)
                workers.remove(w)
                workers.append(lab.worker())
        lab.settle_all(lambda run: run.input["tokens"][int(run.options["in_doubt"]["key"]) - 1],
                       cli=False)
        time.sleep(0.02)
    assert lab.kills >= 3, f"only {lab.kills} kills landed"
    expected = []
    for run_id in runs:
        run = lab.tether.get(run_id)
        assert run.status == "succeeded", (run_id, run.status, run.reason)
        assert run.result == [f"did {t}" for t in run.input["tokens"]]
        expected += run.input["tokens"]
        lab.assert_no_silent_rerun(run_id)
    lab.assert_exactly_once(expected)
