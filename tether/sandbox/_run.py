"""Run one request in one started sandbox and turn what happened into an ``ExecResult``."""

from __future__ import annotations

import contextlib
from typing import Any

from tether.sandbox import _reaper as reaper
from tether.sandbox._backend import STUB_ENV, Started
from tether.sandbox._output import CappedBuffer
from tether.sandbox._process import encode_job, run_job
from tether.sandbox._types import ExecRequest, ExecResult, FileChanges, SandboxError
from tether.sandbox._workspace import Collected


def job_header(req: ExecRequest, cwd: str = "/workspace", tmp: str = "/tmp/.tether"
               ) -> dict[str, Any]:
    env = dict(STUB_ENV)
    env["HOME"] = cwd
    env.update(dict(req.env))
    base: dict[str, Any] = {"env": env, "cwd": cwd, "tmp": tmp}
    if req.argv is not None:
        return {"kind": "argv", "argv": list(req.argv), **base}
    return {"kind": req.language, "code": req.code, **base}


def execute(
    started: Started, req: ExecRequest, files: dict[str, bytes] | None = None
) -> tuple[ExecResult, Collected | None]:
    """Consume ``started`` (it is destroyed afterwards, whatever happens)."""
    stats: dict[str, Any] = {}
    collected: Collected | None = None
    try:
        started.staging.materialize(files or {})
        header = job_header(req, started.cwd, started.tmp)
        if started.output_dir is not None:
            header["stdout_file"] = started.output_dir[1] + "/stdout"
            header["stderr_file"] = started.output_dir[1] + "/stderr"
        payload = encode_job(header) + req.stdin
        raw = run_job(
            started.proc,
            payload,
            timeout=req.timeout,
            stdout_cap=req.limits.stdout_bytes,
            stderr_cap=req.limits.stderr_bytes,
            kill=started.kill,
            cpu_wall_limit=float(req.limits.cpu_seconds) if started.wall_cpu_limit else None,
            ready=started.ready,
        )
        if started.output_dir is not None and raw.ready:
            raw.stdout = CappedBuffer.from_file(started.output_dir[0] + "/stdout",
                                                req.limits.stdout_bytes)
            err = CappedBuffer.from_file(started.output_dir[0] + "/stderr",
                                         req.limits.stderr_bytes)
            if raw.stderr.total:  # anything the stub said before redirecting
                err.total += raw.stderr.total
                err.head[:0] = raw.stderr.head
            raw.stderr = err
        stats = started.cleanup()
        if not raw.ready:
            detail = (raw.setup_stderr.decode(errors="replace") + raw.stderr.text()).strip()
            raise SandboxError(
                f"{started.backend}: the sandbox failed before running any code: {detail[:2000]}"
            )
        ws_error: str | None = None
        try:
            collected = started.staging.collect()
            if collected.problems:
                ws_error = "; ".join(collected.problems[:20])
        except Exception as e:  # a hostile workspace must not take the worker down
            ws_error = f"workspace could not be collected: {e}"
    finally:
        with contextlib.suppress(Exception):
            started.cleanup()
        reaper.defer(started.staging.destroy)

    if raw.signal is None and raw.returncode is not None and 128 < raw.returncode <= 128 + 31:
        # bwrap and runsc report a signalled child as 128 + signal number
        raw.signal = raw.returncode - 128
    stderr = raw.stderr.text()
    error: str | None = None
    oom = bool(stats.pop("oom_killed", False))
    if raw.timed_out:
        error = f"timed out after {req.timeout:g} s" if not (
            started.wall_cpu_limit and req.limits.cpu_seconds < req.timeout
        ) else f"timed out (wall-clock limit {min(req.timeout, req.limits.cpu_seconds):g} s)"
    elif oom:
        error = f"killed: out of memory (limit {req.limits.memory_bytes} bytes)"
    elif raw.returncode and _raised_memory_error(stderr):
        # the allocation failed inside the limit before the cgroup had to kill: Python exits 1
        error = ("out of memory: the code raised MemoryError "
                 f"(limit {req.limits.memory_bytes} bytes)")
    elif raw.returncode == 127 and "tether-sandbox: command not found" in stderr:
        error = stderr.strip().removeprefix("tether-sandbox: ")
    elif raw.signal is not None:
        import signal as _signal

        try:
            name = _signal.Signals(raw.signal).name
        except ValueError:
            name = str(raw.signal)
        error = f"killed by signal {name}"
        cpu = stats.get("cpu_ns", raw.cpu_s * 1e9) / 1e9
        if raw.signal == _signal.SIGXCPU or (
            raw.signal == _signal.SIGKILL and cpu >= req.limits.cpu_seconds
        ):
            error += f" (CPU limit {req.limits.cpu_seconds} s)"
        elif raw.signal == _signal.SIGXFSZ:
            error += f" (file size limit {req.limits.file_size_bytes} bytes)"
        elif raw.signal == _signal.SIGKILL and started.wall_cpu_limit:
            # gVisor reports no OOM event; an unexplained SIGKILL there is the memory cgroup
            error += f" (most likely the memory limit, {req.limits.memory_bytes} bytes)"
    cpu_ns = stats.pop("cpu_ns", None)
    resources: dict[str, Any] = {
        "cpu_seconds": round(cpu_ns / 1e9 if cpu_ns is not None else raw.cpu_s, 4),
        "max_rss_bytes": raw.max_rss_bytes,
    }
    resources.update(stats)
    result = ExecResult(
        backend=started.backend,
        # a timed-out program did not exit: under load runsc may report the child it killed
        # as 137 before it is killed itself (tests/sandbox/test_bad_input.py saw it in CI)
        exit_code=None if raw.timed_out else raw.returncode,
        stdout=raw.stdout.text(),
        stderr=stderr,
        stdout_truncated=raw.stdout.truncated,
        stderr_truncated=raw.stderr.truncated,
        stdout_total_bytes=raw.stdout.total,
        stderr_total_bytes=raw.stderr.total,
        duration_ms=round(raw.duration_s * 1000, 3),
        timed_out=raw.timed_out,
        signal=raw.signal,
        oom_killed=oom,
        error=error,
        resources=resources,
        limits_enforced=started.enforced,
        files=collected.changes if collected else FileChanges(),
        workspace_error=ws_error,
        pooled=started.pooled,
    )
    return result, collected


def _raised_memory_error(stderr: str) -> bool:
    """True when the code died of an uncaught MemoryError: the traceback's last line names it.

    Looking only at the last line keeps a program that merely prints the word from being
    reported as out of memory."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return bool(lines) and lines[-1].startswith("MemoryError")
