"""A real run's trace, exported by OTLP to a real Arize Phoenix and read back through Phoenix's
REST API (GET /v1/projects/{project}/spans): the span tree and the gen_ai attributes as Phoenix
stored them, after the fact (`tether trace RUN --export`, OTLP/HTTP) and live (`tether run` with
the OTEL_* variables set, OTLP/gRPC).

Phoenix comes from `make phoenix` (SERVICES, so `make test` starts it) or, when pytest is run
directly, from the `phoenix` fixture below (same code: tests/observe/phoenix_support.py).
Each test sends its spans to a project of its own (`openinference.project.name` in
OTEL_RESOURCE_ATTRIBUTES, which the OTel SDK reads), so a reused Phoenix's older traces do not
count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.observe import phoenix_support, screenshots
from tests.observe.phoenix_support import ROOT, Phoenix
from tether import Tether
from tether.observe import run_spans, timeline_rows
from tether.store import vocabulary as v

pytestmark = [pytest.mark.slow, pytest.mark.service]

AGENT = "tests.observe.phoenix_agents:triage"
GUARDS = "tests.observe.phoenix_agents:GUARDS"
GOAL = "Delete order A-7 if it shipped"
THOUGHT = "First check whether A-7 has shipped."  # the planner's rationale for lookup_order

Span = dict[str, Any]


@pytest.fixture(scope="module")
def phoenix() -> Iterator[Phoenix]:
    """The Phoenix `make phoenix` started, or one started here (and stopped afterwards)."""
    if phoenix_support.running_version(phoenix_support.url()) is None and \
            not phoenix_support.installed():
        subprocess.run(["make", "-s", "phoenix-setup"], cwd=ROOT, check=True)
    running = phoenix_support.start()
    yield running
    if running.started_here:
        phoenix_support.stop()


@pytest.fixture(autouse=True)
def no_ambient_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process exports nothing by itself: only the subprocesses the tests configure."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def otel_env(tmp_path: Path, project: str, endpoint: str, protocol: str,
             content: bool = False) -> dict[str, str]:
    env = {k: val for k, val in os.environ.items() if not k.startswith("OTEL_")}
    env.update({
        "TETHER_DB": str(tmp_path / "t.db"), "PYTHONPATH": str(ROOT), "COLUMNS": "200",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "tether-phoenix-test",
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}",
    })
    if content:
        env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
    return env


def tether_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"tether {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def journal_calls(db: Path, root_id: str) -> dict[str, dict[str, list[Any]]]:
    """Per run of the tree: the model calls (model, tokens in, tokens out) and the tool calls
    the journal holds, read through the timeline (not through the span code under test)."""
    t = Tether(str(db))
    try:
        runs = [t.get(root_id), *t.store.descendants(root_id)]
        calls: dict[str, dict[str, list[Any]]] = {}
        for run in runs:
            rows = [r for r in timeline_rows(t.events(run.id)) if r.kind == v.STEP_COMPLETED]
            named = [(r.name or "", r) for r in rows]
            calls[run.id] = {
                "agent": [run.agent.rsplit(":", 1)[-1]],
                "models": [(name.removeprefix("model:"), r.tokens_in, r.tokens_out)
                           for name, r in named if name.startswith("model:")],
                "tools": [name.removeprefix("tool:") for name, _ in named
                          if name.startswith("tool:")],
            }
        return calls
    finally:
        t.close()


def expected_ids(db: Path, root_id: str) -> tuple[str, set[tuple[str, str | None]]]:
    """The trace id and (span id, parent id) pairs Tether derives from the journal."""
    t = Tether(str(db))
    try:
        records = run_spans(t, root_id)
    finally:
        t.close()
    trace_ids = {r.trace_id for r in records}
    assert len(trace_ids) == 1, trace_ids
    return trace_ids.pop(), {(r.span_id, r.parent_id) for r in records}


def nearest(span: Span, by_id: dict[str, Span], prefix: str) -> Span | None:
    """The closest ancestor of `span` whose name starts with `prefix`."""
    parent = span["parent_id"]
    while parent is not None:
        up = by_id[parent]
        if up["name"].startswith(prefix):
            return up
        parent = up["parent_id"]
    return None


def decisions(span: Span) -> list[str]:
    """The guard decisions on a span (`tether.guard.decision` events), as their actions."""
    return [str(e["attributes"].get("tether.guard.action")) for e in span.get("events", [])
            if e["name"] == "tether.guard.decision"]


def assert_tree(spans: list[Span], calls: dict[str, dict[str, list[Any]]], root_id: str,
                *, content: bool) -> None:
    """The trace Phoenix holds is the run tree the journal records, with its gen_ai attributes."""
    by_id = {s["context"]["span_id"]: s for s in spans}
    assert len(by_id) == len(spans), "Phoenix holds a span id twice"
    assert len({s["context"]["trace_id"] for s in spans}) == 1, "the run tree is one trace"
    roots = [s for s in spans if s["parent_id"] is None]
    assert [r["name"] for r in roots] == ["invoke_agent triage"], roots
    orphans = [s["name"] for s in spans if s["parent_id"] not in (None, *by_id)]
    assert orphans == [], f"spans whose parent Phoenix never received: {orphans}"

    agents = {s["attributes"]["tether.run.id"]: s for s in spans
              if s["name"].startswith("invoke_agent ")}
    assert set(agents) == set(calls), (set(agents), set(calls))
    for run_id, agent_span in agents.items():
        assert agent_span["name"] == f"invoke_agent {calls[run_id]['agent'][0]}"
        assert agent_span["attributes"]["gen_ai.operation.name"] == "invoke_agent"
        assert agent_span["attributes"]["gen_ai.agent.name"] == calls[run_id]["agent"][0]
    for agent_span in agents.values():
        assert agent_span["span_kind"] == "AGENT"  # Phoenix read the conventions' operation
    child = agents[next(r for r in calls if r != root_id)]
    spawn = by_id[child["parent_id"]]
    assert spawn["name"] == "tether.spawn research", "a child run hangs under its spawn"
    assert nearest(child, by_id, "invoke_agent ") is agents[root_id], \
        "the child run's invoke_agent span is not nested in its parent's"

    for run_id, expected in calls.items():
        mine = [s for s in spans if nearest(s, by_id, "invoke_agent ") is agents[run_id]
                and not s["name"].startswith("invoke_agent ")]
        chats = [s for s in mine if s["name"].startswith("chat ")]
        got = [(s["attributes"]["gen_ai.request.model"],
                s["attributes"]["gen_ai.usage.input_tokens"],
                s["attributes"]["gen_ai.usage.output_tokens"])
               for s in sorted(chats, key=lambda s: s["start_time"])]
        assert got == expected["models"], (run_id, got, expected["models"])
        for chat in chats:
            attrs = chat["attributes"]
            assert chat["name"] == f"chat {attrs['gen_ai.request.model']}"
            assert attrs["gen_ai.operation.name"] == "chat"
            assert attrs["gen_ai.provider.name"]
            assert attrs["gen_ai.response.model"] == attrs["gen_ai.request.model"]
            assert chat["span_kind"] == "LLM"  # Phoenix read them as model calls
        tools = [s for s in mine if s["name"].startswith("execute_tool ")]
        assert Counter(s["attributes"]["gen_ai.tool.name"] for s in tools) == \
            Counter(expected["tools"]), (run_id, tools)
        for tool in tools:
            assert tool["name"] == f"execute_tool {tool['attributes']['gen_ai.tool.name']}"
            assert tool["attributes"]["gen_ai.operation.name"] == "execute_tool"
            assert tool["attributes"]["gen_ai.tool.call.id"]
            assert tool["span_kind"] == "TOOL"

    tools = [s for s in spans if s["name"].startswith("execute_tool ")]
    assert sorted((s["attributes"]["gen_ai.tool.name"], *decisions(s)) for s in tools) == [
        ("delete_order", "deny"), ("lookup_order", "allow"), ("lookup_order", "allow")], \
        "each tool call carries the policy's decision; delete_order's is the denial"

    planner_lookup = next(s for s in tools if s["attributes"]["gen_ai.tool.call.id"] == "p1")
    rationale = planner_lookup["attributes"].get("tether.tool.rationale")
    assert rationale == (THOUGHT if content else None), (
        "the planner's thought should be on its tool span exactly when content capture is on",
        planner_lookup)


async def test_after_the_fact_export_over_http(phoenix: Phoenix, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    t = Tether(str(db), guards=GUARDS)
    record = await t.run(AGENT, GOAL)
    t.close()
    assert record.status == "succeeded", record.error
    project = f"tether-test-{uuid.uuid4().hex[:8]}"
    env = otel_env(tmp_path, project, phoenix.otlp_http, "http/protobuf")

    out = tether_cli(["trace", record.id, "--export"], env, tmp_path)

    trace_id, ids = expected_ids(db, record.id)
    assert str(len(ids)) in out and phoenix.url in out, out  # how many spans, and where
    spans = phoenix.spans(project, trace_id, expect=len(ids))
    assert {(s["context"]["span_id"], s["parent_id"]) for s in spans} == ids
    assert_tree(spans, journal_calls(db, record.id), record.id, content=False)


async def test_live_export_over_grpc_then_again_after_the_fact(phoenix: Phoenix,
                                                               tmp_path: Path) -> None:
    project = f"tether-test-{uuid.uuid4().hex[:8]}"
    env = otel_env(tmp_path, project, phoenix.otlp_grpc, "grpc", content=True)
    tether_cli(["run", "--guards", GUARDS, AGENT, "--input", f'"{GOAL}"'], env, tmp_path)
    db = tmp_path / "t.db"
    t = Tether(str(db))
    (root,) = [r for r in t.runs() if r.parent_id is None]
    t.close()
    assert root.status == "succeeded", root.error
    trace_id, ids = expected_ids(db, root.id)
    spans = phoenix.spans(project, trace_id, expect=len(ids))
    assert {(s["context"]["span_id"], s["parent_id"]) for s in spans} == ids
    assert_tree(spans, journal_calls(db, root.id), root.id, content=True)

    # the same run exported again (deterministic ids): Phoenix still holds each span once
    again = otel_env(tmp_path, project, phoenix.otlp_http, "http/protobuf", content=True)
    tether_cli(["trace", root.id, "--export"], again, tmp_path)
    after = phoenix.spans(project, expect=len(ids), settle=3.0)  # the whole project, any trace
    assert sorted(s["context"]["span_id"] for s in after) == sorted(i for i, _ in ids)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (IHDR), which also proves it is a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.mark.skipif(not Path(screenshots.CHROMIUM).exists(),
                    reason="needs Debian's chromium (APT_PACKAGES of mk/observe.mk: make apt)")
def test_the_docs_screenshots_regenerate(phoenix: Phoenix, tmp_path: Path) -> None:
    """`make observe-screenshots` keeps working: Phoenix's UI, driven by headless chromium,
    shows the run's denied tool call (the shot waits for the denial's text), and `tether trace`
    renders to a picture."""
    ui, tree = screenshots.render(phoenix, tmp_path)
    assert png_size(ui) == (1440, 800)
    width, height = png_size(tree)
    assert width > 600 and height > 200, (width, height)
