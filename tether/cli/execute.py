"""`tether run` and `tether worker`: execute runs here, or serve the queue."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

import typer

from ._common import (
    DB_OPTION,
    console,
    err_console,
    fail,
    handle_errors,
    open_tether,
    parse_json,
)
from ._logging import LogFormat, LogLevel, configure_logging
from ._render import print_timeline

if TYPE_CHECKING:
    import asyncio

    from tether.runtime import Tether, Worker
    from tether.runtime.executors import RayExecutor
    from tether.runtime.queues import WorkerQueue
    from tether.server.health import HealthServer


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("worker")(worker)
    app.command("retry")(retry)


GUARDS_OPTION = typer.Option(
    None, "--guards", envvar="TETHER_GUARDS",
    help="MODULE:NAME of the Guards this run executes under (recorded with the run).")


# `tether worker`'s repeatable options (module-level, as a list-typed default must be)
TENANTS_OPTION = typer.Option(
    None, "--tenant", help="Serve only this tenant's runs (repeat for several; default: every "
    "tenant).")
AGENTS_OPTION = typer.Option(
    None, "--agent", help="Serve only run trees started by this agent, MODULE:FUNCTION or "
    "path/to/file.py:FUNCTION; their child runs come along whatever agent they run (repeat for "
    "several; default: every agent).")
RAY_OPTION = typer.Option(
    False, "--ray", help="Run steps that declare resources as Ray tasks: joins the cluster given "
    "by --ray-address, else starts a local one (or joins RAY_ADDRESS's, as ray.init does). "
    "Needs the ray extra: pip install 'tether[ray]'.")
RAY_ADDRESS_OPTION = typer.Option(
    None, "--ray-address", metavar="ADDRESS", help="The Ray cluster to run steps on "
    "(ray://host:10001, host:6379 or auto); implies --ray.")
TENANT_LIMITS_OPTION = typer.Option(
    None, "--tenant-limit", help="TENANT=N: at most N of the tenant's runs execute at once, "
    "counted over every worker on the database (repeat for several tenants).")


def run(
    agent: str = typer.Argument(..., help="MODULE:FUNCTION or path/to/file.py:FUNCTION"),
    input: str = typer.Option(None, "--input", "-i", help="JSON input (or @file.json)."),
    detach: bool = typer.Option(False, "--detach", help="Only queue the run; a worker runs it."),
    tenant: str = typer.Option("default", "--tenant", help=(
        "The tenant the run belongs to: its budgets, worker queues and `tether serve` API "
        "keys are per tenant.")),
    max_depth: int = typer.Option(None, "--max-depth", min=0, help=(
        "How deep child runs may nest under this run (0: no child runs; default 8).")),
    guards: str = GUARDS_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines while it runs."),
    db: str = DB_OPTION,
) -> None:
    """Start a run of AGENT. Without --detach it executes here and prints its timeline.

    While it executes, each journal event is printed to stderr as it is committed (steps, tool
    calls, guard decisions, tokens so far); --quiet turns that off.

    With --guards, the reference is recorded with the run: every worker that executes it
    enforces those guards, and one that cannot load them leaves the run waiting."""
    payload = parse_json(input, "--input")
    from tether.runtime import resolve_agent, resolve_guards  # here: `tether --help` stays cheap
    from tether.runtime.tenants import check_tenant

    if not detach:
        from .trace import check_exporting

        check_exporting()  # an export that cannot work: refused before the run is queued
    with handle_errors():  # a typo fails here, before a database is even created
        check_tenant(tenant, "--tenant")
        resolve_agent(agent)
        if guards:
            resolve_guards(guards)
    tether = open_tether(db)
    with handle_errors():
        given = () if input is None else (payload,)  # no --input: submit checks it may be missed
        run_id = tether.submit(agent, *given, tenant=tenant, max_depth=max_depth,
                               guards=guards or None)
    if detach:
        console.print(run_id)
        return
    _execute_here(tether, run_id, quiet)


def _execute_here(tether: Tether, run_id: str, quiet: bool) -> None:
    """Drive the run in this process (`tether run`, `tether retry`), then print its timeline.
    Ctrl-C stops it as it stops `tether worker` (`Interrupts`): the run goes back to the
    queue, exit code 130, and a line says where it is and what resumes it."""
    import asyncio

    from .follow import Interrupts, drive_with_progress, worker_command
    from .trace import exporting

    interrupts = Interrupts(tether.store, run_id=run_id)
    with handle_errors(), exporting(tether):
        record = asyncio.run(drive_with_progress(
            tether, run_id, stream=None if quiet else sys.stderr, interrupts=interrupts))
    print_timeline(record, tether.events(run_id))
    if interrupts.count and not record.finished:
        where = ("is back in the queue" if record.status == "queued"
                 else f"is {record.status}")
        err_console.print(f"interrupted: run {run_id} {where}; a worker resumes it: "
                          f"{worker_command(tether.store)}", markup=False, soft_wrap=True)
        raise typer.Exit(130)
    if record.status == "failed":
        raise typer.Exit(1)


def worker(
    concurrency: int = typer.Option(256, "--concurrency", min=1, help=(
        "Runs this worker executes at once (runs waiting for a model or tool count; the rest "
        "wait in the queue).")),
    lease_ttl: float = typer.Option(30.0, "--lease-ttl", min=0.1, help="Seconds before a dead "
                                    "worker's runs may be taken over."),
    poll: float = typer.Option(0.2, "--poll", help="Seconds between looks for new work."),
    guards: str = typer.Option(
        None, "--guards", envvar="TETHER_GUARDS", help="MODULE:NAME of the deployment's "
        "Guards, for runs that declare none (a run's own declared guards always apply)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print a line for each journal "
                                 "event of the runs this worker executes, prefixed by run id."),
    tenants: list[str] = TENANTS_OPTION,
    agents: list[str] = AGENTS_OPTION,
    tenant_limits: list[str] = TENANT_LIMITS_OPTION,
    ray: bool = RAY_OPTION,
    ray_address: str = RAY_ADDRESS_OPTION,
    health_port: int = typer.Option(
        None, "--health-port", min=0, max=65535, help="Serve GET /healthz (liveness: the "
        "worker's event loop runs), GET /readyz (readiness: the store takes its claims and "
        "lease renewals) and GET /metrics (Prometheus: the queue's depth, the worker's "
        "state) on this port; 0 picks a free port."),
    health_host: str = typer.Option("127.0.0.1", "--health-host", help="Address the probes "
                                    "bind to (0.0.0.0 for a probe from outside the host)."),
    health_stall: float = typer.Option(10.0, "--health-stall", min=0.5, help="Seconds the "
                                       "event loop may stay silent before /healthz says the "
                                       "worker stalled."),
    log_level: LogLevel = "warning",
    log_format: LogFormat = "text",
    db: str = DB_OPTION,
) -> None:
    """Execute queued runs until interrupted (Ctrl-C hands running runs back to the queue).

    Several workers, on any hosts, may serve one database; --tenant and --agent keep this one
    for some tenants or agents (a worker queue). With --ray, steps that declare resources run
    on a Ray cluster; the others run here as usual. With --health-port, a supervisor can ask
    whether it is alive and ready (see docs/server.md)."""
    import asyncio
    import logging

    from tether.runtime import resolve_agent, resolve_guards  # here: `tether --help` stays cheap

    from .follow import Interrupts

    configure_logging(log_level, log_format)
    limits = _tenant_limits(tenant_limits or [])
    queue = _queue(tenants or [], agents or [])
    for ref in agents or []:  # as given: the message names what the user typed
        try:
            resolve_agent(ref)  # a worker kept for an agent it cannot load would idle forever
        except Exception as exc:
            fail(f"--agent {ref}: this worker cannot load it ({exc}); give the reference runs "
                 "record (see `tether runs`), importable on this host")
    if (ray or ray_address is not None) and importlib.util.find_spec("ray") is None:
        fail("--ray: ray is not installed in this Python; install the extra with "
             "pip install 'tether[ray]', or start the worker without --ray")
    tether = open_tether(db)
    if guards:
        with handle_errors():
            resolve_guards(guards)  # a worker that cannot enforce its guards does not start
    executor, cluster = (_ray_executor(ray_address) if ray or ray_address is not None
                         else (None, ""))

    async def serve() -> None:
        # Ctrl-C and SIGTERM: stop claiming, hand running runs back, say what it waits for
        # (as a log record: stderr is the worker's log, one JSON object a line with json)
        interrupts = Interrupts(tether.store, say=logging.getLogger("tether.worker").warning)
        stop = interrupts.stop
        w = interrupts.watch(tether.worker(
            concurrency=concurrency, lease_ttl=lease_ttl, poll_interval=poll,
            guards=guards or None, tenants=queue.tenants, agents=queue.agents,
            executor=executor, **({"tenant_limits": limits} if limits else {})))
        served = "" if queue.everything else f" ({queue.describe()})"
        on_ray = f", steps with resources on the Ray cluster at {cluster}" if cluster else ""
        with contextlib.ExitStack() as probes:
            if health_port is not None:
                probes.enter_context(_health_server(w, health_host, health_port, health_stall))
            console.print(f"worker {w.owner} serving {tether.store.url}{served}{on_ray}",
                          markup=False, soft_wrap=True)
            await _serve(w, stop, verbose, poll)
        console.print(f"worker {w.owner} stopped after {_executions(w.executed, w.refused)}",
                      markup=False, soft_wrap=True)

    from .trace import exporting

    try:
        with handle_errors(), exporting(tether):
            asyncio.run(serve())
    finally:
        if executor is not None:
            executor.close()  # stops the local cluster it started, if it did


def _health_server(w: Worker, host: str, port: int, stall_after: float) -> HealthServer:
    """The worker's probe server, started (`--health-port`); a port that cannot be bound is a
    clear error before any run is claimed."""
    from tether.server.health import HealthServer

    try:
        server = HealthServer(w.health, host=host, port=port, stall_after=stall_after,
                              store=w.store)
    except OSError as exc:
        fail(f"--health-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
             "choose a free port, or 0 for any")
    console.print(f"worker {w.owner}: probes at http://{host}:{server.port}/healthz and "
                  "/readyz, metrics at /metrics", markup=False, soft_wrap=True)
    return server


async def _serve(w: Worker, stop: asyncio.Event, verbose: bool, poll: float) -> None:
    if not verbose:
        await w.serve(stop=stop)
        return
    import asyncio

    from .follow import WorkerProgress

    progress = WorkerProgress(w, sys.stdout, poll=poll)
    w.on_claim = progress.claimed
    printer = asyncio.create_task(progress.run(stop=stop.is_set))
    await w.serve(stop=stop)
    stop.set()
    await printer  # the last events of the runs it handed back or finished


def _ray_executor(address: str | None) -> tuple[RayExecutor, str]:
    """Join (or start) the Ray cluster before serving, and say where it is: a worker that
    cannot reach it says so at once, not at the first heavy step of some run."""
    from tether.runtime.executors import RayExecutor

    executor = RayExecutor(address or None)
    with handle_errors():
        ray = executor.connect()
    try:
        cluster = str(ray.get_runtime_context().gcs_address)
    except Exception:  # only for the banner: the address asked for says enough
        cluster = address or "(local)"
    return executor, cluster


def retry(
    run_id: str = typer.Argument(..., help="The failed (or halted) run: its id or a unique "
                                 "prefix of it."),
    detach: bool = typer.Option(False, "--detach", help="Only queue the new attempt; a worker "
                                "runs it."),
    budget: str = typer.Option(None, "--budget", help="JSON limits raised for the new attempt, "
                               "e.g. '{\"steps\": 20}' (a halted run halts again without)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines while it runs."),
    db: str = DB_OPTION,
) -> None:
    """Retry a failed run: a new attempt from its journal. The steps that worked replay (they
    are not executed again), the step that failed executes again, then the agent goes on live.
    Prints which steps replay and which execute again; the journal keeps both attempts.

    A halted run can be retried too (after raising the limit that halted it); a cancelled,
    succeeded or live run cannot."""
    limits = _budget(budget)
    tether = open_tether(db)
    with handle_errors():
        full = tether.resolve_run_id(run_id)
        plan = tether.retry(full, budget=limits)
    for line in plan.explain():
        console.print(line, markup=False, soft_wrap=True)
    if detach:
        return
    _execute_here(tether, full, quiet)


def _queue(tenants: list[str], agents: list[str]) -> WorkerQueue:
    """The worker's queue from --tenant and --agent; a bad value names its flag."""
    from tether.runtime.queues import WorkerQueue

    try:
        only_tenants = WorkerQueue.of(tenants=tenants or None).tenants
    except ValueError as exc:
        fail(f"--tenant: {exc}")
    try:
        only_agents = WorkerQueue.of(agents=agents or None).agents
    except ValueError as exc:
        fail(f"--agent: {exc}")
    return WorkerQueue(only_tenants, only_agents)


