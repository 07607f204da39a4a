"""`tether serve` and `tether keys create|list|revoke`: the REST API and who may call it.

FastAPI, uvicorn and the server package are imported inside the commands, so `tether --help`
does not pay for them (and the CLI works without the `server` extra installed).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tether.cli._common import DB_OPTION, console, fail
from tether.cli._logging import LogFormat, LogLevel, configure_logging

keys_app = typer.Typer(help="API keys of `tether serve`: one per caller, per tenant, with a "
                       "role.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind; 127.0.0.1 keeps the "
                                      "server private to this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8400,
    agents: Annotated[str | None, typer.Option(
        "--agents", envvar="TETHER_AGENTS",
        help="YAML file: agent name -> module:function, or {ref, guards, description}. Only "
        "these agents can be submitted.")] = None,
    agent: Annotated[list[str] | None, typer.Option(
        "--agent", help="NAME=module:function (repeatable), added to --agents.")] = None,
    guards: Annotated[str | None, typer.Option(
        "--guards", envvar="TETHER_GUARDS", help="MODULE:NAME of the deployment's Guards, for "
        "agents that declare none.")] = None,
    approvers: Annotated[str | None, typer.Option(
        "--keys", envvar="TETHER_APPROVERS",
        help="YAML file mapping approver ids to Ed25519 public keys.")] = None,
    signing_keys: Annotated[str | None, typer.Option(
        "--signing-keys", help="Directory of APPROVER.key private keys the server signs with "
        "for an approver who sends an unsigned decision.")] = None,
    tools_module: Annotated[list[str] | None, typer.Option(
        "--tools-module", help="Module of @tool functions listed by GET /v1/tools "
        "(repeatable).")] = None,
    no_worker: Annotated[bool, typer.Option(
        "--no-worker", help="Run no worker in the server: separate `tether worker` processes "
        "on the same database execute the runs.")] = False,
    max_body: Annotated[int, typer.Option("--max-body", help="Largest request body, in "
                                          "bytes.")] = 1 << 20,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, help="Runs the embedded worker executes at once (runs "
        "waiting for a model or tool count; the rest wait in the queue).")] = 256,
    lease_ttl: Annotated[float, typer.Option(
        "--lease-ttl", min=0.1, help="Seconds before another worker may take over a run of "
        "the embedded worker of a server that died.")] = 30.0,
    max_streams: Annotated[int, typer.Option(
        "--max-streams-per-key", min=1, help="Event streams one API key may hold open at "
        "once; the next is refused with 429.")] = 32,
    log_level: LogLevel = "warning",
    log_format: LogFormat = "text",
    db: str = DB_OPTION,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json) with an embedded worker."""
    configure_logging(log_level, log_format)
    if not 1 <= port <= 65535:  # the socket's bind() raised OverflowError: a traceback
        fail(f"--port {port}: not a TCP port; choose one from 1 to 65535", 2)

    from tether.server.api import ServerConfig, create_app, load_agents_file
    from tether.store import default_db_path

    catalogue: dict[str, object] = {}
    if agents:
        try:
            catalogue.update(load_agents_file(agents))
        except ValueError as exc:
            fail(str(exc), 2)
    for item in agent or []:
        name, sep, ref = item.partition("=")
        if not sep or not name or not ref:
            fail(f"--agent {item!r}: expected NAME=module:function", 2)
        catalogue[name] = ref
    if not catalogue:
        fail("no agents to serve: pass --agents agents.yaml or --agent NAME=module:function", 2)
    config = ServerConfig(db=db or default_db_path(), agents=catalogue,  # type: ignore[arg-type]
                          guards=guards, approvers=approvers, signing_keys=signing_keys,
                          tool_modules=list(tools_module or []),
                          embedded_worker=not no_worker, max_body=max_body,
                          worker_concurrency=concurrency, worker_lease_ttl=lease_ttl,
                          max_streams_per_key=max_streams)
    _check_port(host, port)
    try:
        app = create_app(config)
    except Exception as exc:  # a deployment naming what cannot load does not start
        fail(f"cannot start the server: {exc}", 2)
    worker = "no worker (run `tether worker`)" if no_worker else "an embedded worker"
    console.print(f"tether serve: http://{host}:{port}/v1 (OpenAPI at /openapi.json), "
                  f"{len(catalogue)} agent(s), {worker}, database {config.db}", soft_wrap=True)
    console.print(f"web UI: http://{host}:{port}/ui (log in with a key from `tether keys "
                  "create`)", soft_wrap=True)
    # log_config=None: uvicorn's records go to the handler above, in the same format
    _run_server(app, host=host, port=port, log_level="warning", server_header=False,
                log_config=None)


