"""Bad input: each case gives a clear result and leaves the worker process unharmed."""

from __future__ import annotations

import os
import time

import pytest

from tether.sandbox import Sandbox, SandboxUnavailable, get_backend
from tether.sandbox._bwrap import BwrapBackend
from tether.sandbox._gvisor import GVisorBackend

pytestmark = [pytest.mark.sandbox]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_timeout_is_a_result(sb: Sandbox) -> None:
    t = time.monotonic()
    out = sb.run("import time\nprint('start', flush=True)\ntime.sleep(100)", timeout=1)
    r = out.result
    assert r.timed_out and r.exit_code is None and r.error and "timed out" in r.error
    assert r.stdout == "start\n"
    assert time.monotonic() - t < 10


def test_non_utf8_output(sb: Sandbox) -> None:
    code = "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe \\x80 end\\n')\n" \
           "sys.stderr.buffer.write(b'\\xc3\\x28')"
    r = sb.run(code).result
    assert r.exit_code == 0
    assert r.stdout.startswith("ok ") and r.stdout.endswith(" end\n") and "\ufffd" in r.stdout
    assert "\ufffd" in r.stderr
    r.to_dict()  # JSON-able


def test_huge_file_in_the_workspace(sb: Sandbox) -> None:
    code = """
with open("huge.bin", "wb") as fh:
    for _ in range(40):
        fh.write(b"h" * (1024 * 1024))
print("done")
"""
    out = sb.run(code, timeout=60)
    r = out.result
    assert "done" not in r.stdout
    assert r.exit_code != 0
    assert r.error or "File too large" in r.stderr
    assert len(out.changed.get("huge.bin", b"")) <= 16 * 1024 * 1024


def test_code_that_never_reads_stdin(sb: Sandbox) -> None:
    r = sb.run("print('ignored stdin')", stdin=b"x" * (10 * 1024 * 1024), timeout=20).result
    assert r.exit_code == 0 and r.stdout == "ignored stdin\n"


def test_stdin_is_delivered(sb: Sandbox) -> None:
    r = sb.run("import sys\nprint(sys.stdin.read().upper())", stdin="hello").result
    assert r.stdout == "HELLO\n"


def test_missing_command(sb: Sandbox) -> None:
    r = sb.run(argv=["no-such-interpreter", "x.py"]).result
    assert r.exit_code == 127
    assert r.error == "command not found: no-such-interpreter"


def test_syntax_error_and_exit_codes(sb: Sandbox) -> None:
    r = sb.run("def broken(:\n").result
    assert r.exit_code == 1 and "SyntaxError" in r.stderr
    assert sb.run("import sys\nsys.exit(7)").result.exit_code == 7
    r = sb.run("echo from bash; ls /workspace; exit 3", language="bash").result
    assert r.exit_code == 3 and r.stdout.startswith("from bash\n")


def test_missing_python_environment_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_SANDBOX_ENV", "/nonexistent/env")
    for name in ("bwrap", "gvisor"):
        with pytest.raises(SandboxUnavailable) as e:
            get_backend(name)
        assert "/nonexistent/env" in str(e.value) and "make setup" in e.value.fix


def test_unavailable_backend_never_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable) as e:
        BwrapBackend().check()
    assert e.value.fix == "apt-get install bubblewrap"
    with pytest.raises(SandboxUnavailable) as e2:
        GVisorBackend().check()
    assert e2.value.fix == "apt-get install runsc"
    with pytest.raises(SandboxUnavailable) as e3:
        get_backend("firecracker")
    assert "bwrap" in e3.value.fix


def test_worker_unharmed_after_abuse(sb: Sandbox) -> None:
    before = open_fds()
    for code in ("import os\nos.kill(os.getpid(), 9)", "import sys\nsys.stdout.close()\n",
                 "import os\nos.close(1)\nos.close(2)\nwhile True: pass"):
        r = sb.run(code, timeout=2).result
        assert r.exit_code != 0 or r.timed_out
    r = sb.run("print('still fine')").result
    assert r.stdout == "still fine\n"
    assert open_fds() <= before + 2


def test_bad_limits_are_refused() -> None:
    sb = Sandbox("bwrap")
    for bad in ({"cpu_seconds": 0}, {"memory_bytes": -1}, {"nonsense": 1}, {"pids": True}):
        with pytest.raises(ValueError):
            sb.request("print(1)", limits=bad)
    with pytest.raises(ValueError):
        sb.request("print(1)", argv=["true"])  # code and argv together
    with pytest.raises(ValueError):
        sb.request("print(1)", language="ruby")  # type: ignore[arg-type]


def test_unsafe_local_only_when_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TETHER_SANDBOX_BACKEND", raising=False)
    assert get_backend().name == "bwrap"
    out = Sandbox("unsafe-local").run("import os\nprint(os.getcwd() != '/workspace')")
    assert out.result.stdout == "True\n"
    assert "NONE" in out.result.limits_enforced["isolation"]
