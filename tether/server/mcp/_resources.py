"""Runs and their artifacts as MCP resources: `tether://runs/{id}` (status, result),
`tether://runs/{id}/timeline` (the journal as `tether show --json` renders it) and
`tether://runs/{id}/artifacts/{sha256}` (a blob the run's journal refers to).

Only runs this server created (its tenant, marked `options["mcp"]`) are readable: a client must
not read other tenants' runs by guessing ids, and an artifact is readable only through a run
whose journal names its digest in what the run produced, not in the call's own arguments
(content addressing alone would let anyone who learns a digest read any artifact of the
database, and a client that sends a digest as an argument would make the journal name it).
`resources/list` shows a connection only the runs it created (`SessionRuns`).
"""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from tether.observe.timeline import timeline_rows
from tether.server.mcp._results import MCP_OPTION, task_of
from tether.server.mcp._session_runs import SessionRuns
from tether.store import RunRecord, Store

SCHEME = "tether://"
_RUN = re.compile(r"^tether://runs/([A-Za-z0-9_-]{1,64})(/timeline|/artifacts/([0-9a-f]{64}))?$")
_LISTED = 50  # the most recent runs resources/list shows (templates reach the others)


class RunResources:
    """The resources and the server middleware's routes for them (the SDK's own resources,
    if any, come first)."""

    def __init__(self, store: Store, tenant: str, created: SessionRuns) -> None:
        self.store = store
        self.tenant = tenant
        self.created = created

    async def list_route(self, ctx: ServerRequestContext[Any, Any],
                         call_next: CallNext) -> HandlerResult:
        sdk = await call_next(ctx)
        base = sdk if isinstance(sdk, dict) else {}
        mine = self.listing(self.created.of(ctx.session))
        return {**base, "resources": [*base.get("resources", []), *mine]}

    async def templates_route(self, ctx: ServerRequestContext[Any, Any],
                              call_next: CallNext) -> HandlerResult:
        sdk = await call_next(ctx)
        base = sdk if isinstance(sdk, dict) else {}
        return {**base, "resourceTemplates": [*base.get("resourceTemplates", []),
                                              *self.templates()]}

    async def read_route(self, ctx: ServerRequestContext[Any, Any],
                         call_next: CallNext) -> HandlerResult:
        uri = str((ctx.params or {}).get("uri", ""))
        if not self.owns(uri):
            return await call_next(ctx)
        return self.read(uri)

    def _mine(self, run: RunRecord | None) -> bool:
        return run is not None and run.tenant == self.tenant and \
            isinstance(run.options.get(MCP_OPTION), dict)

    def listing(self, created: list[str]) -> list[dict[str, Any]]:
        """The most recent of `created`, the runs the asking connection made (`SessionRuns`):
        a client is not shown the runs of the server's other clients."""
        runs = [r for r in map(self.store.get_run, created[:_LISTED])
                if r is not None and self._mine(r)]
        return [{"uri": f"{SCHEME}runs/{r.id}", "name": f"run {r.id}",
                 "title": f"{r.options[MCP_OPTION].get('tool', r.agent)} ({r.status})",
                 "mimeType": "application/json"} for r in runs]

    @staticmethod
    def templates() -> list[dict[str, Any]]:
        return [
            {"uriTemplate": SCHEME + "runs/{run_id}", "name": "run",
             "description": "A run this server created: status, result or error",
             "mimeType": "application/json"},
            {"uriTemplate": SCHEME + "runs/{run_id}/timeline", "name": "run timeline",
             "description": "The run's journal, one row per event (as `tether show --json`)",
             "mimeType": "application/json"},
            {"uriTemplate": SCHEME + "runs/{run_id}/artifacts/{sha256}", "name": "artifact",
             "description": "A blob the run's journal refers to by its sha256",
             "mimeType": "application/octet-stream"},
        ]

    @staticmethod
    def owns(uri: str) -> bool:
        return uri.startswith(SCHEME)

    def read(self, uri: str) -> dict[str, Any]:
        match = _RUN.match(uri)
        run = self.store.get_run(match.group(1)) if match else None
        if match is None or run is None or not self._mine(run):
            raise MCPError(INVALID_PARAMS, f"resource not found: {uri} (readable: the runs "
                           "this server created, see resources/list)", {"uri": uri})
        if match.group(2) is None:
            body = {"id": run.id, "status": run.status, "task_status": task_of(run).status,
                    "tool": run.options[MCP_OPTION].get("tool"), "result": run.result,
                    "error": run.error, "reason": run.reason, "created_at": run.created_at,
                    "updated_at": run.updated_at}
            return _text(uri, body)
        events = self.store.load_events(run.id)
        if match.group(2) == "/timeline":
            # an MCP client (often a model) reads no more than the run's model: PII masked
            return _text(uri, [row.to_json() for row in timeline_rows(events, redact=True)])
        digest = match.group(3).encode()
        journal = orjson.dumps([e.data for e in events], default=str)
        if digest not in journal or digest in orjson.dumps(run.input, default=str):
            # a digest the client itself sent in the call names nothing the run produced
            raise MCPError(INVALID_PARAMS, f"resource not found: {uri} (what run {run.id} "
                           "produced does not refer to that artifact)", {"uri": uri})
        try:
            data = self.store.get_artifact(digest.decode())
        except KeyError:
            raise MCPError(INVALID_PARAMS, f"resource not found: {uri} (no such artifact)",
                           {"uri": uri}) from None
        return {"contents": [{"uri": uri, "mimeType": "application/octet-stream",
                              "blob": base64.b64encode(data).decode()}]}


def _text(uri: str, body: Any) -> dict[str, Any]:
    return {"contents": [{"uri": uri, "mimeType": "application/json",
                          "text": orjson.dumps(body, default=str).decode()}]}