def _tenant_limits(given: list[str]) -> dict[str, int]:
    """--tenant-limit TENANT=N values, each checked (one tenant given twice is refused)."""
    limits: dict[str, int] = {}
    for text in given:
        tenant, sep, number = text.rpartition("=")
        tenant = tenant.strip()
        if not sep or not tenant:
            fail(f"--tenant-limit {text!r}: expected TENANT=N, e.g. --tenant-limit acme=8")
        try:
            limit = int(number)
        except ValueError:
            limit = 0
        if limit < 1:
            fail(f"--tenant-limit {text!r}: N must be a whole number of runs, 1 or more "
                 "(a tenant that must not run at all needs no worker serving it)")
        if tenant in limits:
            fail(f"--tenant-limit: tenant {tenant!r} is given twice ({limits[tenant]} and "
                 f"{limit}); give it once")
        limits[tenant] = limit
    return limits


def _budget(text: str | None) -> dict[str, Any] | None:
    """--budget, checked against the guards' own limit names before anything is written."""
    if text is None:
        return None
    value = parse_json(text, "--budget", example="--budget '{\"steps\": 20}'")
    from tether.guards import BudgetLimits

    try:
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {value!r}")
        return BudgetLimits.from_json(value).to_json()
    except (TypeError, ValueError) as exc:
        fail(f"--budget: {exc}")


def _executions(executed: int, refused: int) -> str:
    """What a worker did, said when it stops: a run it took but refused (its agent file
    missing) executed nothing, so it is not counted as an execution."""
    ran = executed - refused
    text = f"{ran} execution" + ("" if ran == 1 else "s")
    if refused:
        many = "" if refused == 1 else "s"
        text += f"; {refused} run{many} not executed (see the warning{many} above)"
    return text
