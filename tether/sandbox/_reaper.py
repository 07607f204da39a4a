"""Tear-down work that need not delay the caller (unmounting, removing empty cgroups).

Runs on one daemon thread, in order; ``drain()`` waits for it (used at exit and by tests).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
_q: queue.Queue[Callable[[], object]] = queue.Queue()
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _loop() -> None:
    while True:
        fn = _q.get()
        try:
            fn()
        except Exception:
            log.exception("sandbox tear-down failed")
        finally:
            _q.task_done()


def defer(fn: Callable[[], object]) -> None:
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_loop, name="tether-sandbox-reaper", daemon=True)
            _thread.start()
    _q.put(fn)


@atexit.register
def drain() -> None:
    if _thread is not None:
        _q.join()
