"""`tether run` and `tether worker`: execute runs here, or serve the queue."""

from __future__ import annotations

import asyncio
import signal as _signal

import typer

from tether.runtime import resolve_agent, resolve_guards

from ._common import DB_OPTION, console, handle_errors, open_tether, parse_json
from ._render import print_timeline


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("worker")(worker)


GUARDS_OPTION = typer.Option(
    None, "--guards", envvar="TETHER_GUARDS",
    help="MODULE:NAME of the Guards this run executes under (recorded with the run).")


def run(
    agent: str = typer.Argument(..., help="MODULE:FUNCTION or path/to/file.py:FUNCTION"),
    input: str = typer.Option(None, "--input", "-i", help="JSON input (or @file.json)."),
    detach: bool = typer.Option(False, "--detach", help="Only queue the run; a worker runs it."),
    tenant: str = typer.Option("default", "--tenant"),
    max_depth: int = typer.Option(None, "--max-depth", help="Maximum child-run depth."),
    guards: str = GUARDS_OPTION,
    db: str = DB_OPTION,
) -> None:
    """Start a run of AGENT. Without --detach it executes here and prints its timeline.

    With --guards, the reference is recorded with the run: every worker that executes it
    enforces those guards, and one that cannot load them leaves the run waiting."""
    payload = parse_json(input, "--input")
    tether = open_tether(db)
    with handle_errors():
        resolve_agent(agent)  # a typo fails here, before anything is written to the store
        if guards:
            resolve_guards(guards)  # likewise for the guards: refuse before queuing
        given = () if input is None else (payload,)  # no --input: submit checks it may be missed
        run_id = tether.submit(agent, *given, tenant=tenant, max_depth=max_depth,
                               guards=guards or None)
    if detach:
        console.print(run_id)
        return
    with handle_errors():
        record = asyncio.run(tether.drive(run_id))
    print_timeline(record, tether.events(run_id))
    if record.status == "failed":
        raise typer.Exit(1)


def worker(
    concurrency: int = typer.Option(256, "--concurrency"),
    lease_ttl: float = typer.Option(30.0, "--lease-ttl", help="Seconds before a dead worker's "
                                    "runs may be taken over."),
    poll: float = typer.Option(0.2, "--poll", help="Seconds between looks for new work."),
    guards: str = typer.Option(
        None, "--guards", envvar="TETHER_GUARDS", help="MODULE:NAME of the deployment's "
        "Guards, for runs that declare none (a run's own declared guards always apply)."),
    db: str = DB_OPTION,
) -> None:
    """Execute queued runs until interrupted (Ctrl-C hands running runs back to the queue)."""
    tether = open_tether(db)
    if guards:
        with handle_errors():
            resolve_guards(guards)  # a worker that cannot enforce its guards does not start

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (_signal.SIGINT, _signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        w = tether.worker(concurrency=concurrency, lease_ttl=lease_ttl, poll_interval=poll,
                          guards=guards or None)
        console.print(f"worker {w.owner} serving {tether.store.url}")
        await w.serve(stop=stop)
        console.print(f"worker {w.owner} stopped after {w.executed} executions")

    with handle_errors():
        asyncio.run(serve())
