"""`tether tools` and `tether policy check` reported their errors through rich markup: a path or
rule id with brackets lost them (`tether tools list --module 'x[red].py'` said "file …/x.py does
not exist", naming another file; a rule `"[red]r"` was reported as rule 'r'), and the message
wrapped at 80 columns. Now it is one line, as every other command's errors, as typed."""

from __future__ import annotations

from pathlib import Path

from .cli_support import tether


def test_a_tools_error_names_the_file_as_typed(tmp_path: Path) -> None:
    proc = tether("tools", "list", "--module", "x[red].py", cwd=tmp_path, check=False,
                  columns=80)
    assert proc.returncode == 2
    assert f"tool module file '{tmp_path}/x[red].py' does not exist" in proc.stderr
    none = tether("tools", "list", cwd=tmp_path, check=False, columns=80)
    assert none.returncode == 2 and len(none.stderr.strip().splitlines()) == 1


def test_a_policy_error_names_the_rule_as_written(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        'version: 1\nname: x\nrules:\n  - id: "[red]r"\n    tools: t\n    effect: alow\n')
    proc = tether("policy", "check", "p.yaml", cwd=tmp_path, check=False, columns=80)
    assert proc.returncode == 1
    assert "p.yaml:6: rule '[red]r': effect must be allow" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
