"""Hostile programs, run on BOTH backends: reaching the host.

Here: network egress, host files, host processes, the host's environment.

Every case checks what the sandboxed program could observe or do (printed as JSON) and, where
possible, the host side too (files that must not exist, processes that must not survive).
The rest of the battery: the other `test_hostile_*.py` files; fixtures and helpers: `conftest.py`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from tether.sandbox import Sandbox

from .conftest import run_json

pytestmark = [pytest.mark.sandbox]


def test_network_egress_any_address(sb: Sandbox) -> None:
    # a listener on the host: the sandbox must not reach it either
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 0))
    srv.listen(5)
    srv.settimeout(0.1)
    port = srv.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                accepted.append(srv.accept())
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    code = f"""
import json, socket
targets = [("1.1.1.1", 53), ("8.8.8.8", 443), ("127.0.0.1", {port}), ("10.0.2.2", {port}),
           ("169.254.169.254", 80), ("::1", {port}), ("2606:4700:4700::1111", 443)]
res = {{}}
for host, port in targets:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port)); res[host] = "connected"
    except OSError as e:
        res[host] = "error: " + str(e)
    finally:
        s.close()
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"x", ("8.8.8.8", 53))
    res["udp"] = "sent"
except OSError as e:
    res["udp"] = "error: " + str(e)
try:
    socket.getaddrinfo("example.com", 80); res["dns"] = "resolved"
except OSError as e:
    res["dns"] = "error: " + str(e)
try:
    import fcntl, struct
    names = [n for _, n in socket.if_nameindex()]
except OSError:
    names = []
res["interfaces"] = names
print(json.dumps(res))
"""
    res, out = run_json(sb, code, timeout=30)
    t.join(timeout=0)
    srv.close()
    assert res is not None, out.result
    for key, value in res.items():
        if key == "interfaces":
            assert set(value) <= {"lo"}, f"unexpected interfaces {value}"
        else:
            assert str(value).startswith("error"), f"{key}: {value}"
    assert not accepted, "the host listener accepted a connection from the sandbox"


def test_reading_host_files(sb: Sandbox, tmp_path: Path) -> None:
    secret = "canary-" + uuid.uuid4().hex
    canary = tmp_path / "canary.txt"
    canary.write_text(secret)
    os.chmod(tmp_path, 0o755)
    os.chmod(canary, 0o644)  # world-readable: only the mount namespace keeps it out
    root_canary = Path("/root") / f".tether-canary-{uuid.uuid4().hex[:8]}"
    root_canary.write_text(secret)
    os.environ["TETHER_TEST_CANARY"] = secret  # visible in the host's /proc/<pid>/environ
    try:
        code = f"""
import json, os
res = {{}}
for p in ["/etc/shadow", "/etc/passwd", "/proc/1/environ", "/proc/self/environ",
          "{canary}", "{root_canary}", "/root", "{tmp_path}", "/home", "/var/log",
          "/proc/{os.getpid()}/environ", "/sys/class/net"]:
    try:
        if os.path.isdir(p):
            res[p] = "dir:" + ",".join(os.listdir(p))
        else:
            res[p] = open(p, "rb").read().decode("latin-1")
    except OSError as e:
        res[p] = "error: " + type(e).__name__
print(json.dumps(res))
"""
        res, out = run_json(sb, code)
    finally:
        root_canary.unlink()
        os.environ.pop("TETHER_TEST_CANARY", None)
    assert res is not None, out.result
    blob = out.result.stdout
    assert secret not in blob, "host canary visible inside the sandbox"
    assert res["/etc/shadow"].startswith("error")
    assert res[str(canary)].startswith("error") and res[str(root_canary)].startswith("error")
    assert res["/root"].startswith("error") or res["/root"] in ("dir:",)
    # the sandbox's /etc/passwd is synthetic, not the host's
    host_passwd = Path("/etc/passwd").read_text()
    assert res["/etc/passwd"] != host_passwd
    assert "sandbox:x:65534" in res["/etc/passwd"] or res["/etc/passwd"].startswith("error")


def test_host_processes_are_invisible(sb: Sandbox) -> None:
    code = """
import json, os
pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
cmds = []
for p in pids:
    try:
        cmds.append(open(f"/proc/{p}/cmdline", "rb").read().decode("latin-1"))
    except OSError:
        pass
print(json.dumps({"pids": pids, "cmds": cmds, "uid": os.getuid(), "gid": os.getgid(),
                  "hostname": os.uname().nodename}))
"""
    res, out = run_json(sb, code)
    assert res is not None, out.result
    assert len(res["pids"]) <= 5, res["pids"]
    assert os.getpid() not in res["pids"] or not any("pytest" in c for c in res["cmds"])
    assert not any("pytest" in c or "systemd" in c or "sshd" in c for c in res["cmds"])
    assert res["uid"] == 65534 and res["gid"] == 65534
    assert res["hostname"] == "sandbox"


def test_host_environment_is_not_leaked(sb: Sandbox) -> None:
    os.environ["TETHER_SECRET_TOKEN"] = "tok-" + uuid.uuid4().hex
    try:
        res, out = run_json(sb, "import json, os\nprint(json.dumps(dict(os.environ)))")
    finally:
        token = os.environ.pop("TETHER_SECRET_TOKEN")
    assert res is not None, out.result
    assert token not in out.result.stdout
    assert set(res) <= {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONDONTWRITEBYTECODE",
                        "PYTHONUNBUFFERED", "MPLCONFIGDIR", "OPENBLAS_NUM_THREADS",
                        "OMP_NUM_THREADS", "HOSTNAME", "PWD", "container"}, sorted(res)
