"""Hostile programs, run on BOTH backends: resource bombs.

Here: fork, memory, CPU, output, disk, open files, processes outliving the sandbox.

Every case checks what the sandboxed program could observe or do (printed as JSON) and, where
possible, the host side too (files that must not exist, processes that must not survive).
The rest of the battery: the other `test_hostile_*.py` files; fixtures and helpers: `conftest.py`.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tether.sandbox import Sandbox

from .conftest import host_pids_with, run_json

pytestmark = [pytest.mark.sandbox]


def test_fork_bomb(sb: Sandbox) -> None:
    marker = "forkbomb-" + uuid.uuid4().hex[:8]
    code = f"""
import os, time
n = 0
try:
    while n < 100000:
        if os.fork() == 0:
            time.sleep(30)  # {marker}
            os._exit(0)
        n += 1
except OSError as e:
    print("fork failed after", n, type(e).__name__, flush=True)
time.sleep(60)
"""
    t = time.monotonic()
    out = sb.run(code, timeout=8)
    elapsed = time.monotonic() - t
    r = out.result
    assert r.timed_out or r.exit_code != 0 or "fork failed" in r.stdout, r
    assert elapsed < 30
    if sb.name == "bwrap":
        assert "fork failed after" in r.stdout
        forked = int(r.stdout.split("fork failed after")[1].split()[0])
        assert forked <= 256
    # nothing survives, and the host can still start processes
    time.sleep(0.2)
    assert not host_pids_with(marker)
    again = sb.run("print('alive')")
    assert again.result.stdout == "alive\n"


def test_memory_bomb_4gb(sb: Sandbox) -> None:
    code = """
chunks = []
for i in range(64):
    chunks.append(b"x" * (64 * 1024 * 1024))  # touched: 64 MiB each, 4 GiB in total
print("allocated", len(chunks) * 64, "MiB")
"""
    out = sb.run(code, timeout=60)
    r = out.result
    assert "allocated" not in r.stdout, "4 GiB allocated inside a 256 MiB sandbox"
    assert r.exit_code != 0
    if sb.name == "bwrap":
        assert r.oom_killed or "MemoryError" in r.stderr, r
        assert r.error
    else:
        assert (r.error and "memory" in r.error) or "MemoryError" in r.stderr, r


def test_an_uncaught_memory_error_is_reported_as_out_of_memory(sb: Sandbox) -> None:
    """Python may fail the allocation (exit 1) before the cgroup kills it: the memory bomb
    above takes either path from run to run, and both must say why the code stopped."""
    r = sb.run("raise MemoryError('simulated')").result
    assert r.exit_code == 1 and not r.oom_killed
    assert r.error and "MemoryError" in r.error and "limit" in r.error, r
    quiet = sb.run("import sys\nprint('MemoryError is only a word here', file=sys.stderr)").result
    assert quiet.exit_code == 0 and quiet.error is None, quiet


def test_cpu_loop_is_stopped(sb: Sandbox) -> None:
    t = time.monotonic()
    out = sb.run("while True:\n    pass\n", limits={"cpu_seconds": 1}, timeout=20)
    elapsed = time.monotonic() - t
    r = out.result
    assert r.exit_code is None or r.exit_code != 0
    assert r.signal is not None or r.timed_out
    # well before the 20 s timeout, even on a loaded machine
    assert elapsed < 15, f"a 1 s CPU limit took {elapsed:.1f} s to stop the loop"
    if sb.name == "bwrap":  # RLIMIT_CPU, not the wall-clock timeout
        assert not r.timed_out and r.error and "CPU limit" in r.error, r.error
    assert r.error


def test_100mb_to_stdout(sb: Sandbox) -> None:
    code = """
import sys
chunk = b"y" * (1024 * 1024)
for _ in range(100):
    sys.stdout.buffer.write(chunk)
