"""Hostile programs, run on BOTH backends: filesystem escapes.

Here: writes outside the workspace, symlinks, `..` paths.

Every case checks what the sandboxed program could observe or do (printed as JSON) and, where
possible, the host side too (files that must not exist, processes that must not survive).
The rest of the battery: the other `test_hostile_*.py` files; fixtures and helpers: `conftest.py`.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tether.sandbox import Sandbox

from .conftest import run_json

pytestmark = [pytest.mark.sandbox]


def test_writing_outside_the_workspace(sb: Sandbox) -> None:
    tag = uuid.uuid4().hex[:8]
    targets = [f"/usr/{tag}", f"/etc/{tag}", f"/{tag}", f"/opt/tether/sandbox-env/{tag}",
               f"/proc/{tag}", f"/dev/{tag}", f"/root/{tag}", f"/var/tmp/{tag}"]
    code = f"""
import json
res = {{}}
for p in {targets!r}:
    try:
        open(p, "w").write("x"); res[p] = "written"
    except OSError as e:
        res[p] = "error: " + type(e).__name__
open("/tmp/{tag}", "w").write("tmp is private")
open("/workspace/ok.txt", "w").write("ok")
print(json.dumps(res))
"""
    res, out = run_json(sb, code)
    assert res is not None, out.result
    for p in targets:
        assert res[p].startswith("error"), f"sandbox wrote {p}"
        assert not Path(p).exists(), f"{p} appeared on the host"
    assert not Path(f"/tmp/{tag}").exists(), "sandbox /tmp is the host's /tmp"
    assert out.changed == {"ok.txt": b"ok"}


def test_symlink_escape_through_the_workspace(sb: Sandbox, tmp_path: Path) -> None:
    secret = "canary-" + uuid.uuid4().hex
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(secret)
    code = f"""
import os
os.symlink("/etc/shadow", "shadow")
os.symlink("/root", "rootdir")
os.symlink("{outside}", "outside")
os.symlink("/proc/self/root/etc/passwd", "passwd")
os.mkdir("d")
open("d/real.txt", "w").write("real")
print("ok")
"""
    out = sb.run(code)
    r = out.result
    assert r.exit_code == 0, r
    # collected files never follow links: no host content, links reported
    assert set(out.changed) == {"d/real.txt"}
    assert secret.encode() not in b"".join(out.changed.values())
    assert r.workspace_error and "symlink" in r.workspace_error


def test_symlink_in_a_host_workspace_dir_cannot_redirect_writes(
    sb: Sandbox, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (ws / "link").symlink_to(target)  # a planted link in the user's workspace dir
    (ws / "data.csv").write_text("a\n1\n")
    req = sb.request("import os\nos.makedirs('link', exist_ok=True)\n"
                     "open('link/pwned', 'w').write('x')\nopen('data.csv', 'a').write('2\\n')")
    out = sb.run_in_dir(ws, req)
    assert out.result.exit_code == 0, out.result
    assert not (target / "pwned").exists(), "a write followed a symlink out of the workspace"
    assert (ws / "link").is_symlink(), "the planted link was replaced"
    assert (ws / "data.csv").read_text() == "a\n1\n2\n"
    assert out.result.workspace_error and "link/pwned: not written back" in (
        out.result.workspace_error
    )


def test_dotdot_paths_are_refused_before_running(sb: Sandbox) -> None:
    from tether.sandbox._fsafe import UnsafePath

    for bad in ("../escape", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(UnsafePath):
            sb.run("print(1)", files={bad: b"x"})
