"""The official MCP conformance suite against Tether's server and Tether's client.

`@modelcontextprotocol/conformance` (pinned in mk/mcp.mk) carries, per spec revision, a frozen
*requirement set*: the server and client scenarios an implementation must pass to conform to
it. The current revision is 2026-07-28 (the SDK's LATEST_PROTOCOL_VERSION: stateless, with
per-request `_meta`); 2025-11-25 is the last revision with the initialize handshake, which most
clients still speak. Both sets run, each at its own wire:

* server: the suite is an MCP client of `TetherMCPServer` serving the catalogue of
  tests/mcp/conformance_server.py over streamable HTTP on 127.0.0.1;
* client: the suite starts one test server per scenario and runs
  tests/mcp/conformance_client.py (Tether's MCP client) with its URL as the last argument.

Every scenario of a set must pass. The suite starts all client scenarios at once, so one that
fails under that load is run again on its own (as the SDK's own CI does) and judged by that run;
the test warns naming it. A scenario that does not pass yet is listed in
`KNOWN_GAPS` with the reason; the test then asserts that it still fails, so a fix is noticed
and the entry removed. `KNOWN_GAPS` empty is the goal (issue 16).
"""

from __future__ import annotations

import select
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.mcp import node_tools
from tests.mcp.conformance_run import Role, SuiteRun, required, rerun_alone, run_suite

REVISIONS = ("2026-07-28", "2025-11-25")
CLIENT_DRIVER = Path(__file__).with_name("conformance_client.py")

#: (role, revision) -> {scenario: why it does not pass yet}; empty is the goal
KNOWN_GAPS: dict[tuple[Role, str], dict[str, str]] = {}


def judge(run: SuiteRun) -> None:
    """Every required scenario passes, except the known gaps, which must still fail."""
    scored = required(run.role, run.revision)
    gaps = KNOWN_GAPS.get((run.role, run.revision), {})
    assert not set(gaps) - set(scored), (
        f"KNOWN_GAPS names scenarios the {run.revision} {run.role} set does not require: "
        f"{sorted(set(gaps) - set(scored))}")
    failing = run.failing(scored)
    unexpected = {name: why for name, why in failing.items() if name not in gaps}
    fixed = sorted(name for name in gaps if name not in failing)
    tail = run.output[-4000:]
    assert not unexpected, (
        f"{len(unexpected)} of {len(scored)} {run.revision} {run.role} scenarios fail:\n"
        + "\n".join(f"  {name}: {why}" for name, why in sorted(unexpected.items()))
        + f"\n--- suite output (tail) ---\n{tail}")
    assert not fixed, (f"these {run.revision} {run.role} scenarios pass now: remove them from "
                       f"KNOWN_GAPS: {fixed}")
    if not gaps and not run.rescued:  # the suite's own verdict must agree with ours
        assert run.returncode == 0, f"the suite exited {run.returncode}:\n{tail}"


def run_and_judge(role: Role, revision: str, target: str, work: Path, *,
                  scenario_timeout_ms: int = 60_000, **options: Any) -> None:
    """Run the set, run each scenario that failed again on its own (see `rerun_alone`), judge."""
    run = run_suite(role, revision, target, work / "results",
                    scenario_timeout_ms=scenario_timeout_ms, **options)
    rerun_alone(run, target, work / "alone", sorted(run.failing(required(role, revision))),
                scenario_timeout_ms=scenario_timeout_ms)
    if run.rescued:
        warnings.warn(f"{revision} {role}: {run.rescued} failed in the concurrent suite run and "
                      "passed alone (load on the machine)", stacklevel=1)
    judge(run)


def _wait_ready(proc: subprocess.Popen[str], log: Path, deadline: float) -> int:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the conformance server exited with {proc.returncode}:\n"
                        f"{log.read_text()[-3000:]}")
        readable, _, _ = select.select([proc.stdout], [], [], 0.2)
        if readable:
            line = proc.stdout.readline()
            if line.startswith("ready "):
                return int(line.split()[1])
    pytest.fail(f"the conformance server did not come up in time:\n{log.read_text()[-3000:]}")