sys.stdout.flush()
"""
    out = sb.run(code, timeout=60)
    r = out.result
    assert r.stdout_truncated and not r.stderr_truncated
    assert len(r.stdout.encode()) < 64 * 1024 + 200
    assert "output truncated" in r.stdout
    if sb.name == "bwrap":  # streamed through a pipe: everything counted, nothing kept
        assert r.stdout_total_bytes == 100 * 1024 * 1024 and r.exit_code == 0
    else:  # gVisor writes output to a file, capped by the 16 MiB file-size limit
        assert 16 * 1024 * 1024 <= r.stdout_total_bytes <= 100 * 1024 * 1024
        assert r.exit_code == 0 or "File too large" in r.stderr or r.error


def test_disk_fill(sb: Sandbox) -> None:
    code = """
import json, os
res = {}
for where in ("/workspace", "/tmp"):
    total = 0
    try:
        for i in range(1000):
            with open(f"{where}/fill{i}", "wb") as fh:
                for _ in range(8):
                    fh.write(b"z" * (1024 * 1024)); total += 1024 * 1024
    except OSError as e:
        res[where + "_error"] = type(e).__name__
    res[where] = total
    if where == "/tmp":
        for i in range(1000):
            try: os.unlink(f"/tmp/fill{i}")
            except OSError: break
print(json.dumps(res))
"""
    before = os.statvfs("/")
    res, out = run_json(sb, code, timeout=60)
    assert res is not None, out.result
    assert res["/workspace"] <= 32 * 1024 * 1024 + 8 * 1024 * 1024
    assert res["/tmp"] <= 16 * 1024 * 1024 + 8 * 1024 * 1024
    assert "/workspace_error" in res and "/tmp_error" in res
    after = os.statvfs("/")
    assert (before.f_bavail - after.f_bavail) * after.f_frsize < 64 * 1024 * 1024
    # what was collected stays within the quota, and nothing broke the worker
    assert sum(len(v) for v in out.changed.values()) <= 32 * 1024 * 1024


def test_processes_do_not_outlive_the_sandbox(sb: Sandbox) -> None:
    marker = "outlive-" + uuid.uuid4().hex[:8]
    code = f"""
import os, subprocess
subprocess.Popen(["/bin/sh", "-c", "sleep 300 # {marker}"], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["/bin/sh", "-c", "sleep 300 # {marker}"])
    os._exit(0)
print("spawned")
"""
    from tether.sandbox._paths import state_dir

    state = state_dir() / "runsc"

    def containers() -> set[str]:
        # this process's containers (ids start with the pid); another process may have one
        # running right now
        return {p.name for p in state.glob(f"{os.getpid()}-*") if p.name.endswith(".state")}

    # pre-started sandboxes of a pool (ctx.exec's shared one, say) are alive on purpose
    before = containers()
    out = sb.run(code)
    assert out.result.stdout.strip() == "spawned", out.result
    deadline = time.time() + 5
    while host_pids_with(marker) and time.time() < deadline:
        time.sleep(0.05)
    assert not host_pids_with(marker), "a sandboxed process survived its sandbox"
    if sb.name == "gvisor":
        leftovers = containers() - before
        assert not leftovers, f"the sandbox left its gVisor container behind: {leftovers}"


def test_open_file_and_file_size_limits(sb: Sandbox) -> None:
    code = """
import json, os
fds = []
try:
    for i in range(100000):
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    n = len(fds)
res = {"fds": n}
for fd in fds:
    os.close(fd)
try:
    with open("/workspace/big.bin", "wb") as fh:
        for _ in range(64):
            fh.write(b"b" * (1024 * 1024))
    res["big"] = "written"
except OSError as e:
    res["big"] = "error: " + type(e).__name__
print(json.dumps(res))
"""
    res, out = run_json(sb, code, timeout=60)
    if res is None:  # killed by SIGXFSZ before printing is also containment
        assert out.result.signal is not None, out.result
        return
    assert res["fds"] < 1024
    assert res["big"].startswith("error")
    assert all(len(v) <= 16 * 1024 * 1024 for v in out.changed.values())
