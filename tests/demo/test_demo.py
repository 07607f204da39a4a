"""The demo end to end: `python -m tether.demo` as a real process, against a real HTTP server
speaking the OpenAI chat-completions protocol (scripted, so the test is deterministic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.demo import _models as demo_models
from tether.demo import build_model, calculate, demo_tools, lookup_country
from tether.tools import ToolArgumentError

from .demo_support import run_demo


def test_demo_runs_end_to_end_with_an_openai_compatible_server(
    fake_openai: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    base_url, requests = fake_openai
    db = tmp_path / "demo.db"
    proc = run_demo("--task", "countries", "--model", "openai:fake-gpt", "--base-url", base_url,
                    "--db", str(db), "--yes")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    # live progress
    assert "I need Japan's figures." in out
    assert "→ lookup_country(country='Japan')" in out
    assert "→ calculate(expression='124500000 / 377975')" in out
    assert "← 329.3869" in out
    # final answer and the journal timeline
    assert "Japan has about 329.4 people per km2." in out
    assert "3 steps, 2 tool calls" in out
    assert "journal of run" in out and "tool:calculate" in out and "run_completed" in out

    # the model got both tools and the few-shot episode before the goal
    assert len(requests) == 3
    first = requests[0]
    assert first["model"] == "fake-gpt"
    assert sorted(t["function"]["name"] for t in first["tools"]) == ["calculate",
                                                                      "lookup_country"]
    assert any(m.get("tool_call_id", "").startswith("example") for m in first["messages"])
    assert "population density of Japan" in first["messages"][-1]["content"]

    # the run is durable: the journal is in the SQLite file and can be inspected afterwards
    tether = Tether(str(db))
    try:
        (run,) = tether.store.list_runs(limit=10)
        assert run.status == "succeeded"
        assert run.result["answer"] == "Japan has about 329.4 people per km2."
        steps = [e.name for e in tether.events(run.id) if e.kind == "step_completed"]
        assert steps == ["model:openai:fake-gpt", "tool:lookup_country",
                         "model:openai:fake-gpt", "tool:calculate", "model:openai:fake-gpt",
                         "guard:approval:publish_report", "tool:publish_report"]
        report = Path(run.result["published"])
        assert report.read_text().startswith("# What is the population density of Japan")
        assert report.parent == tmp_path / "reports"
    finally:
        tether.close()


def test_demo_is_governed_policy_budget_approval_and_decisions(
    fake_openai: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Everything the demo does passes the guards, and the demo shows it."""
    base_url, _ = fake_openai
    proc = run_demo("--task", "countries", "--model", "openai:fake-gpt", "--base-url", base_url,
                    "--db", str(tmp_path / "demo.db"), "--yes")
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "id: publishing-needs-a-person" in out and "effect: approve" in out  # the policy
    assert "run budget steps=40, tokens_in=60000" in out and "tool_calls=16" in out
    assert "approval needed" in out and "rule publishing-needs-a-person" in out
    assert "approved with --yes (signed by demo-operator; status approved)" in out
    # the resumed run rebuilds itself from its journal: earlier steps are not shown as new calls
    assert out.count("→ lookup_country(") == 1 and "replayed from the journal (not re-run)" in out
    # the timeline shows tokens and every guard decision
    assert "allow data-lookups" in out and "approve publishing-needs-a-person" in out
    assert "guard decisions: 2 allow, 1 approve" in out  # asked, then approved: one decision
    assert "300 tokens in, 30 out" in out and "published:" in out


def test_demo_without_a_terminal_or_yes_denies_and_says_so(
    fake_openai: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    base_url, _ = fake_openai
    db = tmp_path / "demo.db"
    proc = run_demo("--task", "countries", "--model", "openai:fake-gpt", "--base-url", base_url,
                    "--db", str(db))
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no terminal to ask in and no --yes: denied" in out
    assert not (tmp_path / "reports").exists()  # the action never ran
    tether = Tether(str(db))
    try:
        (run,) = tether.store.list_runs(limit=10)
        assert run.status == "succeeded" and run.result["published"].startswith("not published")
    finally:
        tether.close()


def test_demo_rejects_an_unknown_model() -> None:
    proc = run_demo("--model", "gpt-9")
    assert proc.returncode == 2
    assert "unknown --model 'gpt-9'" in proc.stdout


def test_demo_reports_failure_when_the_model_is_unreachable(tmp_path: Path) -> None:
    proc = run_demo("--task", "countries", "--model", "openai:x", "--base-url",
                    "http://127.0.0.1:9/v1", "--db", str(tmp_path / "d.db"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "run failed" in proc.stdout
    assert "journal of run" in proc.stdout


def test_build_model_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_model("openai:gpt-4o-mini", "http://h/v1").name == "openai:gpt-4o-mini"
    # `local` is the 1.5B model where `make models-large` installed it, else the 0.5B one
    # (`make test` alone installs only the small one): both branches, whatever this machine has
    monkeypatch.setattr(demo_models, "_available", lambda weights: True)
    assert build_model("local", None).name.startswith("local:qwen2.5-coder-1.5b")
    assert build_model("local:small", None).name.startswith("local:qwen2.5-coder-0.5b")
    monkeypatch.setattr(demo_models, "_available", lambda weights: False)
    assert build_model("local", None).name.startswith("local:qwen2.5-coder-0.5b")
    with pytest.raises(ValueError, match="unknown --model 'openai:'"):
        build_model("openai:", None)


def test_lookup_country_reads_the_bundled_file() -> None:
    assert lookup_country("  japan ") == {
        "country": "Japan", "capital": "Tokyo", "population": 124500000, "area_km2": 377975,
        "gdp_usd_billion": 4213,
    }
    with pytest.raises(LookupError, match="no data for 'Atlantis'; the data file covers: "
                                          "Australia, Brazil"):
        lookup_country("Atlantis")


@pytest.mark.parametrize(
    ("expression", "value"),
    [("124,500,000 / 377,975", 329.3869), ("round(min(1, 2) * 3.5, 1)", 3.5),
     ("2 ** 10 - -1", 1025.0), ("sqrt(16) + 7 // 2 + 7 % 2", 8.0)],
)
def test_calculate(expression: str, value: float) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [("__import__('os').system('true')", "unsupported expression element"),
     ("x + 1", "unsupported expression element"), ("1 / 0", "division by zero"),
     ("2 ** 1000", "exponent too large"), ("1 +", "not an arithmetic expression")],
)
def test_calculate_rejects_anything_but_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calculate(expression)


def test_demo_tool_schemas_bound_argument_length() -> None:
    reg = demo_tools()
    assert reg.get("calculate").parameters["properties"]["expression"]["maxLength"] == 200
    with pytest.raises(ToolArgumentError, match="at most 60 characters"):
        reg.get("lookup_country").validate({"country": "x" * 61})


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_with_the_embedded_local_model(tmp_path: Path) -> None:
    """The default demo: the embedded local model must use both tools and get the figure right."""
    db = tmp_path / "demo.db"
    proc = run_demo("--task", "countries", "--db", str(db), timeout=840)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "→ lookup_country(country='Japan')" in proc.stdout
    assert "→ calculate(" in proc.stdout
    tether = Tether(str(db))
    try:
        (run,) = tether.store.list_runs(limit=10)
        assert run.status == "succeeded"
        assert "329" in run.result["answer"]
        tools = [e.name for e in tether.events(run.id) if e.kind == "step_completed"
                 and (e.name or "").startswith("tool:")]
        assert {"tool:lookup_country", "tool:calculate"} <= set(tools)
    finally:
        tether.close()
