"""Pool semantics (one job per sandbox, never reused) and workspace round trips."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tether.sandbox import Sandbox

from .conftest import TEST_LIMITS

pytestmark = [pytest.mark.sandbox]


def wait_ready(sb: Sandbox, n: int = 1, timeout: float = 20) -> None:
    assert sb.pool is not None
    deadline = time.time() + timeout
    while sb.pool.ready() < n:
        assert time.time() < deadline, "pool did not fill"
        time.sleep(0.01)


def test_pooled_sandboxes_take_exactly_one_job(backend: str) -> None:
    sb = Sandbox(backend, limits=TEST_LIMITS, pool_size=2)
    try:
        wait_ready(sb, 2)
        code = ("import os\nseen = os.path.exists('/tmp/mark')\nopen('/tmp/mark', 'w').write('x')"
                "\nprint(seen, sorted(os.listdir('/workspace')))")
        first = sb.run(code, files={"a.txt": b"a"})
        assert first.result.pooled and first.result.stdout == "False ['a.txt']\n"
        wait_ready(sb, 1)
        second = sb.run(code)
        # a fresh sandbox: no /tmp state and no workspace files from the previous job
        assert second.result.pooled and second.result.stdout == "False []\n"
        wait_ready(sb, 2)
    finally:
        sb.close()
    assert sb.pool is not None and sb.pool.ready() == 0


def test_pool_with_other_limits_starts_cold(backend: str) -> None:
    sb = Sandbox(backend, limits=TEST_LIMITS, pool_size=1)
    try:
        wait_ready(sb)
        out = sb.run("print(1)", limits={"cpu_seconds": 2})
        assert not out.result.pooled and out.result.stdout == "1\n"
        assert "2 " in out.result.limits_enforced["cpu_seconds"]
    finally:
        sb.close()


def _descendants(pids: set[int]) -> set[int]:
    found = set(pids)
    changed = True
    while changed:
        changed = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in found:
                continue
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in found:
                found.add(int(entry))
                changed = True
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_closing_the_pool_leaves_no_processes() -> None:
    sb = Sandbox("bwrap", limits=TEST_LIMITS, pool_size=2)
    wait_ready(sb, 2)
    assert sb.pool is not None
    pids = _descendants({s.proc.pid for s in sb.pool._ready})
    assert len(pids) >= 4  # bwrap, its pid-1 and the stub, per sandbox
    sb.close()
    deadline = time.time() + 5
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def test_workspace_changes_are_reported(sb: Sandbox) -> None:
    files = {"keep.txt": b"same", "edit.txt": b"old", "gone.txt": b"bye", "sub/dir/x.txt": b"x"}
    code = """
import os
open("edit.txt", "w").write("new")
os.remove("gone.txt")
os.makedirs("out", exist_ok=True)
open("out/new.csv", "w").write("a,b\\n1,2\\n")
"""
    out = sb.run(code, files=files)
    f = out.result.files
    assert f.added == ["out/new.csv"] and f.modified == ["edit.txt"] and f.deleted == ["gone.txt"]
    assert out.changed == {"edit.txt": b"new", "out/new.csv": b"a,b\n1,2\n"}
    assert set(out.manifest) == {"keep.txt", "edit.txt", "sub/dir/x.txt", "out/new.csv"}


def test_run_in_dir_round_trip(sb: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("x\n1\n2\n")
    req = sb.request("import pandas as pd\ndf = pd.read_csv('data.csv')\n"
                     "df.assign(y=df.x * 10).to_csv('out.csv', index=False)\nprint(df.x.sum())")
    out = sb.run_in_dir(tmp_path, req)
    assert out.result.stdout == "3\n", out.result
    assert (tmp_path / "out.csv").read_text() == "x,y\n1,10\n2,20\n"
