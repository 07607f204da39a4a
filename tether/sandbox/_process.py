"""Drive one started sandbox process: send the job, stream output with caps, enforce the timeout.

Blocking by design (callers use a thread): it must reap with ``wait4`` to get resource usage,
which asyncio's child watchers would swallow.
"""

from __future__ import annotations

import contextlib
import ctypes
import marshal
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.sandbox._output import CappedBuffer

_CHUNK = 65536
READY = b"\x1etether-sandbox-ready\n"  # the stub's first bytes on stderr (see _stub.py)
SETUP_GRACE = 30.0  # seconds a sandbox may take to start before it counts as hung
_DRAIN_GRACE = 2.0  # seconds to keep reading after a kill before giving up on the pipes


@dataclass
class RawOutcome:
    returncode: int | None
    signal: int | None
    timed_out: bool
    stdout: CappedBuffer
    stderr: CappedBuffer
    duration_s: float
    cpu_s: float
    max_rss_bytes: int
    ready: bool = True
    setup_stderr: bytes = b""


def encode_job(job: dict[str, Any]) -> bytes:
    body = marshal.dumps(job, 4)  # the stub decodes it without importing anything
    return len(body).to_bytes(8, "big") + body


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it


def dies_with_this_process() -> Callable[[], None]:
    """A `preexec` for a sandbox runner that has no `--die-with-parent` of its own (`runsc
    run`): the kernel SIGKILLs it when the thread that started it dies, the whole worker's
    SIGKILL included, and gVisor's sandbox and gofer (started `--attached`) go with it.

    Why: a SIGKILLed worker left its gVisor sandbox running the agent's code, reparented to
    init, until another sandbox start in some process happened to collect it (bwrap is started
    with `--die-with-parent`)."""
    parent = os.getpid()

    def preexec() -> None:
        if _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != parent:  # it died between the fork and the prctl: no signal comes
            os._exit(127)

    return preexec


def spawn(
    argv: list[str],
    *,
    preexec: Callable[[], None] | None,
    pass_fds: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,
        pass_fds=pass_fds,
        close_fds=True,
        start_new_session=True,
        env=env if env is not None else {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        cwd=cwd,
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the sandbox's process group. Never reaps (``Popen.kill`` would, via ``poll``,
    and then ``wait4`` could not collect the resource usage)."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(proc.pid, signal.SIGKILL)


def wait_ready(proc: subprocess.Popen[bytes], timeout: float) -> bytes | None:
    """Block until the stub's READY marker arrives on stderr; None if it did, else what came.

    Used by the pool, so a sandbox counts as ready only once its interpreter is up.
    """
    assert proc.stderr
    fd = proc.stderr.fileno()
    got = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while len(got) < len(READY):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return got or b"(no output)"
            chunk = os.read(fd, len(READY) - len(got))
            if not chunk:
                return got or b"(exited)"
            got += chunk
    return None if got == READY else got


def _status_from(proc: subprocess.Popen[bytes]) -> int:
    rc = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return (-rc) & 0x7F if rc < 0 else (rc & 0xFF) << 8


def run_job(
    proc: subprocess.Popen[bytes],
    payload: bytes,
    *,
    timeout: float,
    stdout_cap: int,
    stderr_cap: int,
    kill: Callable[[], None],
    cpu_wall_limit: float | None = None,
    ready: bool = False,
) -> RawOutcome:
    """Write ``payload`` to stdin, collect output until exit or ``timeout`` (then ``kill()``)."""
    assert proc.stdin and proc.stdout and proc.stderr
    out, err = CappedBuffer(stdout_cap), CappedBuffer(stderr_cap)
    sel = selectors.DefaultSelector()
    bufs = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    for f in (proc.stdout, proc.stderr):
        os.set_blocking(f.fileno(), False)
        sel.register(f.fileno(), selectors.EVENT_READ)
    stdin_fd = proc.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    pending = memoryview(payload)
    sel.register(stdin_fd, selectors.EVENT_WRITE)
    stdin_open = True
    err_fd = proc.stderr.fileno()
    prefix = bytearray()  # stderr bytes until the READY marker has been seen
    start = time.monotonic()
    limit = min(timeout, cpu_wall_limit) if cpu_wall_limit else timeout
    # The timeout is for the program, not for booting its sandbox: until the stub says READY
    # the clock allows SETUP_GRACE more, then restarts from READY.
    deadline = start + limit + (0.0 if ready else SETUP_GRACE)
    timed_out = False
    killed_at: float | None = None
    while len(sel.get_map()) > (1 if stdin_open else 0):
        now = time.monotonic()
        if killed_at is None and now >= deadline:
            timed_out = True
            kill()
            killed_at = now
        if killed_at is not None and now - killed_at > _DRAIN_GRACE:
            break
        wait = (deadline - now) if killed_at is None else 0.05
        for key, _ in sel.select(max(0.0, min(wait, 0.5))):
            fd = int(key.fd)
            if fd == stdin_fd:
                try:
                    n = os.write(fd, pending[:_CHUNK])
                    pending = pending[n:]
                except BlockingIOError:
                    continue
                except (BrokenPipeError, OSError):
                    pending = pending[:0]
                if not pending:
                    sel.unregister(fd)
                    proc.stdin.close()
                    stdin_open = False
                continue
            try:
                data = os.read(fd, _CHUNK)
            except BlockingIOError:
                continue
            if data and fd == err_fd and not ready:
                prefix += data
                if len(prefix) >= len(READY):
                    if prefix.startswith(READY):
                        ready = True
                        start = time.monotonic()
                        deadline = start + limit
                        bufs[fd].feed(bytes(prefix[len(READY) :]))
                    else:
                        bufs[fd].feed(bytes(prefix))
                    prefix.clear()
            elif data:
                bufs[fd].feed(data)
            else:
                sel.unregister(fd)
        if stdin_open and len(sel.get_map()) == 1:
            break  # both output pipes closed: nobody will read the rest of stdin
    sel.close()
    if stdin_open:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    # the process may still be alive (e.g. stdout closed early): honour the deadline while reaping
    rusage = None
    status = 0
    while True:
        try:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: no resource usage, but a status
            status = _status_from(proc)
            break
        if pid:
            break
        now = time.monotonic()
        if killed_at is None and now >= deadline:
            timed_out = True
            kill()
            killed_at = now
        time.sleep(0.001 if now - start < 0.05 else 0.01)
    duration = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    for f in (proc.stdout, proc.stderr):
        f.close()
    sig = -proc.returncode if proc.returncode < 0 else None
    cpu = rusage.ru_utime + rusage.ru_stime if rusage is not None else 0.0
    rss = rusage.ru_maxrss * 1024 if rusage is not None else 0
    return RawOutcome(
        returncode=proc.returncode if proc.returncode >= 0 else None,
        signal=sig,
        timed_out=timed_out,
        stdout=out,
        stderr=err,
        duration_s=duration,
        cpu_s=cpu,
        max_rss_bytes=rss,
        ready=ready,
        setup_stderr=bytes(prefix) if not ready else b"",
    )
