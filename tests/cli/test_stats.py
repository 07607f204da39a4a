"""`tether stats` as a user types it, over a database of real runs whose KPIs are known by hand
(tests/observe/test_kpis_support.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.observe import test_kpis_support as S

from .cli_support import tether


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, S.Scenario]:
    db = tmp_path_factory.mktemp("stats") / "tether.db"
    return db, asyncio.run(S.build(str(db)))


def test_json_gives_the_kpis_per_agent_and_per_tool(scenario: tuple[Path, S.Scenario]) -> None:
    db, _ = scenario
    report = json.loads(tether("stats", "--json", db=db).stdout)
    assert report["runs"] == 3 and report["truncated"] is False
    agents = {a["agent"].rsplit(":", 1)[-1]: a for a in report["agents"]}
    shop = agents["shop"]
    assert (shop["tokens_per_task"], shop["model_calls"], shop["tool_calls"]) == (28_080, 7, 6)
    assert (shop["loop_interventions"], shop["budget_halts"], shop["statuses"]) == (
        1, 1, {"halted": 1})
    assert shop["plan_fidelity"] is None and shop["context_pressure_max"] == pytest.approx(
        7000 / 128_000, abs=1e-4)
    tools = {t["tool"]: t for t in report["tools"]}
    assert (tools["lookup"]["calls"], tools["lookup"]["p_success"]) == (5, 1.0)
    assert (tools["drop_table"]["refused"], tools["drop_table"]["p_success"]) == (1, None)
    assert (tools["flaky"]["errors"], tools["flaky"]["p_success"]) == (1, 0.0)


def test_tenant_and_since_filter(scenario: tuple[Path, S.Scenario]) -> None:
    db, s = scenario
    since = datetime.fromtimestamp(s.between, UTC).isoformat()
    report = json.loads(tether("stats", "--json", "--tenant", "acme", "--since", since,
                               db=db).stdout)
    assert [a["agent"].rsplit(":", 1)[-1] for a in report["agents"]] == ["answer"]
    assert report["filters"]["tenant"] == "acme" and report["filters"]["since"].startswith(
        since[:19])
    assert report["tools"] == []  # `answer` called no tool
    recent = json.loads(tether("stats", "--json", "--since", "1h", db=db).stdout)
    assert recent["runs"] == 3  # all three ran within the hour
    none = tether("stats", "--tenant", "nobody", db=db)
    assert "no runs match (tenant nobody)" in none.stdout


def test_tables_wide_and_narrow(scenario: tuple[Path, S.Scenario]) -> None:
    db, _ = scenario
    wide = tether("stats", db=db, columns=160).stdout
    assert "tok/task" in wide and "P(success)" in wide
    shop_row = next(line for line in wide.splitlines() if line.strip().startswith("shop"))
    assert "28,080" in shop_row and "$0.0070" in shop_row and "1 budget" in shop_row
    lookup_row = next(line for line in wide.splitlines() if line.strip().startswith("lookup"))
    assert lookup_row.split()[:6] == ["lookup", "5", "5", "0", "0", "100.0%"]
    narrow = tether("stats", "--tenant", "acme", db=db, columns=80).stdout
    # too narrow for a row per agent: one column per agent instead, nothing cut
    assert "tokens per task" in narrow and "28,080" in narrow
    assert all(len(line) <= 80 for line in narrow.splitlines())


def test_bad_input_is_one_clear_line(scenario: tuple[Path, S.Scenario], tmp_path: Path) -> None:
    db, _ = scenario
    since = tether("stats", "--since", "yesterday", db=db, check=False)
    assert since.returncode == 2 and "Traceback" not in since.stderr
    assert "--since 'yesterday' is neither a duration nor a date" in since.stderr
    window = tether("stats", "--context-window", "gpt-5", db=db, check=False)
    assert window.returncode == 2 and "must be MODEL=TOKENS" in window.stderr
    missing = tether("stats", db=tmp_path / "typo.db", check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not (tmp_path / "typo.db").exists()


def test_the_json_fields_documented_are_the_fields_printed(
        scenario: tuple[Path, S.Scenario]) -> None:
    """docs/cli.md lists exactly the fields `tether stats --json` prints, per agent and tool."""
    import re

    db, _ = scenario
    report = json.loads(tether("stats", "--json", db=db).stdout)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    section = doc.split("### `tether stats`", 1)[1].split("\n### ", 1)[0]
    agent_table = section.split("Each AGENT has:", 1)[1].split("\n\n", 2)[1]
    documented = {name for row in re.findall(r"^\| ((?:`\w+`(?:, )?)+) \|", agent_table,
                                             flags=re.M)
                  for name in re.findall(r"`(\w+)`", row)}
    assert set(report["agents"][0]) == documented
    tool_text = " ".join(section.split("Each TOOL has", 1)[1].split("\n\n", 1)[0].split())
    assert set(report["tools"][0]) == set(re.findall(r"`(\w+)`", tool_text))
    top = section.split("`tether stats --json` prints", 1)[1].split("(fields", 1)[0]
    assert set(report) | set(report["filters"]) <= set(re.findall(r'"(\w+)"', top))
