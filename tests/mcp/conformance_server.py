"""The catalogue the official MCP conformance suite expects of a server, served by Tether.

Each server scenario of the suite calls fixed names (`test_simple_text`, `test://static-text`,
`test_simple_prompt`, ...) and checks the answer; this module provides them on a
`TetherMCPServer`:

* `REGISTRY` (conformance_tools.py): Tether tools (`@tool`), so their calls are governed,
  journaled runs like any call through `tether mcp serve`;
* `CONTEXT_TOOLS` (conformance_live.py): tools that need the live MCP request (log and
  progress notifications, sampling, elicitation, multi-round-trip input, SSE stream control),
  written with the SDK's decorator on the server's SDK object (`server.sdk.tool()`), which
  hands them the request's `Context`; Tether calls them as journaled runs too, while their
  request is open;
* resources, a resource template, prompts, completions, log levels and subscriptions
  (conformance_catalogue.py): the server's SDK object, with the SDK's own decorators;
* the agents of the (unscored) tasks scenarios, as durable task-supporting tools
  (tests/mcp/conformance_agents.py).

Run it with ``python -m tests.mcp.conformance_server --port P --db PATH`` (as
tests/mcp/test_conformance.py does); it prints ``ready PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio

from tests.mcp.conformance_agents import NO_ARGUMENTS, SLOW_COMPUTE_SCHEMA
from tests.mcp.conformance_catalogue import add_resources_and_prompts
from tests.mcp.conformance_live import CONTEXT_TOOLS
from tests.mcp.conformance_tools import REGISTRY
from tether.server.mcp import AgentTool, TetherMCPServer


def build(db: str) -> TetherMCPServer:
    """The conformance server: `REGISTRY` plus everything above, journaling into `db`."""
    server = TetherMCPServer(REGISTRY, db=db, name="tether-conformance",
                             registry_ref="tests.mcp.conformance_tools:REGISTRY")
    for fn in CONTEXT_TOOLS:
        server.sdk.tool()(fn)
    add_resources_and_prompts(server)
    agents = "tests.mcp.conformance_agents"
    server.add_agent(AgentTool("slow_compute", f"{agents}:slow_compute",
                               "Sleeps `seconds` on a durable timer, then answers.",
                               SLOW_COMPUTE_SCHEMA))
    server.add_agent(AgentTool("failing_job", f"{agents}:failing_job",
                               "Reports a tool error after a second.", NO_ARGUMENTS,
                               task_support="required"))
    server.add_agent(AgentTool("protocol_error_job", f"{agents}:protocol_error_job",
                               "Breaks: its task fails.", NO_ARGUMENTS))
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--db", required=True, help="the Tether database file")
    args = parser.parse_args(argv)
    server = build(args.db)

    def ready(port: int) -> None:
        print(f"ready {port}", flush=True)

    try:
        asyncio.run(server.serve_http(port=args.port, ready=ready))
    finally:
        server.close()


if __name__ == "__main__":
    main()
