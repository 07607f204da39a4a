"""MCP tasks (spec 2025-11-25) backed by Tether runs: `tasks/get`, `tasks/result`,
`tasks/cancel` and `tasks/list`.

The task id *is* the run id and everything a task is lives in the run's row and journal, so a
task outlives the connection that created it and the server process: after a restart (even a
SIGKILL) the new process finds the run in `TETHER_DB`, its worker resumes it, and `tasks/result`
answers. The SDK (2.3) carries the task types but dispatches none of these methods, so
`TetherMCPServer` serves them from its middleware with the models below.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tether.server.mcp._results import MCP_OPTION, call_result, task_of
from tether.store import RunRecord

if TYPE_CHECKING:
    from tether.runtime import Tether
    from tether.server.mcp._worker import NotifyingWorker


class TaskIdParams(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")
    #: a run id is 16 characters; the bound keeps a hostile id out of every error that names it
    task_id: str = Field(alias="taskId", min_length=1, max_length=256)


class ListParams(BaseModel):
    model_config = ConfigDict(extra="allow")
    cursor: str | None = None


def task_wire(task: types.Task) -> dict[str, Any]:
    """The task as JSON: `ttl` is required by the spec even when null (unlimited)."""
    data = task.model_dump(by_alias=True, mode="json", exclude_none=True)
    data["ttl"] = task.ttl
    return data


def parse(model: type[BaseModel], params: Any, method: str) -> Any:
    try:
        return model.model_validate(params or {})
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "params" for e in exc.errors())
        raise MCPError(INVALID_PARAMS, f"{method}: invalid params ({fields}): "
                       f"{exc.errors()[0]['msg']}") from None


class Tasks:
    """The task methods over one database and the server's worker."""

    def __init__(self, tether: Tether, worker: NotifyingWorker, tenant: str) -> None:
        self.tether = tether
        self.worker = worker
        self.tenant = tenant

    def run(self, task_id: str) -> RunRecord:
        """The run behind a task of this server; anything else is "not found" (a client must
        not reach runs it did not create by guessing ids)."""
        run = self.tether.store.get_run(task_id)
        if run is None or run.tenant != self.tenant or not _is_task(run):
            raise MCPError(INVALID_PARAMS, f"no task {task_id!r} on this server (task ids are "
                           "the ids tools/call returned in CreateTaskResult)")
        return run

    def unfinished(self, run_id: str) -> bool:
        run = self.tether.store.get_run(run_id)
        return run is not None and not run.finished

    async def get(self, params: Any) -> dict[str, Any]:
        p = parse(TaskIdParams, params, "tasks/get")
        return task_wire(task_of(self.run(p.task_id)))

    async def result(self, params: Any) -> dict[str, Any]:
        """Blocks until the task is terminal (spec: tasks/result waits), then answers what the
        call would have answered."""
        p = parse(TaskIdParams, params, "tasks/result")
        self.run(p.task_id)
        run = await self.worker.settled(p.task_id)
        return call_result(run)

    async def cancel(self, params: Any) -> dict[str, Any]:
        p = parse(TaskIdParams, params, "tasks/cancel")
        run = self.run(p.task_id)
        if run.finished:
            raise MCPError(INVALID_PARAMS, f"cannot cancel task {p.task_id}: it is already "
                           f"{task_of(run).status} (a terminal status)")
        settled = await self.stop(p.task_id)
        return task_wire(task_of(settled))

    async def stop(self, run_id: str) -> RunRecord:
        """Cancel the run and wait until it is terminal. The request is repeated while the run
        is not: a run flagged while running that suspends in the same moment is written back
        `waiting` with the flag set (the runtime's suspend does not check it), and only a
        cancel of the now idle run ends it."""
        from tether.runtime.errors import RunFinished

        why = "cancelled by the MCP client (tasks/cancel)"
        while True:
            with contextlib.suppress(RunFinished):
                self.worker.cancel_local(self.tether.cancel(run_id, why))
            try:
                return await asyncio.wait_for(self.worker.settled(run_id, poll=0.05), 1.0)
            except TimeoutError:
                continue

    async def list(self, params: Any, created: builtins.list[str]) -> dict[str, Any]:
        """The tasks among `created`, the runs the asking connection made (`SessionRuns`)."""
        parse(ListParams, params, "tasks/list")
        return {"tasks": [task_wire(task_of(r)) for r in self.among(created)]}

    def among(self, run_ids: builtins.list[str]) -> builtins.list[RunRecord]:
        """The tasks of this server among `run_ids`, in their order."""
        runs = (self.tether.store.get_run(run_id) for run_id in run_ids)
        return [r for r in runs if r is not None and r.tenant == self.tenant and _is_task(r)]


def _is_task(run: RunRecord) -> bool:
    mcp = run.options.get(MCP_OPTION)
    return isinstance(mcp, dict) and bool(mcp.get("task"))
