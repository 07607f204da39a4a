"""Issue 14: `tether trace RUN` draws a run (and its children) as a tree of spans with durations,
tokens, cost, the guards' decisions and the model's reason for each tool call; `--json` gives
the spans; `--export` sends them to the collector the OTEL environment names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli import agents_progress
from tests.observe.otel_receiver import closed_port, http_receiver
from tests.observe.test_spans import GUARDS, THOUGHT, thinking_react
from tether import Tether
from tether.cli import app
from tether.observe import run_spans

runner = CliRunner()


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME",
                 "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "TETHER_TEST_GATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))
    monkeypatch.setenv("COLUMNS", "220")


@pytest.fixture
async def runs(db_path: str) -> dict[str, str]:
    t = Tether(db_path, guards=GUARDS)
    react = await t.run(thinking_react, "refund A-7")
    fan = await t.run(agents_progress.fans_out, 2)
    t.close()
    return {"react": react.id, "fan": fan.id}


def trace(db: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["trace", *args, "--db", db])
    return result.exit_code, result.output


def test_the_tree_shows_calls_decisions_tokens_and_the_mind_log(
        db_path: str, runs: dict[str, str]) -> None:
    code, out = trace(db_path, runs["react"][:7])  # a prefix, as every command takes
    assert code == 0, out
    lines = out.splitlines()
    agent = next(s for s in lines if "invoke_agent thinking_react" in s)
    assert runs["react"] in agent and "succeeded" in agent and "ms" in agent
    chats = [s for s in lines if "chat tiny-1" in s]
    assert len(chats) == 3 and "tokens 120→17" in chats[0] and "$0.0021" in chats[0]
    lookup = next(s for s in lines if "execute_tool lookup" in s)
    assert "[allow lookups]" in lookup and "call c1" in lookup
    denied = next(s for s in lines if "execute_tool delete_all" in s)
    assert "[deny default → policy answered]" in denied and "✗" in denied
    # the thought that led to the lookup, right under it (the journal is local: shown)
    thought = lines[lines.index(lookup) + 1]
    assert "thought: " + THOUGHT[:40] in thought
    # tree order: agent first, its calls below, indented
    assert lines.index(agent) < lines.index(chats[0]) < lines.index(lookup) < lines.index(denied)
    assert lookup.index("execute_tool") > agent.index("invoke_agent")


def test_children_are_drawn_under_their_spawn(db_path: str, runs: dict[str, str]) -> None:
    code, out = trace(db_path, runs["fan"])
    assert code == 0, out
    lines = out.splitlines()
    spawns = [i for i, s in enumerate(lines) if "tether.spawn counted_child" in s]
    assert len(spawns) == 2
    for i in spawns:  # each spawn's next line is the child's agent, one level deeper
        child = lines[i + 1]
        assert "invoke_agent counted_child" in child and f"{runs['fan']}." in child
        assert child.index("invoke_agent") > lines[i].index("tether.spawn")


def test_json_gives_the_spans(db_path: str, runs: dict[str, str]) -> None:
    code, out = trace(db_path, runs["fan"], "--json")
    assert code == 0, out
    data = json.loads(out)
    t = Tether(db_path)
    expected = run_spans(t, runs["fan"])
    assert data["run"] == runs["fan"] and data["trace_id"] == expected[0].trace_id
    assert [s["span_id"] for s in data["spans"]] == [s.span_id for s in expected]
    one = data["spans"][0]
    assert {"name", "trace_id", "span_id", "parent_id", "run_id", "start", "end",
            "duration_ms", "status", "attributes", "events"} <= set(one)


def test_export_sends_the_tree_to_the_collector(
        db_path: str, runs: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with http_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        code, out = trace(db_path, runs["fan"], "--export")
        spans = received.wait_for(lambda s: len(s) == 7)
    assert code == 0, out
    assert f"exported 7 spans of run {runs['fan']} to {endpoint}/v1/traces (http/protobuf)" \
        in out
    assert {s.name for s in spans} == {"invoke_agent fans_out", "tether.spawn counted_child",
                                       "invoke_agent counted_child", "tether.step count"}


def test_export_needs_a_destination_and_says_which(
        db_path: str, runs: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = trace(db_path, runs["react"], "--export")
    assert code == 1
    assert "set OTEL_EXPORTER_OTLP_ENDPOINT" in out and "Traceback" not in out
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    code, out = trace(db_path, runs["react"], "--export")
    assert code == 1
    assert "did not take the 6 spans" in out and "is it running?" in out


def test_an_unknown_run_is_a_clear_error(db_path: str, runs: dict[str, str]) -> None:
    code, out = trace(db_path, "nope")
    assert code == 1 and "no run with id 'nope'" in out and "Traceback" not in out
