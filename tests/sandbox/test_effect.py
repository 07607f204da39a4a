"""``ctx.exec`` on the real runtime and SQLite store: journaling, replay and persistence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.sandbox.effect import STEP_NAME

from . import agents_sandbox as A

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
EXPECTED_SUMMARY = "42 4 Oslo,Lima,Pune,Nome\n"


def exec_events(t: Tether, run_id: str, kind: str) -> list[Any]:
    return [e for e in t.events(run_id) if e.kind == kind and e.name == STEP_NAME]


async def test_persistence_across_backends(tether: Tether) -> None:
    rec = await tether.run(A.three_backends, None)
    assert rec.status == "succeeded", rec
    outs = rec.result["outs"]
    assert outs[1] == "5 lines\n" and outs[2] == EXPECTED_SUMMARY
    manifest = rec.result["manifest"]
    assert set(manifest) == {"temps.csv"}
    # the file lives in the store as a content-addressed artifact
    data = tether.store.get_artifact(manifest["temps.csv"])
    assert data.decode().splitlines()[-1] == "Nome,-12"
    done = exec_events(tether, rec.id, "step_completed")
    assert [e.data["backend"] for e in done] == ["bwrap", "gvisor", "bwrap"]
    assert done[0].data["files"]["added"] == ["temps.csv"]
    assert done[1].data["files"]["modified"] == ["temps.csv"]


async def test_completed_exec_is_never_rerun_and_manifest_is_rebuilt(tether: Tether) -> None:
    """Replay: a fresh Context over the journal returns recorded results without a sandbox."""
    A.SEEN_MANIFESTS.clear()
    rec = await tether.run(A.random_file, None)
    assert rec.status == "succeeded"
    # replay the finished run's journal in a new context (what a resumed worker does)
    from tether.runtime.committer import GroupCommitter
    from tether.runtime.context import Context

    committer = GroupCommitter(tether.store)
    ctx = Context(tether.get(rec.id), tether.store, committer, "replayer",
                  tether.events(rec.id))
    os.environ["TETHER_SANDBOX_BACKEND"] = "no-such-backend"  # a live exec would now fail
    try:
        replayed = await A.random_file(ctx, None)
    finally:
        del os.environ["TETHER_SANDBOX_BACKEND"]
        committer.close()
    assert replayed == rec.result
    seen = A.SEEN_MANIFESTS
    assert len(seen) == 2 and seen[0] == seen[1], "manifest not rebuilt identically on replay"
    assert len(exec_events(tether, rec.id, "step_started")) == 1


async def test_files_argument_and_unavailable_backend(tether: Tether) -> None:
    rec = await tether.run(A.command_then_bad_backend, None)
    assert rec.status == "succeeded", rec
    stdout, err_type, message = rec.result
    assert stdout == "2 in.txt\n"
    assert err_type == "SandboxUnavailable" and "bwrap" in message
    # the refused exec left no step behind
    assert len(exec_events(tether, rec.id, "step_started")) == 1


async def test_an_input_file_the_exec_left_untouched_is_restorable(tether: Tether) -> None:
    rec = await tether.run(A.input_file_then_read, None)
    assert rec.status == "succeeded", rec.error
    assert rec.result == "hello"


def _worker(db: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    code = (
        "import asyncio, sys\n"
        "from tether import Worker, open_store\n"
        "async def main():\n"
        f"    w = Worker(open_store({db!r}), lease_ttl=1.0, poll_interval=0.05)\n"
        "    await w.serve()\n"
        "asyncio.run(main())\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


async def test_persistence_across_a_worker_crash(db_path: str) -> None:
    t = Tether(db_path, lease_ttl=1.0)
    try:
        run_id = t.submit(A.crashes_between_execs, None)
        env = dict(os.environ, TETHER_TEST_HANG="1", PYTHONPATH=str(REPO))
        proc = _worker(db_path, env)
        try:
            deadline = time.time() + 60
            while not any(e.kind == "step_started" and e.name == "hang" for e in t.events(run_id)):
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.time() < deadline, "worker never reached the hang step"
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the crash: no clean-up of any kind
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
        assert len(exec_events(t, run_id, "step_completed")) == 1
        time.sleep(1.2)  # the dead worker's lease expires
        rec = await t.drive(run_id)  # another worker (this process) takes over
        assert rec.status == "succeeded", rec
        assert rec.result["outs"][1:] == ["continued", "5 lines\n", EXPECTED_SUMMARY]
        # exec 1 ran once, in the crashed worker; its CSV came back from the artifact store
        starts = exec_events(t, run_id, "step_started")
        assert [e.key for e in starts].count(starts[0].key) == 1 and len(starts) == 3
        # what the killed worker left behind (staging mounts, runsc state) is collected
        from tether.sandbox import _reaper
        from tether.sandbox._gvisor import GVisorBackend
        from tether.sandbox._paths import state_dir
        from tether.sandbox._workspace import collect_stale

        GVisorBackend().collect_stale()
        _reaper.drain()
        for kind in ("ws", "io"):
            collect_stale(state_dir() / kind)
        for kind in ("ws", "io"):
            left = [p for p in (state_dir() / kind).iterdir()
                    if p.name.startswith(f"{proc.pid}-")]
            assert not left, left
        assert not list((state_dir() / "runsc").glob(f"*{proc.pid}-*"))
        assert f"{state_dir()}/ws/{proc.pid}-" not in Path("/proc/mounts").read_text()
    finally:
        t.close()
