"""The FastAPI application: routes under /v1, one error shape, a request size limit, and the
embedded worker started with the server.

The worker shares the server's event loop; its commits always go through the committer thread
(`inline_commits=False`), so a run stepping never holds up a request. CORS is off (no
middleware): a browser page from another origin cannot call the API with a user's key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether import __version__

from . import approvals, errors, health, info, runs, stream
from .config import ServerConfig
from .errors import ApiError
from .state import ServerState


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413 before the route reads it: by its
    Content-Length, or as it arrives (a chunked body declares none)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        # no Content-Length (a chunked body): read it whole, up to the limit, before the route
        chunks: list[bytes] = []
        seen, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                await self._refuse(scope, receive, send)
                return
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = ApiError(413, "too_large", f"the request body is over {self.limit} bytes",
                            "body", "send a smaller body (the server's --max-body)").response()
        await response(scope, receive, send)


def create_app(config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    state = ServerState.build(config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        from tether.observe import export_live, export_metrics_live
        from tether.runtime import Worker
        from tether.runtime.committer import GroupCommitter

        state.loop = asyncio.get_running_loop()
        state.committer = GroupCommitter(state.tether.store, inline=False)
        stop = asyncio.Event()
        task: asyncio.Task[Any] | None = None
        # traces and metrics of the runs the embedded worker executes, where the OTEL
        # environment names a collector (nothing happens, nothing is imported, otherwise)
        exports = [export_live(state.tether), export_metrics_live(state.tether)]
        if config.embedded_worker:
            state.worker = state.tether.adopt(Worker(
                state.tether.store, committer=state.committer, inline_commits=False,
                guards=config.guards, concurrency=config.worker_concurrency,
                lease_ttl=config.worker_lease_ttl))
            task = asyncio.create_task(state.worker.serve(stop=stop), name="tether-server-worker")
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            state.worker = None
            for export in exports:
                if export is not None:  # the last spans, before the store closes
                    await asyncio.to_thread(export.close)
            state.committer.close()
            state.committer = None
            state.tether.close()

    app = FastAPI(title="Tether", version=__version__, lifespan=lifespan,
                  description="Durable, governed LLM agents as a service: submit runs, follow "
                  "their journals, decide approvals. Every route needs an API key "
                  "(`tether keys create`); every query is scoped to the key's tenant.")
    app.state.tether = state
    errors.install(app)
    for module in (runs, stream, approvals, info, health):
        app.include_router(module.router)
    from tether.server.ui import install as install_ui  # the web UI at /ui (imports this)

    install_ui(app)
    app.add_middleware(BodyLimit, limit=config.max_body)
    _describe_agents(app, sorted(state.catalogue))
    return app


def _describe_agents(app: FastAPI, names: list[str]) -> None:
    """The submit body's `agent` is one of the catalogue's names: say so in the OpenAPI
    description, so clients (and generated tests) know them without asking."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            field = schema["components"]["schemas"]["SubmitIn"]["properties"]["agent"]
            field["enum"] = names
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
