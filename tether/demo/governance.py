"""The demo's governance: a printed policy, a run budget, one action that needs a person.

Nothing in the demo runs outside these guards: both tasks execute under `demo_guards`, the model
proposes and the guards decide — data lookups and sandboxed code are allowed by name, publishing
the answer needs an approval (signed by an approver the deployment registered), anything else is
refused (deny by default), and each run is bounded by `RUN_BUDGET`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from tether.guards import (
    BudgetLimits,
    GuardConfig,
    Guards,
    KeyRegistry,
    generate_keypair,
    load_private_key,
    loads_policy,
)
from tether.tools import ToolRegistry, tool

POLICY = """\
version: 1
name: demo
rules:
  - id: data-lookups          # read the bundled data and compute
    tools: [lookup_country, calculate]
    effect: allow
  - id: sandboxed-code        # agent-written code, each call in a fresh sandbox
    tools: [python, bash]
    effect: allow
  - id: publishing-needs-a-person
    tools: publish_report
    effect: approve
# anything else: denied (deny by default)
"""

#: per run: model + tool steps, tool calls, tokens read and written, wall-clock seconds
RUN_BUDGET = BudgetLimits(steps=40, tool_calls=16, tokens_in=60_000, tokens_out=6_000,
                          wall_time_s=1800)
APPROVER = "demo-operator"

#: where `publish_report` writes; set by the demo before a run starts
REPORTS: dict[str, Path] = {}


@tool(version="1", side_effect="write", timeout=5)
def publish_report(title: Annotated[str, Field(max_length=200)],
                   text: Annotated[str, Field(max_length=4000)]) -> str:
    """Publish the answer as a report file (a side effect a person must approve)."""
    folder = REPORTS["dir"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"report-{len(list(folder.glob('report-*.md'))) + 1}.md"
    path.write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
    return str(path)


def publishing_tools() -> ToolRegistry:
    return ToolRegistry([publish_report])


class DemoGovernance:
    """The guards and the approver key of one demo session (a fresh key per session)."""

    def __init__(self) -> None:
        private_pem, public_pem = generate_keypair()
        self.approvers = KeyRegistry()
        self.approvers.register(APPROVER, public_pem)
        self.private_key = load_private_key(private_pem)
        self.guards = Guards(GuardConfig(policy=loads_policy(POLICY, "demo-policy.yaml"),
                                         run_limits=RUN_BUDGET, approvers=self.approvers))
