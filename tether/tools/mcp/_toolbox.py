"""`MCPTools`: the owner of MCP connections and the tools they bring.

    async with MCPTools([MCPServerConfig.stdio("time", "mcp-server-time")]) as mcp:
        tools = mcp.registry(tags=["read"])     # only what the task needs, before the model sees
        await react(ctx, goal, model=model, tools=tools)

Entering connects to every server and lists its tools; leaving closes every session and ends
every stdio server's process (the connections are children of this block, never older than
it). A server that cannot be reached on entry is an error naming it, unless ``required=False``:
its tools are then missing and :attr:`MCPTools.unavailable` says why.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from tether.tools._drift import diff_entry, lock_entry, read_lock
from tether.tools._errors import ToolConflictError, ToolDefinitionError
from tether.tools._registry import ToolRegistry
from tether.tools.mcp._config import MCPConfigError, MCPServerConfig
from tether.tools.mcp._connection import MCPConnection, MCPUnavailableError, describe
from tether.tools.mcp._tool import MCPTool, local_name


class MCPTools:
    """Connections to MCP servers and their tools (an async context manager)."""

    def __init__(self, servers: Iterable[MCPServerConfig], *, required: bool = True,
                 connect_timeout: float = 30.0, lock: str | Path | None = None) -> None:
        """``lock``: a ``tools.lock.json`` (`tether tools lock`) the servers' tools are held to
        when listed: a tool that drifted since (a changed description or schema: a rug pull
        after review) or that the lock does not know is left out, with why in
        :attr:`skipped`. Without it, what the servers list is taken as it is."""
        self.servers = list(servers)
        self.locked: dict[str, dict[str, Any]] | None = (
            None if lock is None else read_lock(lock)["tools"])
        self.lock_path = None if lock is None else str(lock)
        names = [s.name for s in self.servers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise MCPConfigError(f"MCP server name(s) used twice: {', '.join(dupes)}")
        self.required = required
        self.connections = {s.name: MCPConnection(s, connect_timeout=connect_timeout)
                            for s in self.servers}
        self.tools: list[MCPTool] = []
        #: server name -> why it could not be reached on entry
        self.unavailable: dict[str, str] = {}
        #: ``server#tool`` -> why the tool was left out (an invalid schema, a name clash)
        self.skipped: dict[str, str] = {}
        self._stack: AsyncExitStack | None = None
        #: how a message about a required server that failed says to go on without it
        #: (`mcp_tools_now`, behind `tether tools`, has no `required`: it names the config file)
        self.go_on_without = "pass required=False to go on without it"

    async def __aenter__(self) -> MCPTools:
        if self._stack is not None:
            raise RuntimeError("MCPTools is already open; use one `async with` per instance")
        async with AsyncExitStack() as stack:
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)  # leaving closes every connection
            for conn in self.connections.values():
                await tg.start(conn.supervise)
            failures = [f for conn in self.connections.values() if (f := await self._load(conn))]
            if not failures:
                self._stack = stack.pop_all()
        if failures:  # raised outside the task group, so not wrapped in an exception group
            raise MCPConfigError("; ".join(failures))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            # the block's own exception is not handed to the task group: it would come back
            # wrapped in an exception group; it propagates as it is once the connections closed
            await stack.aclose()

    async def _load(self, conn: MCPConnection) -> str | None:
        """List the server's tools into :attr:`tools`; return why it failed when required."""
        cfg = conn.config
        try:
            client = await conn.client()
        except MCPUnavailableError as e:
            if self.required:
                # the error's own text is the model's (it ends in a full stop): the reason only
                return (f"{cfg.label} cannot be reached: {conn.error or e.reason}. Check its "
                        f"command or URL ({self.go_on_without})")
            self.unavailable[cfg.name] = conn.error or e.reason
            return None
        try:
            listed = await _list_all(client)
        except Exception as e:  # a listing the protocol does not allow, a refusal, no answer
            why = (f"its tools/list answer cannot be used ({conn.clip(describe(e))}); "
                   "none of its tools is taken")
            if self.required:
                return (f"{cfg.label}: {why}. Fix or update the server "
                        f"({self.go_on_without})")
            self.unavailable[cfg.name] = why
            return None
        version = (client.server_info.version if client.server_info else None) or None
        taken = {t.name: t.source for t in self.tools}
        for remote in listed:
            if not cfg.wants(remote.name):
                continue
            key = f"{cfg.name}#{remote.name}"
            name = local_name(cfg, remote.name)
            if name in taken:
                if taken[name].startswith(f"mcp:{cfg.name}#"):  # two of its names made safe
                    self.skipped[key] = (f"its tool {taken[name].split('#', 1)[1]!r} is "
                                         f"already named {name!r} here")
                else:
                    self.skipped[key] = (f"another server's tool is already named {name!r}; "
                                         f"give server {cfg.name!r} a `prefix`")
                continue
            try:
                tool = MCPTool(conn, remote, server_version=version)
            except ToolDefinitionError as e:
                self.skipped[key] = str(e)
                continue
            unreviewed = self._unreviewed(tool)
            if unreviewed:
                self.skipped[key] = unreviewed
                continue
            taken[name] = tool.source
            self.tools.append(tool)
        return None

    def _unreviewed(self, tool: MCPTool) -> str | None:
        """Why ``tool`` is not what the lock recorded (None: it is, or there is no lock)."""
        if self.locked is None:
            return None
        again = f"review it, then `tether tools lock` again ({self.lock_path})"
        entry = self.locked.get(tool.name)
        if entry is None:
            return f"the lock does not know it: {again}"
        live = lock_entry(tool)
        if entry.get("source") != live["source"]:
            return (f"the lock has a tool of this name from {entry.get('source')!r}, not "
                    f"{live['source']!r}: {again}")
        if entry.get("hash") == live["hash"]:
            return None
        drifts = "; ".join(d.detail if d.parameter is None else f"{d.parameter}: {d.detail}"
                           for d in diff_entry(tool.name, entry, live)) or "its schema hash"
        return f"it changed since the lock ({drifts}): {again}"

    def select(self, names: Sequence[str] | None = None, tags: Sequence[str] | None = None
               ) -> list[MCPTool]:
        """The tools whose name matches one of ``names`` (globs) and that carry one of ``tags``
        (the server's name, its side-effect class, ``idempotent``, configured tags)."""
        chosen = self.tools
        if names is not None:
            chosen = [t for t in chosen if any(fnmatch.fnmatchcase(t.name, g) for g in names)]
        if tags is not None:
            chosen = [t for t in chosen if t.tags & set(tags)]
        return chosen

    def registry(self, names: Sequence[str] | None = None, tags: Sequence[str] | None = None,
                 *, into: ToolRegistry | None = None) -> ToolRegistry:
        """A registry (new, or ``into``) with the selected tools (see :meth:`select`).

        A name ``into`` already has, from another tool, is refused (`ToolConflictError`): the
        registry keeps versions side by side and serves the highest, so a server whose
        version string is higher would otherwise replace a local tool of the same name for
        every caller, silently. Nothing is added then; give the server a ``prefix``.
        """
        registry = into if into is not None else ToolRegistry()
        chosen = self.select(names, tags)
        for t in chosen:
            held = [registry.get(t.name, v) for v in registry.versions(t.name)]
            other = next((h for h in held if h is not t), None)
            if other is not None:
                raise ToolConflictError(
                    f"tool {t.name!r} of MCP server {t.server!r} would shadow the registry's "
                    f"tool {t.name!r} (from {other.source}); give server {t.server!r} a "
                    "`prefix` or leave the tool out (`exclude`)")
        for t in chosen:
            registry.register(t)
        return registry


async def _list_all(client: Any) -> list[Any]:
    """Every page of ``tools/list`` (a server may paginate)."""
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(1000):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools
