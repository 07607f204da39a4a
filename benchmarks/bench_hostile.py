"""The hostile test count: attacks on the guards, run for real, by class.

Runs every `tests/guards/test_hostile_*.py` (and the end-to-end attack file) with pytest and
writes how many attacks each class has and how many the guards held, from pytest's own JUnit
report — a figure with the command that reproduces it, not a count typed by hand.

    .venv/bin/python benchmarks/bench_hostile.py      # -> results/hostile.md
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {
    "test_hostile_args.py": "policy judged on the arguments the tool receives (§1)",
    "test_hostile_sql.py": "read-only SQL enforced by the database (§2)",
    "test_hostile_network.py": "network egress: host, port, redirects, path params (§3)",
    "test_hostile_budgets*.py": "budgets under concurrency (§4)",
    "test_hostile_loops.py": "near-duplicate loops (§4)",
    "test_hostile_paths.py": "paths resolved as the tool opens them (§5)",
    "test_hostile_approvals.py": "approvals need a registered, signed approver (§5)",
    "test_hostile_pii.py": "PII laundering through tools (§5)",
    "test_hostile_more_*.py": "tool identity, child runs, parallel calls (§6)",
    "test_e2e_hostile.py": "earlier attack suite (tool names, forged approvals, honeypots, ...)",
}


def main() -> int:
    guards = ROOT / "tests" / "guards"
    # a class may span several files (a glob): each test file counts under its class's row
    owner = {path.name: pattern for pattern in CLASSES for path in sorted(guards.glob(pattern))}
    files = [f for f in CLASSES if f in owner.values()]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               f"--junitxml={report}", *(f"tests/guards/{f}" for f in owner)],
                              cwd=ROOT, capture_output=True, text=True)
        tree = ET.parse(report)
    counts: dict[str, list[int]] = {f: [0, 0, 0] for f in files}  # total, passed, skipped
    for case in tree.iter("testcase"):
        parts = [p + ".py" for p in (case.get("classname") or "").split(".")]
        name = next((owner[p] for p in parts if p in owner), None)
        if name is None:
            continue
        counts[name][0] += 1
        if case.find("skipped") is not None:
            counts[name][2] += 1
        elif case.find("failure") is None and case.find("error") is None:
            counts[name][1] += 1
    total = sum(c[0] for c in counts.values())
    held = sum(c[1] for c in counts.values())
    lines = ["## Guards: hostile tests", "",
             "Attacks by a hostile model (a scripted model proposing whatever an attacker wants) "
             "on the guards, on the real runtime with real tools (files, SQLite, HTTP servers on "
             "127.0.0.1), with the controls that check legitimate calls still work. *Held* = the "
             "test passed: the attack was refused, contained or detected as the test asserts.",
             "", "| class | file | tests | held |", "|---|---|---|---|"]
    for f in files:
        t, p, s = counts[f]
        lines.append(f"| {CLASSES[f]} | `{f}` | {t} | {p}" + (f" ({s} skipped)" if s else "") +
                     " |")
    lines += ["", f"**{held} of {total} held.**", "", "Reproduce:", "", "```",
              "make bench-hostile   # or: .venv/bin/python benchmarks/bench_hostile.py", "```", ""]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "hostile.md"
    out.write_text(text)
    print(f"wrote {out}")
    return 0 if proc.returncode in (0, 1) else proc.returncode


if __name__ == "__main__":
    sys.exit(main())
