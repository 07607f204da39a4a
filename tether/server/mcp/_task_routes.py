"""The MCP task methods (`tasks/get`, `tasks/result`, `tasks/cancel`, `tasks/list`,
`tasks/update`) as the server's middleware routes them: the 2025-11-25 methods (`_tasks`) or
the 2026-07-28 tasks extension (`_tasks_ext`), by what the client speaks."""

from __future__ import annotations

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, METHOD_NOT_FOUND

from tether.server.mcp import _tasks_ext as ext
from tether.server.mcp._session_runs import SessionRuns
from tether.server.mcp._tasks import TaskIdParams, Tasks, parse


class TaskRoutes:
    """The middleware's handlers for the task methods; `tasks` reads and moves the runs."""

    def __init__(self, tasks: Tasks, created: SessionRuns) -> None:
        self.tasks = tasks
        self.created = created

    def _wire(self, ctx: ServerRequestContext[Any, Any], method: str) -> bool:
        """True for the extension's wire; refuses a 2026-07-28 client that did not declare it."""
        if ext.speaks_extension(ctx):
            return True
        if ext.modern(ctx):
            raise ext.refuse_undeclared(method)
        return False

    async def get(self, ctx: ServerRequestContext[Any, Any],
                  call_next: CallNext) -> HandlerResult:
        if not self._wire(ctx, "tasks/get"):
            return await self.tasks.get(ctx.params)
        p = parse(TaskIdParams, ctx.params, "tasks/get")
        ext.check_name_header(ctx, p.task_id)
        return ext.detailed(self.tasks.run(p.task_id))

    async def result(self, ctx: ServerRequestContext[Any, Any],
                     call_next: CallNext) -> HandlerResult:
        if self._wire(ctx, "tasks/result"):
            raise MCPError(METHOD_NOT_FOUND, "tasks/result is not part of the tasks extension: "
                           "tasks/get inlines the result of a completed task")
        return await self.tasks.result(ctx.params)

    async def cancel(self, ctx: ServerRequestContext[Any, Any],
                     call_next: CallNext) -> HandlerResult:
        if not self._wire(ctx, "tasks/cancel"):
            return await self.tasks.cancel(ctx.params)
        p = parse(TaskIdParams, ctx.params, "tasks/cancel")
        ext.check_name_header(ctx, p.task_id)
        if not self.tasks.run(p.task_id).finished:  # a terminal task: the same acknowledgement
            await self.tasks.stop(p.task_id)
        return {"resultType": "complete"}

    async def list(self, ctx: ServerRequestContext[Any, Any],
                   call_next: CallNext) -> HandlerResult:
        if ext.speaks_extension(ctx) or ext.modern(ctx):
            raise MCPError(METHOD_NOT_FOUND, "tasks/list is not part of the 2026-07-28 tasks "
                           "extension")
        return await self.tasks.list(ctx.params, self.created.of(ctx.session))

    async def update(self, ctx: ServerRequestContext[Any, Any],
                     call_next: CallNext) -> HandlerResult:
        if not self._wire(ctx, "tasks/update"):
            raise MCPError(METHOD_NOT_FOUND, "tasks/update is part of the tasks extension "
                           f"({ext.EXTENSION}); declare it to use it")
        p = parse(TaskIdParams, ctx.params, "tasks/update")
        ext.check_name_header(ctx, p.task_id)
        self.tasks.run(p.task_id)
        raise MCPError(INVALID_PARAMS, f"task {p.task_id} does not wait for input: this server's "
                       "tasks ask for approvals through the approvers, not tasks/update")
