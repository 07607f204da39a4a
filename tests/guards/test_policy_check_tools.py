"""`check_tools` and `tether policy check FILE --tools REF`: a policy against the tools it serves.

A glob in a rule that matches no served tool fails silently at run time (an allow rule that
allows nothing, a deny rule that lets the call fall through to a broader allow); here it is
named with its FILE:LINE and the closest tool name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tether.guards.policy import check_tools, loads_policy

TOOLS = ["lookup_order", "lookup_customer", "refund", "shutdown", "export_all"]

TOOLS_PY = """\
from tether.tools import tool


@tool(side_effect="read")
def lookup_order(order: str) -> dict:
    \"\"\"Look an order up.\"\"\"
    return {"order": order}


@tool(side_effect="write")
def refund(order: str) -> str:
    \"\"\"Refund an order.\"\"\"
    return "refunded"


@tool(side_effect="destructive")
def export_all() -> str:
    \"\"\"Export every customer.\"\"\"
    return "exported"
"""

TYPOS = """\
version: 1
name: shop
rules:
  - id: lookups
    tools: lookup_ordr
    effect: allow
  - id: everything-read
    tools: "*"
    effect: allow
  - id: no-refunds
    tools: [refnd]
    effect: deny
"""

CLEAN = """\
version: 1
name: shop
rules:
  - id: lookups
    tools: lookup_*
    effect: allow
  - id: refunds
    tools: refund
    effect: approve
"""


# ----------------------------------------------------------------------------- library
def test_typo_in_allow_rule_is_found_with_its_line_and_close_name():
    p = loads_policy("name: p\nrules:\n  - id: lookups\n    tools: [lookup_ordr, refund]\n"
                     "    effect: allow\n")
    found = check_tools(p, TOOLS)
    assert not found.ok
    [u] = found.unmatched
    assert (u.kind, u.owner, u.glob, u.line, u.suggestion) == (
        "rule", "lookups", "lookup_ordr", 3, "lookup_order")
    assert u.fails


def test_typo_in_deny_rule_is_found():
    p = loads_policy(TYPOS)
    # what the check prevents: the deny rule names nothing, so refund falls through to '*'
    assert p.decide("refund").action == "allow"
    found = check_tools(p, TOOLS)
    assert [(u.owner, u.glob, u.line, u.suggestion) for u in found.unmatched] == [
        ("lookups", "lookup_ordr", 4, "lookup_order"), ("no-refunds", "refnd", 10, "refund")]


def test_a_glob_that_matches_is_not_reported():
    found = check_tools(loads_policy(CLEAN), TOOLS)
    assert found.ok and found.unmatched == ()


def test_a_glob_that_matches_nothing_is_reported_without_a_far_fetched_suggestion():
    p = loads_policy("name: p\nrules:\n  - {id: z, tools: 'zz_*', effect: allow}\n")
    found = check_tools(p, TOOLS)
    [u] = found.unmatched
    assert (u.glob, u.suggestion, found.ok) == ("zz_*", None, False)


def test_tools_no_rule_names_are_listed_as_denied_by_default():
    found = check_tools(loads_policy(CLEAN), [*TOOLS, "lookup_order"])  # duplicates count once
    assert found.tools == tuple(sorted(TOOLS))
    assert found.denied_by_default == ("export_all", "shutdown")


def test_honeypots_are_checked_but_an_unmatched_one_does_not_fail():
    p = loads_policy("name: p\nhoneypots: [shutdwn, delete_everything]\n"
                     "rules:\n  - {id: l, tools: 'lookup_*', effect: allow}\n")
    found = check_tools(p, TOOLS)
    assert found.ok  # a honeypot served by no one is a deliberate bait for invented calls
    assert [(u.kind, u.glob, u.line, u.suggestion, u.fails) for u in found.unmatched] == [
        ("honeypot", "shutdwn", 2, "shutdown", False),
        ("honeypot", "delete_everything", 2, None, False)]
    # a honeypot that names a served bait makes it no longer "denied by default"
    served = check_tools(loads_policy("name: p\nhoneypots: [shutdown]\n"), TOOLS)
    assert served.unmatched == () and "shutdown" not in served.denied_by_default


# --------------------------------------------------------------------------------- CLI
def tether(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line in a fresh process (its exit code, no traceback)."""
    return subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_cli_reports_each_unmatched_glob_with_file_line_and_exits_1(tmp_path: Path):
    (tmp_path / "tools.py").write_text(TOOLS_PY)
    (tmp_path / "p.yaml").write_text(TYPOS)
    r = tether(tmp_path, "policy", "check", "p.yaml", "--tools", "tools.py")
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [
        "p.yaml:4: rule 'lookups' names tool 'lookup_ordr', which matches none of the 3 tools "
        "of tools.py (did you mean 'lookup_order'?)",
        "p.yaml:10: rule 'no-refunds' names tool 'refnd', which matches none of the 3 tools "
        "of tools.py (did you mean 'refund'?)"]
    assert r.stderr == ""
    # without --tools the file is only validated, as before
    r = tether(tmp_path, "policy", "check", "p.yaml")
    assert r.returncode == 0 and r.stdout.startswith("ok: policy 'shop'")


def test_cli_ok_lists_what_is_denied_by_default_and_takes_several_refs(tmp_path: Path):
    (tmp_path / "tools.py").write_text(TOOLS_PY)
    (tmp_path / "more.py").write_text(TOOLS_PY.replace("lookup_order", "lookup_customer")
                                      .replace("def refund", "def refund_v2")
                                      .replace("def export_all", "def export_some"))
    (tmp_path / "p.yaml").write_text(CLEAN)
    r = tether(tmp_path, "policy", "check", "p.yaml", "--tools", "tools.py", "--tools",
               "more.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "denied by default: export_all, export_some, refund_v2",
        "ok: policy 'shop' — 2 rule(s), 0 honeypot(s), read_only=false; every tool it names "
        "is served"]


def test_cli_bad_ref_is_one_line_exit_2(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(CLEAN)
    (tmp_path / "tools.py").write_text(TOOLS_PY)
    for ref, why in [("missing.py", "does not exist"), ("tools:nothere", "no attribute")]:
        r = tether(tmp_path, "policy", "check", "p.yaml", "--tools", ref)
        assert r.returncode == 2 and r.stdout == "", r.stderr
        assert r.stderr.startswith(f"error: --tools {ref}: ") and why in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    # an invalid policy is still a failed check (1), with its FILE:LINE
    (tmp_path / "bad.yaml").write_text(CLEAN.replace("effect: approve", "effect: aprove"))
    r = tether(tmp_path, "policy", "check", "bad.yaml", "--tools", "tools.py")
    assert r.returncode == 1 and "bad.yaml:9" in r.stderr and "Traceback" not in r.stderr


def test_cli_agents_served_beside_the_tools_count_as_governed_names(tmp_path: Path):
    """An agent `tether mcp serve --agent` exposes is a name the policy governs too."""
    (tmp_path / "tools.py").write_text(TOOLS_PY)
    (tmp_path / "p.yaml").write_text(CLEAN.replace("tools: refund", "tools: [refund, research]"))
    r = tether(tmp_path, "policy", "check", "p.yaml", "--tools", "tools.py")
    assert r.returncode == 1 and "names tool 'research'" in r.stdout
    r = tether(tmp_path, "policy", "check", "p.yaml", "--tools", "tools.py",
               "--agent", "research=agents:research")
    assert r.returncode == 0, r.stdout + r.stderr
    r = tether(tmp_path, "policy", "check", "p.yaml", "--agent", "research")
    assert r.returncode == 2 and "--agent goes with --tools" in r.stderr
