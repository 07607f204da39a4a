"""Steps executed as Ray tasks: heavy steps of any run go to a Ray cluster's CPUs and GPUs.

Ray is only *where* the function runs. The worker journals the step's start before submitting
the task and its outcome after, exactly as for a step run in its own process, so a worker that
dies while the task runs finds the step in doubt on resumption like any other. Ray's own task
retries are switched off (`max_retries=0`): whether a step may run again is the runtime's
decision (idempotency, the step's retry policy), never a second mechanism's. Ray's failures
arrive as the runtime's errors: a dead Ray worker or node is `StepLost` (outcome unknown), a task
killed by Ray's memory monitor is `StepOutOfMemory`, a request no node can satisfy is
`StepUnschedulable` (raised before submitting: Ray itself would wait for it forever).

Ray is an optional dependency (`pip install 'tether[ray]'`); it is imported when a
`RayExecutor` first connects, so a worker without it starts, and says what to install when a
step needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from ..calls import ThreadOutlivedCancel, _is_async
from ..errors import TetherError
from .base import StepLost, StepOutOfMemory, StepUnschedulable
from .resources import Resources

#: how long the cluster's node sizes are trusted before they are read again
_NODES_TTL_S = 10.0
_LOCAL_START_TRIES = 3


class RayNotInstalled(TetherError):
    """A step was sent to Ray, but this Python cannot import ray."""


class RayUnavailable(TetherError):
    """The Ray cluster could not be joined (or a local one started)."""


def _invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The body of every Ray task: one remote function for all steps (registered with the
    cluster once), which also runs async step functions to completion."""
    if _is_async(fn):
        return asyncio.run(fn(*args, **kwargs))
    return fn(*args, **kwargs)


