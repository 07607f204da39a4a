"""Pre-started sandboxes: each takes exactly one job and is destroyed after it.

A background thread keeps ``size`` sandboxes started (stub blocked on stdin, limits and cgroup
already applied), so a job skips namespace, cgroup and interpreter start-up. Nothing is reused:
a taken sandbox is consumed by ``execute`` and a new one is started to replace it.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from tether.sandbox._backend import Backend, Started
from tether.sandbox._process import wait_ready
from tether.sandbox._types import Limits, SandboxError

log = logging.getLogger(__name__)
READY_TIMEOUT = 30.0


class Pool:
    def __init__(self, backend: Backend, limits: Limits, size: int) -> None:
        self.backend = backend
        self.limits = limits
        self.size = size
        self._ready: list[Started] = []
        self._cv = threading.Condition()
        self._closed = False
        self._failures = 0
        self._busy = 0  # jobs from this pool still running: refilling then competes for CPU
        self._thread = threading.Thread(
            target=self._fill, name=f"tether-sandbox-pool-{backend.name}", daemon=True
        )
        self._thread.start()

    def _fill(self) -> None:
        while True:
            with self._cv:
                while not self._closed and len(self._ready) >= self.size:
                    self._cv.wait()
                # let a running job finish first (bounded), so the refill does not slow it down
                self._cv.wait_for(lambda: self._busy == 0 or self._closed, timeout=1.0)
                if self._closed:
                    return
            try:
                s = self.backend.start(self.limits)
                s.pooled = True
                problem = wait_ready(s.proc, READY_TIMEOUT)
                if problem is not None:
                    _discard(s)
                    raise SandboxError(
                        f"pre-started {self.backend.name} sandbox did not come up: "
                        f"{problem.decode(errors='replace')[:500]}"
                    )
                s.ready = True
                self._failures = 0
            except Exception:
                self._failures += 1
                log.exception("could not pre-start a %s sandbox", self.backend.name)
                with self._cv:
                    self._cv.wait(min(30.0, 0.5 * 2**self._failures))
                continue
            with self._cv:
                if self._closed:
                    _discard(s)
                    return
                self._ready.append(s)
                self._cv.notify_all()

    def take(self, wait: float = 0.0) -> Started | None:
        """A ready sandbox, or None (the caller then starts one cold)."""
        with self._cv:
            if not self._ready and wait > 0:
                self._cv.wait_for(lambda: bool(self._ready) or self._closed, wait)
            if not self._ready:
                return None
            s = self._ready.pop(0)
            self._busy += 1
            self._cv.notify_all()
            return s

    def done(self) -> None:
        """The job of a taken sandbox finished."""
        with self._cv:
            self._busy = max(0, self._busy - 1)
            self._cv.notify_all()

    def ready(self) -> int:
        with self._cv:
            return len(self._ready)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            ready, self._ready = self._ready, []
            self._cv.notify_all()
        for s in ready:
            _discard(s)
        self._thread.join(timeout=10)


def _discard(s: Started) -> None:
    with contextlib.suppress(Exception):
        s.kill()
    for f in (s.proc.stdin, s.proc.stdout, s.proc.stderr):
        if f is not None:
            with contextlib.suppress(Exception):
                f.close()
    with contextlib.suppress(Exception):
        s.proc.wait(timeout=5)
    with contextlib.suppress(Exception):
        s.cleanup()
    with contextlib.suppress(Exception):
        s.staging.destroy()
