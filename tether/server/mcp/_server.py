"""`TetherMCPServer`: a `ToolRegistry` and Tether agents served over MCP, on the SDK's `MCPServer`.

The SDK's `MCPServer` (2.x; formerly `FastMCP`) does the protocol: transports, the handshake,
prompts, resources and completions that fixtures or applications add with its own decorators
(`server.sdk.prompt()`, `server.sdk.resource(...)`, `server.sdk.completion()`). Tether adds one
middleware — the SDK's public seam around every request — that owns what must be governed and
durable:

* `tools/list`: the registry's tools and the exposed agents, minus what the policy denies
  outright (`_listing`), plus tools registered on the SDK server, filtered the same way;
* `tools/call` of a registry tool or an agent: a Tether run (`_agent`: one `tool:` step through
  the guards; an agent: the agent itself) in `TETHER_DB`, executed by this process's worker.
  A plain call waits for the run; a task-augmented call (`"task": {...}`) returns the task at
  once, and `tasks/*` (`_tasks`) read the run;
* resources for runs and artifacts (`_resources`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import BaseModel

from tether.guards import Guards, Policy, PolicySet, ToolInfo
from tether.runtime import Tether, new_run_id, resolve_agent, resolve_guards
from tether.runtime.refs import check_agent
from tether.runtime.tenants import check_tenant
from tether.server.mcp import _stdio
from tether.server.mcp import _tasks_ext as ext
from tether.server.mcp._agent import CALL_AGENT, SERVED
from tether.server.mcp._call_checks import check_call
from tether.server.mcp._elicit import ElicitationApprover, ElicitedApprovals
from tether.server.mcp._handshake import check_handshake
from tether.server.mcp._listing import could_allow
from tether.server.mcp._probes import add_probes
from tether.server.mcp._resources import RunResources
from tether.server.mcp._results import MCP_OPTION, call_result, task_of
from tether.server.mcp._session import LIVE, SessionTool
from tether.server.mcp._session_runs import MAX_OPEN_TASKS, SessionRuns
from tether.server.mcp._task_routes import TaskRoutes
from tether.server.mcp._tasks import Tasks, parse, task_wire
from tether.server.mcp._worker import NotifyingWorker
from tether.store import RunRecord, Store
from tether.tools import Tool, ToolRegistry

#: what `initialize` advertises for tasks (2025-11-25): list, cancel, task-augmented tools/call
TASKS_CAPABILITY: dict[str, Any] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}

DEFAULT_AGENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"goal": {"type": "string", "description": "What the agent should achieve."}},
    "required": ["goal"],
}


@dataclass(frozen=True)
class AgentTool:
    """A Tether agent exposed as an MCP tool; each call is a durable run (a task if asked)."""

    name: str
    agent: str  # `module:function` or `path.py:function`: any worker can import it
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_AGENT_SCHEMA))
    #: "optional": plain or task-augmented calls; "required": task-augmented only
    task_support: str = "optional"


class TetherMCPServer:
    def __init__(
        self,
        tools: ToolRegistry | None = None,
        *,
        db: str | os.PathLike[str] | Store | None = None,
        guards: Guards | str | None = None,
        agents: Mapping[str, AgentTool | str] | None = None,
        name: str = "tether",
        instructions: str | None = None,
        tenant: str = "mcp",
        registry_ref: str | None = None,
        lease_ttl: float = 30.0,
        elicitation_approver: ElicitationApprover | None = None,
        max_open_tasks: int = MAX_OPEN_TASKS,
    ) -> None:
        """`tools`: the registry to serve. `guards`: a `Guards` object (applies to the runs
        this process executes) or a `module:NAME` reference (recorded with every run, so any
        worker enforces it); without guards every registry tool is served and called directly,
        still journaled. `registry_ref`: the `module:NAME` the registry came from, recorded with
        each call so that another worker process can execute it too. `tenant`: the tenant of
        every run this server creates (budgets, `tether runs --tenant`).
        `elicitation_approver`: who signs what a client's user decides when the server asks
        them to approve a waiting call by elicitation (`_elicit`); it must be one of the
        guards' approvers. `max_open_tasks`: the unfinished tasks one client connection may
        have; one more task is refused (`SessionRuns.admit_task`)."""
        from importlib.metadata import version  # not `tether.__version__`: tether re-exports us

        self.registry = tools if tools is not None else ToolRegistry()
        self.registry_key = registry_ref or f"{name}:{id(self.registry):x}"
        SERVED[self.registry_key] = self.registry
        # the SDK server's own tools, wrapped (`_session`); served by this process only
        self.session_tools = ToolRegistry()
        self.session_key = f"{name}:{id(self.session_tools):x}#sdk"
        SERVED[self.session_key] = self.session_tools
        self._guards_ref = guards
        self.guards: Guards | None = resolve_guards(guards) if isinstance(guards, str) else guards
        if self.guards is not None and self.guards.tools is None:
            self.guards.tools = self.registry
        self.tenant = check_tenant(tenant)  # before the database is opened
        self.tether = Tether(db, guards=guards, lease_ttl=lease_ttl)
        # adopted: the client's listeners (live trace export) follow the runs it executes
        self.worker = NotifyingWorker(self.tether.store, guards=guards, lease_ttl=lease_ttl)
        self.tether.adopt(self.worker)
        self.agents: dict[str, AgentTool] = {}
        for agent_name, spec in (agents or {}).items():
            self.add_agent(spec if isinstance(spec, AgentTool) else AgentTool(agent_name, spec))
        self.tasks = Tasks(self.tether, self.worker, tenant)
        self.created = SessionRuns(max_open_tasks)  # what each connection may list
        self.task_routes = TaskRoutes(self.tasks, self.created)
        self.elicited: ElicitedApprovals | None = None
        if elicitation_approver is not None:
            if self.guards is None:
                raise ValueError("an elicitation approver needs guards (a policy that asks "
                                 "for approvals, and the approvers' keys)")
            self.elicited = ElicitedApprovals(self.tether, elicitation_approver,
                                              self.guards.config.approvers)
        self.resources = RunResources(self.tether.store, tenant, self.created)
        self.sdk: MCPServer[Any] = MCPServer(
            name, version=version("tether"), instructions=instructions, log_level="WARNING",
            middleware=[self._middleware])
        self._routes: dict[str, Callable[[ServerRequestContext[Any, Any], CallNext],
                                         Any]] = {
            "initialize": self._initialize,
            "server/discover": self._discover,
            "tools/list": self._list_tools,
            "tools/call": self._call_tool,
            "tasks/get": self.task_routes.get,
            "tasks/result": self.task_routes.result,
            "tasks/cancel": self.task_routes.cancel,
            "tasks/list": self.task_routes.list,
            "tasks/update": self.task_routes.update,
            "resources/list": self.resources.list_route,
            "resources/templates/list": self.resources.templates_route,
            "resources/read": self.resources.read_route,
        }

    # -- configuration ---------------------------------------------------------------------
    def add_agent(self, agent: AgentTool) -> None:
        """Expose `agent` as a tool; its reference is checked now (a worker must be able to
        import it, and it must take an input), not at its first call."""
        check_agent(resolve_agent(agent.agent), agent.agent, input_given=True)
        if agent.name in self.registry or agent.name in self.agents:
            raise ValueError(f"an MCP tool named {agent.name!r} is already served; give the "
                             "agent another name")
        if agent.task_support not in ("optional", "required"):
            raise ValueError(f"agent {agent.name!r}: task_support must be 'optional' or "
                             f"'required', not {agent.task_support!r}")
        self.agents[agent.name] = agent

    @property
    def policy(self) -> Policy | PolicySet | None:
        return None if self.guards is None else self.guards.config.policy

    def listed(self, tool_name: str) -> bool:
        """Whether clients see `tool_name` (without guards: every tool)."""
        if self.guards is None:
            return True
        if tool_name in self.registry:
            info = self.guards.gate.tool_info(tool_name, self.registry)
        elif tool_name in self.session_tools:
            info = self.guards.gate.tool_info(tool_name, self.session_tools)
        else:
            info = ToolInfo(name=tool_name)  # an agent, or an SDK tool: side effect unknown
        return could_allow(self.policy, info, granted=tool_name in self.agents)

    # -- the middleware --------------------------------------------------------------------
    async def _middleware(self, ctx: ServerRequestContext[Any, Any],
                          call_next: CallNext) -> HandlerResult:
        route = self._routes.get(ctx.method) if ctx.request_id is not None else None
        if route is None:
            return await call_next(ctx)
        check_handshake(ctx)
        result: HandlerResult = await route(ctx, call_next)
        return result

    async def _initialize(self, ctx: ServerRequestContext[Any, Any],
                          call_next: CallNext) -> HandlerResult:
        """Advertise tasks: the 2026-07-28 extension always, the 2025-11-25 `tasks` slot only
        to a client that did not declare the extension (it replaces that slot)."""
        result = await call_next(ctx)
        if isinstance(result, dict):
            caps = dict(result.get("capabilities") or {})
            caps.setdefault("tools", {"listChanged": False})
            caps.setdefault("resources", {"subscribe": False, "listChanged": False})
            caps["extensions"] = {**(caps.get("extensions") or {}), ext.EXTENSION: {}}
            if not ext.declared_in((ctx.params or {}).get("capabilities")):
                caps["tasks"] = TASKS_CAPABILITY
            result = {**result, "capabilities": caps}
        return result

    async def _discover(self, ctx: ServerRequestContext[Any, Any],
                        call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if isinstance(result, dict) and isinstance(result.get("capabilities"), dict):
            caps = dict(result["capabilities"])
            caps["extensions"] = {**(caps.get("extensions") or {}), ext.EXTENSION: {}}
            result = {**result, "capabilities": caps}
        return result

    def _tool_entry(self, tool: Tool) -> dict[str, Any]:
        hints: dict[str, Any] = {
            "readOnlyHint": tool.side_effect == "read",
            "destructiveHint": tool.side_effect == "destructive",
            "idempotentHint": tool.idempotent,
            "openWorldHint": bool(getattr(tool, "network", False)),
        }
        return {"name": tool.name, "description": tool.description or f"Tool {tool.name}.",
                "inputSchema": tool.parameters, "annotations": hints,
                "execution": {"taskSupport": "optional"},
                "_meta": {"tether/version": tool.version}}

    async def _list_tools(self, ctx: ServerRequestContext[Any, Any],
                          call_next: CallNext) -> HandlerResult:
        sdk = await call_next(ctx)
        entries = [self._tool_entry(t) for t in self.registry.list() if self.listed(t.name)]
        entries += [{"name": a.name, "description": a.description or f"Tether agent {a.agent}",
                     "inputSchema": a.input_schema, "execution": {"taskSupport": a.task_support}}
                    for a in self.agents.values() if self.listed(a.name)]
        others = self._sync_session_tools(sdk.get("tools", []) if isinstance(sdk, dict) else [])
        entries += [t for t in others if self.listed(t["name"])]
        return {**(sdk if isinstance(sdk, dict) else {}), "tools": entries}

    def _sync_session_tools(self, listing: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Wrap the SDK server's tools (those not shadowed by a registry tool or an agent) as
        `SessionTool`s; returns their listing entries."""
        kept = [t for t in listing if isinstance(t, dict) and t.get("name") not in self.registry
                and t.get("name") not in self.agents]
        for entry in kept:
            self.session_tools.register(SessionTool(entry), replace=True)
        return kept

    async def _session_tool(self, name: str) -> bool:
        if name not in self.session_tools:
            listing = [t.model_dump(by_alias=True, mode="json", exclude_none=True)
                       for t in await self.sdk.list_tools()]
            self._sync_session_tools(listing)
        return name in self.session_tools

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any],
                         call_next: CallNext) -> HandlerResult:
        params = parse(types.CallToolRequestParams, ctx.params, "tools/call")
        if ext.modern(ctx):
            params.task = None  # 2026-07-28 has no `task` param: the server decides what is one
        name = params.name
        if name not in self.registry and name not in self.agents:
            if not await self._session_tool(name):
                return await call_next(ctx)  # the SDK answers an unknown tool
            if params.task is not None:
                raise MCPError(INVALID_PARAMS, f"tool {name!r} does not support task-augmented "
                               "calls (execution.taskSupport is forbidden)")
            check_call(name, params.arguments or {}, None)
            return await self._call_session_tool(ctx, call_next, name, params.arguments or {})
        check_call(name, params.arguments or {}, params.task.ttl if params.task else None)
        agent = self.agents.get(name)
        if agent is not None and ext.speaks_extension(ctx):
            # the extension's wire: the server decides; an agent's call becomes a task
            ttl = params.task.ttl if params.task else None
            run_id = await self.submit(name, params.arguments or {}, task=True, task_ttl=ttl,
                                       session=ctx.session)
            return ext.created(self.tether.get(run_id))
        if agent is not None and agent.task_support == "required" and params.task is None:
            if ext.modern(ctx):
                raise ext.refuse_undeclared(f"tool {name!r} (it runs only as a task)")
            raise MCPError(INVALID_PARAMS, f"tool {name!r} must be called as a task "
                           "(execution.taskSupport is required): add \"task\": {} to the params")
        since = self.worker.changed  # before the submission: see `settled`
        run_id = await self.submit(name, params.arguments or {},
                             task_ttl=(params.task.ttl if params.task else None),
                             task=params.task is not None, session=ctx.session)
        if params.task is not None:
            return {"task": task_wire(task_of(self.tether.get(run_id)))}
        try:
            return call_result(await self._outcome(ctx, run_id, since))
        finally:
            self.worker.release(run_id)  # e.g. another worker process claimed it

    async def _outcome(self, ctx: ServerRequestContext[Any, Any], run_id: str,
                       since: asyncio.Event) -> RunRecord:
        """Wait for the run of a plain call; while it waits for an approval, ask the client's
        user by elicitation when both sides can (once: a dismissed question is not repeated,
        the approval stays with the other approvers)."""
        elicited = self.elicited
        if elicited is None or not elicited.client_can_answer(ctx):
            return await self.worker.settled(run_id, since=since)

        def needs_decision(run: RunRecord) -> bool:
            return run.status == "waiting" and bool(elicited.pending(run.id))

        while True:
            run = await self.worker.settled(run_id, until=needs_decision)
            if run.finished or not await elicited.ask(ctx, run_id):
                return await self.worker.settled(run_id)

    async def _call_session_tool(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext,
                                 name: str, arguments: dict[str, Any]) -> HandlerResult:
        """A run whose one tool step calls the SDK's handler with this very request."""
        run_id = new_run_id()
        refused: list[MCPError] = []

        async def perform() -> dict[str, Any]:
            try:
                answer = await call_next(ctx)
            except MCPError as exc:  # a protocol error (e.g. a capability the client lacks)
                refused.append(exc)
                raise
            if isinstance(answer, BaseModel):
                return answer.model_dump(by_alias=True, mode="json", exclude_none=True)
            return dict(answer or {})

        LIVE[run_id] = perform
        try:
            await self.submit(name, arguments, run_id=run_id, session=ctx.session)
            run = await self.worker.settled(run_id)
        finally:
            LIVE.pop(run_id, None)
            self.worker.release(run_id)
        if refused:
            # journaled as a failed step; the client gets the JSON-RPC error the SDK raised,
            # as it would from the SDK's server, not a tool result
            raise refused[0]
        return call_result(run)

    async def submit(self, name: str, arguments: dict[str, Any], *, task: bool = False,
                     task_ttl: int | None = None, run_id: str | None = None,
                     session: Any = None) -> str:
        """Queue the run that performs one call of tool or agent `name`; returns its id.
        `session`: the connection that asked, which may then list the run (`SessionRuns`).

        A plain tool call starts executing at once in this process's worker, and is written
        with its first write (`Worker.start_new`). Otherwise the run is written through the
        worker's group committer, not `Tether.submit`: concurrent calls share one commit, and
        the run is claimed by this process's worker in the same transaction as its submission
        (`Worker.submit_and_claim`: one fsync, not two, and no wake-up of the worker's loop in
        between), so it starts executing at once."""
        mcp: dict[str, Any] = {"tool": name, "task": task}
        if task_ttl is not None:
            mcp["ttl"] = task_ttl
        agent = self.agents.get(name)
        if agent is not None:
            ref, run_input, mcp["kind"] = agent.agent, arguments, "agent"
        else:
            ref, mcp["kind"] = CALL_AGENT, "tool"
            key = self.registry_key if name in self.registry else self.session_key
            run_input = {"registry": key, "tool": name, "arguments": arguments}
        options: dict[str, Any] = {MCP_OPTION: mcp}
        if isinstance(self._guards_ref, str):
            options["guards"] = self._guards_ref  # every worker that takes the run enforces it
        run_id = run_id or new_run_id()
        if session is not None:
            if task:
                self.created.admit_task(session, self.tasks.unfinished)
                self.created.add_task(session, run_id)
            self.created.add(session, run_id)
        run = RunRecord(id=run_id, agent=ref, status="queued", input=run_input,
                        tenant=self.tenant, root_id=run_id, options=options)
        if not task and agent is None and self.worker.start_new(run):
            # a plain tool call, which the caller waits for here: executed at once, and
            # written with its first write (one commit for a call that is safe to repeat)
            return run_id
        if not task:
            self.worker.hold(run_id)  # released when claimed (or by the waiting caller)
        try:
            await self.worker.submit_and_claim(run)
        except BaseException:
            self.worker.release(run_id)
            raise
        return run_id

    # -- running ---------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TetherMCPServer]:
        """This process's worker, executing the server's runs (and resuming those a previous
        process left: a restarted server finishes its tasks)."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.worker.serve(stop=stop), name="tether-mcp-worker")
        try:
            yield self
        finally:
            stop.set()
            self.worker.kick()
            await task

    async def serve_stdio(self) -> None:
        """Like the SDK's `run_stdio_async`, but a line it cannot read is answered and the
        client's unanswered requests are bounded (`_stdio`)."""
        async with self.running():
            await _stdio.serve(self.sdk._lowlevel_server)

    async def serve_http(self, host: str = "127.0.0.1", port: int = 8000, *,
                         path: str = "/mcp", ready: Callable[[int], None] | None = None) -> None:
        """Streamable HTTP on `host:port` (port 0: any free port, passed to `ready`), with the
        supervisor's probes and metrics beside `path` (`_probes`)."""
        import uvicorn

        app = self.sdk.streamable_http_app(streamable_http_path=path, host=host)
        add_probes(app, self.worker, self.tether.store)  # /healthz, /readyz, /metrics
        # log_config=None: uvicorn's records go to the process's handler (`--log-format`)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                log_config=None)
        server = uvicorn.Server(config)
        async with self.running():
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():
                await asyncio.sleep(0.02)
            if ready is not None and server.started:
                ready(server.servers[0].sockets[0].getsockname()[1])
            await serving

    def close(self) -> None:
        SERVED.pop(self.registry_key, None)
        SERVED.pop(self.session_key, None)
        self.tether.close()