class RayExecutor:
    """Runs steps that declare `resources` as Ray tasks. `address`: the cluster to join
    ("ray://host:10001", "host:6379" or "auto"); None joins the cluster this process is already
    connected to, or starts a local one (`ray.init()`). `init_options`: more `ray.init` keywords
    (e.g. `num_cpus` for a local cluster)."""

    name = "ray"

    def __init__(self, address: str | None = None, **init_options: Any) -> None:
        self.address = address
        self.init_options = init_options
        self._lock = threading.Lock()
        self._ray: Any = None
        self._started_here = False  # this executor called ray.init (close() shuts it down)
        self._remote: Any = None
        self._nodes: list[dict[str, float]] = []
        self._nodes_read = -_NODES_TTL_S

    def connect(self) -> Any:
        """Import ray and join the cluster (blocking: a local cluster takes seconds to start)."""
        with self._lock:
            if self._ray is not None:
                return self._ray
            try:
                import ray
            except ImportError as exc:
                raise RayNotInstalled(
                    "this step declares resources and the worker runs in Ray mode, but ray is "
                    "not installed here: pip install 'tether[ray]'") from exc
            self._started_here = not ray.is_initialized()
            if self._started_here:
                self._init(ray)
            self._remote = ray.remote(_invoke)
            self._ray = ray
            return ray

    def _init(self, ray: Any) -> None:
        # Ray gives a new local node a fixed 30 s to register; a loaded machine can take longer,
        # so a local cluster is started again (twice at most) before giving up
        tries = _LOCAL_START_TRIES if self.address is None else 1
        for attempt in range(1, tries + 1):
            try:
                ray.init(address=self.address, **self.init_options)
                return
            except Exception as exc:
                with contextlib.suppress(Exception):
                    ray.shutdown()  # what did start of a local cluster
                if attempt == tries:
                    where = self.address or "a new local cluster"
                    raise RayUnavailable(f"could not join the Ray cluster ({where}): "
                                         f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Leave the cluster (and stop the local one this executor started, if it did)."""
        with self._lock:
            if self._ray is not None and self._started_here:
                self._ray.shutdown()
            self._ray = self._remote = None

    async def run(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any], resources: Resources, timeout: float | None) -> Any:
        ray = self._ray or await asyncio.to_thread(self.connect)
        await asyncio.to_thread(self._check_feasible, name, resources)
        ref = self._remote.options(name=name, max_retries=0, retry_exceptions=False,
                                   **_ray_options(resources)).remote(fn, args, kwargs)
        future = asyncio.wrap_future(ref.future())
        try:
            return await self._outcome(ray, ref, future, timeout)
        except ThreadOutlivedCancel:
            raise
        except asyncio.CancelledError as cancel:
            # like a step in a thread: the task cannot be taken back, so wait for what it did
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({future})
            error = future.exception()
            result = None if error else future.result()
            if error is not None:
                try:
                    _translate(ray, error)
                except Exception as translated:  # what the journal records of the failure
                    error = translated
            raise ThreadOutlivedCancel(error, result, cancel) from None

    async def _outcome(self, ray: Any, ref: Any, future: asyncio.Future[Any],
                       timeout: float | None) -> Any:
        try:
            if timeout is None:
                return await asyncio.shield(future)
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            ray.cancel(ref, force=True)
            raise StepLost(f"did not finish within {timeout}s; its Ray task was killed, so "
                           "whether its effect took place is unknown") from None
        except ray.exceptions.RayError as exc:
            _translate(ray, exc)
            raise

    def _check_feasible(self, name: str, resources: Resources) -> None:
        """Refuse a request larger than every node: Ray would keep it pending forever."""
        wanted = _ray_totals(resources)
        if not wanted:
            return
        now = time.monotonic()
        if now - self._nodes_read > _NODES_TTL_S:
            self._nodes = [dict(n.get("Resources") or {}) for n in self._ray.nodes()
                           if n.get("Alive")]
            self._nodes_read = now
        if any(all(node.get(k, 0.0) >= amount for k, amount in wanted.items())
               for node in self._nodes):
            return
        largest = ", ".join(f"{k}={max((n.get(k, 0.0) for n in self._nodes), default=0.0):g}"
                            for k in wanted)
        raise StepUnschedulable(
            f"step {name!r} asks for {resources.to_json()}, more than any node of the Ray "
            f"cluster has (largest: {largest}); lower the request or add a bigger node")


def _ray_options(resources: Resources) -> dict[str, Any]:
    # what was asked for, as journaled; Ray names custom resources `resources`
    options = resources.to_json()
    if "custom" in options:
        options["resources"] = options.pop("custom")
    return options


def _ray_totals(resources: Resources) -> dict[str, float]:
    """The request in the names Ray gives a node's totals (a task asks for 1 CPU by default)."""
    wanted = {"CPU": 1.0 if resources.num_cpus is None else float(resources.num_cpus)}
    if resources.num_gpus:
        wanted["GPU"] = float(resources.num_gpus)
    if resources.memory is not None:
        wanted["memory"] = float(resources.memory)
    wanted.update({k: float(a) for k, a in resources.custom.items()})
    return {k: a for k, a in wanted.items() if a > 0}


def _translate(ray: Any, exc: BaseException) -> None:
    """Raise the runtime's view of a Ray failure (returns when it has none: raise `exc`)."""
    errors = ray.exceptions
    if isinstance(exc, errors.RayTaskError):
        cause = exc.cause
        if isinstance(cause, Exception):  # the step's function raised it: report it as such
            raise cause from None
        return
    if isinstance(exc, errors.OutOfMemoryError):
        raise StepOutOfMemory(f"killed by Ray for lack of memory: {_first_line(exc)}") from None
    if isinstance(exc, errors.TaskUnschedulableError):
        raise StepUnschedulable(f"Ray cannot schedule it: {_first_line(exc)}") from None
    if isinstance(exc, errors.WorkerCrashedError | errors.NodeDiedError
                  | errors.LocalRayletDiedError | errors.ObjectLostError
                  | errors.TaskCancelledError | errors.RayActorError):
        raise StepLost(f"its Ray task was lost ({type(exc).__name__}: {_first_line(exc)}); "
                       "whether its effect took place is unknown") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
