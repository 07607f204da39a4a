"""Run the official MCP conformance suite and read its verdict per scenario.

The suite (`@modelcontextprotocol/conformance`, pinned by mk/mcp.mk) writes one directory per
scenario with a `checks.json`; a scenario passes when at least one of its checks succeeded and
none failed (the suite's own rule, read from its records rather than from its console text).
What a spec revision requires is the suite's frozen requirement set for it
(`requirements/<rev>.yaml`, `server:` and `client:` lists); `not_scored` entries (extensions,
scenarios added after the revision shipped, scenarios still pending) run but decide nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from tests.mcp import node_tools

Role = Literal["server", "client"]
#: the directory suffix the suite appends to a scenario's name
_STAMP = re.compile(r"-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


@dataclass
class Outcome:
    """One scenario's checks, as the suite recorded them."""

    scenario: str
    passed: int = 0
    failed: list[str] = field(default_factory=list)  # "check-id: message" of each failure

    @property
    def ok(self) -> bool:
        return self.passed > 0 and not self.failed


@dataclass
class SuiteRun:
    """A finished `conformance server|client --requirements REV` run."""

    role: Role
    revision: str
    returncode: int
    output: str
    outcomes: dict[str, Outcome]
    #: scenarios that failed in the suite run and passed when run again alone
    rescued: list[str] = field(default_factory=list)

    def failing(self, scenarios: list[str]) -> dict[str, str]:
        """Each of `scenarios` that did not pass, with why (missing = the suite never ran it)."""
        out: dict[str, str] = {}
        for name in scenarios:
            got = self.outcomes.get(name)
            if got is None:
                out[name] = "no result recorded (the scenario did not run)"
            elif not got.ok:
                out[name] = "; ".join(got.failed) or "no check succeeded"
        return out


def required(role: Role, revision: str) -> list[str]:
    """The scenarios the revision's frozen requirement set scores for `role`."""
    data = yaml.safe_load(node_tools.requirements_file(revision).read_text())
    names = data.get(role) or []
    if not names:
        raise AssertionError(f"requirement set {revision} lists no {role} scenarios")
    return [str(n) for n in names]


def _scenario_name(role: Role, result_dir: Path, root: Path) -> str:
    rel = result_dir.relative_to(root).as_posix()
    name = _STAMP.sub("", rel)
    if role == "server" and name.startswith("server-"):
        name = name[len("server-"):]
    return name


def read_outcomes(role: Role, root: Path) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for checks_file in sorted(root.rglob("checks.json")):
        name = _scenario_name(role, checks_file.parent, root)
        outcome = outcomes.setdefault(name, Outcome(name))
        for check in json.loads(checks_file.read_text()):
            status = check.get("status")
            if status == "SUCCESS":
                outcome.passed += 1
            elif status == "FAILURE":
                why = check.get("errorMessage") or check.get("description") or ""
                outcome.failed.append(f"{check.get('id')}: {why}"[:300])
    return outcomes


def run_suite(role: Role, revision: str, target: str, out_dir: Path, *,
              scenario: str | None = None, timeout: float = 900,
              scenario_timeout_ms: int = 60_000) -> SuiteRun:
    """Run the revision's requirement set (or just `scenario`, at the revision's wire) against
    `target`: a server URL (`role="server"`) or the command line of a client under test
    (`role="client"`; the suite appends the URL of each scenario's server as its last
    argument)."""
    cmd = [*node_tools.conformance(), role]
    cmd += ["--url", target] if role == "server" else ["--command", target]
    if scenario is None:
        cmd += ["--requirements", revision]
    else:
        cmd += ["--scenario", scenario, "--spec-version", revision]
    cmd += ["--timeout", str(scenario_timeout_ms), "--output-dir", str(out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=node_tools.node_env(), cwd=node_tools.ROOT)
    output = proc.stdout + proc.stderr
    return SuiteRun(role, revision, proc.returncode, output, read_outcomes(role, out_dir))


def rerun_alone(run: SuiteRun, target: str, out_dir: Path, names: list[str], *,
                scenario_timeout_ms: int = 60_000) -> None:
    """Run each of `names` again on its own, at the same wire, and keep that verdict.

    The suite starts every client scenario at once (one client process each: ~40 Python
    processes on a shared 2-core machine), so a scenario can exceed its timeout under that load
    alone; the SDK's own CI re-runs such failures solo for the same reason. A real failure fails
    again on its own; `run.rescued` lists the scenarios that passed only alone."""
    for name in names:
        safe = name.replace("/", "_")
        alone = run_suite(run.role, run.revision, target, out_dir / safe, scenario=name,
                          timeout=300, scenario_timeout_ms=scenario_timeout_ms)
        outcome = alone.outcomes.get(name)
        if outcome is not None:
            was_ok = name in run.outcomes and run.outcomes[name].ok
            run.outcomes[name] = outcome
            if outcome.ok and not was_ok:
                run.rescued.append(name)
        run.output += (f"\n--- {name} run alone (exit {alone.returncode}) ---\n"
                       f"{alone.output[-1500:]}")
