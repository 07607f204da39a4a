"""A policy checked against the tools it will govern (`check_tools`): which tool globs of the
policy match none of the tools a registry serves, and which tools no rule names at all.

Why: rules reach tools by glob (`Rule.matches_tool`), and a glob that matches nothing fails
silently both ways. An `allow` rule naming `lookup_ordr` leaves `lookup_order` denied with no
hint why; a `deny` or `approve` rule naming it lets `lookup_order` fall through to a broader
`allow`. Only the names the tools are served under can tell such a typo from intent.

Honeypots are checked too, but an unmatched honeypot glob does not fail the check: a honeypot
may be a bait tool the registry serves (listed, so it looks real), or a name served by no one,
there to catch a call the model was talked into (a prompt injection naming `shutdown`). Both are
deliberate; an unmatched one is reported as a note (with its close name, if any), so a typo in
the name of a served bait is still seen. Public through `tether.guards.policy`.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from tether.guards._policy_decide import Policy


@dataclass(frozen=True)
class UnmatchedGlob:
    """A tool glob of the policy that matches none of the tools checked against."""

    kind: Literal["rule", "honeypot"]
    owner: str  # the rule's id, or "honeypots"
    glob: str
    line: int | None  # of the rule (or of the `honeypots` key) in the policy file
    suggestion: str | None = None  # the closest tool name, when one is close

    @property
    def fails(self) -> bool:
        """A rule's glob is a mistake; a honeypot's may be deliberate (see the module doc)."""
        return self.kind == "rule"


@dataclass(frozen=True)
class ToolsCheck:
    """What `check_tools` found; `ok` when no rule names a tool that is not there."""

    policy: Policy
    tools: tuple[str, ...]  # the distinct tool names checked against, sorted
    unmatched: tuple[UnmatchedGlob, ...]  # in policy order: honeypots, then rules
    # tools no rule and no honeypot names: the gateway refuses every call to them
    denied_by_default: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not any(u.fails for u in self.unmatched)


def check_tools(policy: Policy, tool_names: Iterable[str]) -> ToolsCheck:
    """Check every tool glob of `policy` (rules and honeypots) against `tool_names`.

    A glob matches as the gateway matches it (`fnmatch.fnmatchcase`); a suggestion is the
    closest name by `difflib.get_close_matches`, offered only for a glob that matches nothing.
    """
    names = tuple(sorted(set(tool_names)))
    unmatched: list[UnmatchedGlob] = []
    for glob in policy.honeypots:
        if not _matches_any(glob, names):
            unmatched.append(UnmatchedGlob("honeypot", "honeypots", glob,
                                           policy.lines.get("honeypots"), _closest(glob, names)))
    for rule in policy.rules:
        for glob in rule.tools:
            if not _matches_any(glob, names):
                unmatched.append(UnmatchedGlob("rule", rule.id, glob, rule.line or None,
                                               _closest(glob, names)))
    denied = tuple(n for n in names if not policy.for_tool(n).rules
                   and policy.for_tool(n).honeypot is None)
    return ToolsCheck(policy, names, tuple(unmatched), denied)


def _matches_any(glob: str, names: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(n, glob) for n in names)


def _closest(glob: str, names: tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(glob, names, n=1)
    return close[0] if close else None
