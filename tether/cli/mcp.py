"""`tether mcp serve`: a tool registry and agents over the Model Context Protocol.

The server, the SDK and uvicorn are imported inside the command, so registering it costs
`tether --help` nothing. Over stdio, stdout carries the protocol only: messages go to stderr.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tether.cli._common import DB_OPTION, err_console, fail, load_registry
from tether.cli._logging import LogFormat, LogLevel, configure_logging
from tether.cli.trace import exporting

if TYPE_CHECKING:
    from tether.guards import Guards
    from tether.server.mcp import ElicitationApprover, TetherMCPServer
    from tether.tools import ToolRegistry

mcp_app = typer.Typer(help="Serve Tether's tools and agents over MCP.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(mcp_app, name="mcp")


@mcp_app.command("serve")
def serve(
    tools: Annotated[str, typer.Option(
        "--tools", help="MODULE:REGISTRY (or MODULE, or FILE.py): the ToolRegistry to serve.")],
    policy: Annotated[Path | None, typer.Option(
        "--policy", help="Policy YAML: denied tools are not listed and calls to them are "
        "refused; approvals wait durably.")] = None,
    keys: Annotated[Path | None, typer.Option(
        "--keys", envvar="TETHER_APPROVERS",
        help="YAML file mapping approver ids to Ed25519 public keys (with --policy).")] = None,
    guards: Annotated[str | None, typer.Option(
        "--guards", help="MODULE:NAME of a Guards object, instead of --policy (recorded with "
        "every run: any worker enforces it).")] = None,
    agent: Annotated[list[str] | None, typer.Option(
        "--agent", help="NAME=MODULE:FUNCTION: expose an agent as a tool whose calls may be "
        "MCP tasks (durable runs). Repeatable.")] = None,
    stdio: Annotated[bool, typer.Option("--stdio", help="Serve over stdin/stdout (default).")
                     ] = False,
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP at /mcp.")] = False,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (--http).")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (--http).")] = 8000,
    elicit_approver: Annotated[str | None, typer.Option(
        "--elicit-approver", help="Approver id (registered in --keys) that signs what an MCP "
        "client's user decides when asked to approve a call by elicitation.")] = None,
    elicit_key: Annotated[Path | None, typer.Option(
        "--elicit-key", help="That approver's Ed25519 private key (PEM).")] = None,
    no_policy: Annotated[bool, typer.Option(
        "--no-policy", help="Serve every tool of the registry with no policy (any client may "
        "call any tool; calls are still journaled). Without it, --policy or --guards is "
        "required: the gateway denies by default.")] = False,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant of the runs the server "
                                        "creates.")] = "mcp",
    lease_ttl: Annotated[float, typer.Option(
        "--lease-ttl", min=0.1, help="Seconds before another worker may take over a run of a "
        "server that died.")] = 30.0,
    log_level: LogLevel = "warning",
    log_format: LogFormat = "text",
    db: str = DB_OPTION,
) -> None:
    """Serve the tools of a ToolRegistry (and agents, as durable tasks) over MCP.

    Every call is a run in TETHER_DB: `tether show RUN` shows the policy decision and the result.
    """
    import asyncio

    configure_logging(log_level, log_format)  # on stderr: stdout is the protocol's over stdio
    if stdio and http:
        fail("choose one transport: --stdio or --http", 2)
    if policy is not None and guards is not None:
        fail("give either --policy (with --keys) or --guards MODULE:NAME, not both", 2)
    if (elicit_approver is None) != (elicit_key is None):
        fail("--elicit-approver and --elicit-key go together", 2)
    if no_policy and (policy is not None or guards is not None):
        fail("--no-policy contradicts --policy/--guards: give one", 2)
    if http:
        _check_listen(host, port)
    server = _build(tools, policy, keys, guards, agent or [], db, tenant, lease_ttl, no_policy,
                    _elicitation(elicit_approver, elicit_key))
    served = len(server.registry) + len(server.agents)
    if http:
        def ready(bound: int) -> None:
            where = getattr(server.tether.store, "path", "")
            err_console.print(f"tether mcp: {served} tools at http://{host}:{bound}/mcp "
                              f"(database {where})", markup=False)

        with contextlib.suppress(KeyboardInterrupt), exporting(server.tether):
            asyncio.run(server.serve_http(host, port, ready=ready))
        return
    with contextlib.suppress(KeyboardInterrupt), exporting(server.tether):
        asyncio.run(server.serve_stdio())


def _check_listen(host: str, port: int) -> None:
    """Refuse a port out of range or already taken before building the server: uvicorn found a
    busy port only once serving, and printed its error, an unretrieved task exception and two
    tracebacks (exit 3); a port above 65535 was an OverflowError traceback."""
    from tether.cli.serve import _check_port  # what `tether serve` says of the same mistakes

    if not 0 <= port <= 65535:
        fail(f"--port {port}: not a TCP port; choose one from 1 to 65535 (0: any free port)", 2)
    _check_port(host, port)


def _elicitation(name: str | None, key: Path | None) -> ElicitationApprover | None:
    if name is None or key is None:
        return None
    from tether.guards import KeyFormatError, load_private_key
    from tether.server.mcp import ElicitationApprover

    try:
        return ElicitationApprover(name, load_private_key(key.read_bytes()))
    except OSError as exc:
        fail(f"--elicit-key {key}: {exc.strerror}", 2)
    except KeyFormatError as exc:
        fail(f"--elicit-key {key}: {exc}", 2)


def _build(tools: str, policy: Path | None, keys: Path | None, guards: str | None,
           agents: list[str], db: str | None, tenant: str, lease_ttl: float, no_policy: bool,
           elicitation: ElicitationApprover | None) -> TetherMCPServer:
    from tether.runtime import AgentNotFound, InvalidInput, resolve_guards
    from tether.server.mcp import AgentTool, TetherMCPServer

    registry = load_registry(tools)
    governed: Guards | str | None = None
    if policy is not None:
        governed = _guards_from_policy(policy, keys, registry)
    elif guards is not None:
        try:
            resolve_guards(guards)
        except AgentNotFound as exc:
            fail(f"--guards {guards}: {exc}", 2)
        governed = guards
    exposed: dict[str, AgentTool] = {}
    for spec in agents:
        name, sep, ref = spec.partition("=")
        if not sep or not name or ":" not in ref:
            fail(f"--agent {spec!r}: expected NAME=MODULE:FUNCTION, e.g. "
                 "research=myagents:research", 2)
        exposed[name] = AgentTool(name, ref)
    try:
        server = TetherMCPServer(registry, db=db, guards=governed, agents=exposed,
                                 tenant=tenant, registry_ref=tools if ":" in tools else None,
                                 lease_ttl=lease_ttl, elicitation_approver=elicitation)
    except (AgentNotFound, InvalidInput, ValueError) as exc:
        fail(str(exc), 2)
    if governed is None and not no_policy:
        fail("no policy: give --policy FILE (with --keys for approvers) or --guards "
             "MODULE:NAME; the gateway denies by default. --no-policy serves every tool to "
             "any client, ungoverned (calls are still journaled).", 2)
    if governed is None:
        err_console.print("tether mcp: --no-policy: every tool of the registry is served, "
                          "ungoverned (calls are still journaled)", markup=False)
    return server


def _guards_from_policy(policy: Path, keys: Path | None, registry: ToolRegistry) -> Guards:
    from tether.guards import (
        ApprovalError,
        GuardConfig,
        Guards,
        PolicyLoadError,
        load_key_registry,
        load_policy,
    )

    try:
        config = GuardConfig(policy=load_policy(policy))
        if keys is not None:
            config.approvers = load_key_registry(keys)
    except (PolicyLoadError, ApprovalError) as exc:
        fail(str(exc), 2)
    return Guards(config, tools=registry)