def _run_server(app: Any, **options: Any) -> None:
    """`uvicorn.run`, saying on Ctrl-C (and SIGTERM) what the embedded worker waits for before
    it stops, as `tether worker` does (`Interrupts`). uvicorn handles the signals itself, so
    its handler asks for the line; the event loop writes it, not the signal handler, which
    may have interrupted a read on the same store connection."""
    import logging

    import uvicorn

    from .follow import Interrupts

    state = app.state.tether
    # a log record: stderr is the server's log (one JSON object a line with --log-format json)
    interrupts = Interrupts(state.tether.store, say=logging.getLogger("tether.server").warning)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            loop, worker = state.loop, state.worker
            if loop is not None and worker is not None:
                interrupts.worker = worker
                loop.call_soon_threadsafe(interrupts.signalled)

    Server(uvicorn.Config(app, **options)).run()


def _check_port(host: str, port: int) -> None:
    """Refuse a port something already listens on before saying where the server serves:
    uvicorn found it only after the banner, logged the errno and exited 3."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError as exc:
        fail(f"--host {host}: not an address to listen on ({exc.strerror or exc}); "
             "127.0.0.1 serves this machine, 0.0.0.0 every interface")
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as exc:
        fail(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
             "choose a free port with --port, or stop the server that holds it")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key acts in.")],
    role: Annotated[str, typer.Option("--role", help="viewer | operator | approver | admin")],
    name: Annotated[str | None, typer.Option(
        "--name", help="Who holds it (the audit log's actor; an approver's approver id).")]
    = None,
    db: str = DB_OPTION,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from tether.runtime import Tether
    from tether.server.keys import ApiKeys, KeyRequestError
    from tether.store import StoreMissing, default_db_path

    from ._common import handle_errors, warn

    try:
        ApiKeys.check(tenant, role, name)  # before the database: a bad request creates nothing
    except KeyRequestError as exc:
        fail(str(exc), 2)
    path = db or default_db_path()
    with handle_errors():
        try:
            tether = Tether(path, must_exist=True)
        except StoreMissing:  # a new deployment's first key; a mistyped --db must not be silent
            tether = Tether(path)
            warn(f"database {path!r} did not exist: created it for this key; `tether serve` "
                 "must use the same database (--db/TETHER_DB), or it refuses the key")
    try:
        key, who = ApiKeys(tether.store).create(tenant, role, name)
    except KeyRequestError as exc:
        fail(str(exc), 2)
    console.print(key, soft_wrap=True)
    console.print(f"key {who.key_id}: tenant {who.tenant}, role {who.role.name}, name "
                  f"{who.name} — shown once: store it now", style="dim", soft_wrap=True)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")]
    = None,
    db: str = DB_OPTION,
) -> None:
    """List API keys (never the keys themselves)."""
    from tether.server.keys import ApiKeys

    from ._common import open_tether

    found = ApiKeys(open_tether(db, must_exist=True).store).list(tenant)
    if not found:
        console.print("no API keys")
    for p in found:
        state = "revoked" if p.revoked_at is not None else "active"
        console.print(f"{p.key_id}  tenant={p.tenant}  role={p.role.name}  name={p.name}  "
                      f"{state}", markup=False, soft_wrap=True)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`tether keys list`).")],
    db: str = DB_OPTION,
) -> None:
    """Revoke an API key: it is refused from the next request on."""
    from tether.server.keys import ApiKeys

    from ._common import open_tether

    if not ApiKeys(open_tether(db, must_exist=True).store).revoke(key_id):
        fail(f"no active key with id {key_id!r}; list them with `tether keys list`")
    console.print(f"key {key_id} revoked")