@dataclass(frozen=True)
class Served:
    url: str
    db: Path  # the server's TETHER_DB: every tool call is a run in it


#: tools the server scenarios call (all revisions, then per revision): each call must be a
#: journaled `tool:` step of a run in the server's database
CALLED = {"test_simple_text", "test_image_content", "test_audio_content", "test_embedded_resource",
          "test_multiple_content_types", "test_error_handling", "test_tool_with_progress"}
CALLED_BY = {
    "2026-07-28": {"test_input_required_result_elicitation", "test_input_required_result_sampling",
                   "test_input_required_result_multi_round"},
    "2025-11-25": {"test_tool_with_logging", "test_sampling", "test_elicitation",
                   "test_elicitation_sep1034_defaults", "test_elicitation_sep1330_enums"},
}


def journaled_tool_steps(db: Path, skip_runs: set[str]) -> tuple[set[str], set[str]]:
    """(ids of the runs in `db`, names of the tools of the `tool:` steps completed in the runs
    not in `skip_runs`)."""
    from tether import Tether

    tether = Tether(str(db))
    try:
        runs = {r.id for r in tether.store.list_runs(limit=100_000)}
        tools = {(e.name or "").removeprefix("tool:") for run_id in runs - skip_runs
                 for e in tether.store.load_events(run_id)
                 if e.kind == "step_completed" and (e.name or "").startswith("tool:")}
    finally:
        tether.close()
    return runs, tools


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Tether's MCP server with the conformance catalogue, on a free port of 127.0.0.1."""
    work = tmp_path_factory.mktemp("conformance-server")
    log = work / "server.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.mcp.conformance_server", "--port", "0",
             "--db", str(work / "tether.db")],
            cwd=node_tools.ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            port = _wait_ready(proc, log, time.monotonic() + 90)
            yield Served(f"http://127.0.0.1:{port}/mcp", work / "tether.db")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("revision", REVISIONS)
def test_server_passes_the_requirement_set(served: Served, revision: str,
                                           tmp_path: Path) -> None:
    before, _ = journaled_tool_steps(served.db, set())
    run_and_judge("server", revision, served.url, tmp_path)
    # the suite's calls went through Tether: each one a run with a journaled tool step
    _, tools = journaled_tool_steps(served.db, before)
    expected = CALLED | CALLED_BY[revision]
    assert expected <= tools, f"no journaled tool step for {sorted(expected - tools)}"


@pytest.mark.slow
@pytest.mark.parametrize("revision", REVISIONS)
def test_client_passes_the_requirement_set(revision: str, tmp_path: Path) -> None:
    if not CLIENT_DRIVER.exists():
        pytest.fail(f"{CLIENT_DRIVER} (the client under test, Tether's MCP client) is missing")
    command = f"{sys.executable} {CLIENT_DRIVER}"
    # ~40 client processes start at once: give each 2 minutes on a loaded machine
    run_and_judge("client", revision, command, tmp_path, scenario_timeout_ms=120_000,
                  timeout=1500)


class _AnswersEverything(BaseHTTPRequestHandler):
    """Not an MCP server: 200 and an empty JSON object for any POST, whatever its Host."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_the_harness_sees_a_failing_scenario(tmp_path: Path) -> None:
    """Negative control: a server that accepts a request for a foreign Host fails the suite's
    dns-rebinding-protection scenario, and the harness reads that as a failure."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _AnswersEverything)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/mcp"
        run = run_suite("server", "2026-07-28", url, tmp_path / "results",
                        scenario="dns-rebinding-protection", timeout=120)
    finally:
        httpd.shutdown()
        httpd.server_close()
    outcome = run.outcomes.get("dns-rebinding-protection")
    assert outcome is not None, f"no result recorded:\n{run.output[-3000:]}"
    assert not outcome.ok
    assert any("localhost-host-rebinding-rejected" in f for f in outcome.failed), outcome.failed
    assert run.failing(["dns-rebinding-protection"])
    assert run.returncode != 0
