"""`tether trace RUN`: a run and its children as a tree of spans, and their export over OTLP.

The tree is drawn from the same `SpanRecord`s that are exported (`tether.observe.run_spans`), so
what the terminal shows is what Phoenix or Jaeger receive: one node per span with its duration,
tokens and cost, the guards' decisions inline, and under a tool call the model's reason for it
(the "mind-log"). The journal is on this machine already, so the tree and `--json` show message
content; `--export` follows the conventions' opt-in switch
(`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`) because spans leave the machine.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from ._common import DB_OPTION, RUN_ID_HELP, console, fail, full_run_id, handle_errors, open_tether

if TYPE_CHECKING:
    from rich.tree import Tree

    from tether.observe import LiveExport, SpanRecord


def register(app: typer.Typer) -> None:
    app.command("trace")(trace)


def trace(
    run_id: str = typer.Argument(..., help=RUN_ID_HELP),
    export: bool = typer.Option(False, "--export", help="Send the run's spans (and its "
                                "children's) to the OTLP collector named by "
                                "OTEL_EXPORTER_OTLP_ENDPOINT."),
    as_json: bool = typer.Option(False, "--json", help="Print the spans as JSON (fields "
                                 "documented in docs/cli.md) instead of a tree."),
    db: str = DB_OPTION,
) -> None:
    """Show a run as a trace: a tree of spans (model calls, tool calls, sandbox execs, waits,
    child runs) with durations, tokens, cost and guard decisions."""
    from tether.observe import run_spans

    tether = open_tether(db, must_exist=True)
    run_id = full_run_id(tether, run_id)
    if export:
        _export(tether, run_id)
        return
    with handle_errors():
        spans = run_spans(tether, run_id, content=True)
    if as_json:
        print(json.dumps({"run": run_id, "trace_id": spans[0].trace_id if spans else None,
                          "spans": [s.to_json() for s in spans]},
                         default=str, ensure_ascii=False, indent=2))
        return
    console.print(span_tree(spans))


def _export(tether: Any, run_id: str) -> None:
    from tether.observe import ExportError, export_run
    from tether.observe.otel import otlp_destination

    try:
        sent = export_run(tether, run_id)
        where = otlp_destination()
    except ExportError as exc:
        fail(str(exc))
    console.print(f"exported {sent} spans of run {run_id} to {where}", markup=False,
                  soft_wrap=True)


def span_tree(spans: list[SpanRecord]) -> Tree:
    """The spans as a rich tree: children in the order they started."""
    from rich.tree import Tree

    ids = {s.span_id for s in spans}
    kids: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for s in spans:
        kids[s.parent_id if s.parent_id in ids else None].append(s)
    roots = sorted(kids[None], key=_order)
    top = Tree(f"trace {roots[0].trace_id}" if roots else "no spans", guide_style="dim")

    def add(node: Tree, span: SpanRecord) -> None:
        branch = node.add(label(span))
        for line in _notes(span):
            branch.add(line)
        for child in sorted(kids[span.span_id], key=_order):
            add(branch, child)

    for root in roots:
        add(top, root)
    return top


def _order(s: SpanRecord) -> tuple[float, int]:
    return (s.start, s.start_seq)


_STATUS = {"ok": "[green]✓[/]", "error": "[red]✗[/]", "unset": "[dim]·[/]"}


def label(s: SpanRecord) -> str:
    """One line: status, name, duration, tokens, cost, the guards' decision."""
    from rich.markup import escape

    a = s.attributes
    parts = [_STATUS[s.status], f"[bold]{escape(s.name)}[/]", _duration(s.duration_ms)]
    tin, tout = a.get("gen_ai.usage.input_tokens"), a.get("gen_ai.usage.output_tokens")
    if tin or tout:
        parts.append(f"tokens {tin}→{tout}")
    cost = a.get("tether.cost.usd")
    if isinstance(cost, int | float):
        parts.append(f"${cost:.4f}")
    if s.name.startswith("invoke_agent"):
        parts.append(f"[dim]run {escape(str(a.get('tether.run.id')))} "
                     f"{escape(str(a.get('tether.run.status', 'running')))}[/]")
    action = a.get("tether.guard.action")
    if action:
        style = "green" if action == "allow" else "yellow" if action == "approve" else "red"
        text = f"{action} {a.get('tether.guard.rule') or ''}".strip()
        if a.get("tether.guard.answered_by"):
            text += f" → {a['tether.guard.answered_by']} answered"
        parts.append(f"[{style}]\\[{escape(text)}][/]")
    if a.get("gen_ai.tool.call.id"):
        parts.append(f"[dim]call {escape(str(a['gen_ai.tool.call.id']))}[/]")
    if s.status == "error" and s.status_message:
        parts.append(f"[red]{escape(_cut(s.status_message, 100))}[/]")
    if a.get("tether.open"):
        parts.append("[cyan](still open)[/]")
    return " ".join(parts)


def _notes(s: SpanRecord) -> list[str]:
    """Lines under a node: the mind-log, and the run-level guard decisions and happenings."""
    from rich.markup import escape

    out = []
    thought = s.attributes.get("tether.tool.rationale")
    if thought:
        out.append(f"[italic dim]thought: {escape(_cut(str(thought), 160))}[/]")
    for ev in s.events:
        if ev.name == "tether.guard.decision" and "tether.guard.action" in s.attributes:
            continue  # already on the node's own line
        if ev.name.startswith("tether.guard.") or ev.name in (
                "tether.run.resumed", "tether.run.retried", "tether.run.flagged",
                "tether.step_in_doubt", "tether.model.rejected"):
            text = ", ".join(f"{k.removeprefix('tether.')}={v}" for k, v in ev.attributes.items())
            style = "dim" if ev.name.startswith("tether.run.") else "magenta"
            out.append(f"[{style}]{escape(ev.name)}: {escape(_cut(text, 160))}[/]")
    return out


def _duration(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def live_export(tether: Any) -> LiveExport | None:
    """For `tether run`, `worker` and `retry`: export spans live when the OTEL environment
    names a collector (None, and no OpenTelemetry import, when it does not)."""
    from tether.observe import ExportError, export_live

    try:
        return export_live(tether)
    except ExportError as exc:
        fail(str(exc))


def check_exporting() -> None:
    """Refuse an OTEL environment that cannot export (`check_otlp_environment`) before a
    command queues or executes anything."""
    from tether.observe import ExportError, check_otlp_environment

    try:
        check_otlp_environment()
    except ExportError as exc:
        fail(str(exc), 2)


@contextlib.contextmanager
def exporting(tether: Any) -> Iterator[None]:
    """Live export around a command that executes runs; at the end, the last spans are sent
    (waiting at most a couple of seconds for a collector). Metrics too, when the environment
    names a metrics collector (`tether.observe.metrics`: each run's metrics as it ends)."""
    import logging
    import threading

    from tether.observe import export_metrics_live

    one = _OneExportWarning()
    logging.getLogger("tether.observe").addFilter(one)
    live = live_export(tether)
    metrics = export_metrics_live(tether)
    try:
        yield
    finally:
        # side by side: each waits at most its bound for a collector, the command not twice as
        # long
        closing = [threading.Thread(target=x.close) for x in (metrics, live) if x is not None]
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join()
        logging.getLogger("tether.observe").removeFilter(one)


class _OneExportWarning:
    """A dead collector costs one warning line per command, not one per signal (spans and
    metrics go to the same collector): the first `tracing:`/`metrics:` warning is shown."""

    def __init__(self) -> None:
        self.shown = False

    def filter(self, record: Any) -> bool:
        if not str(record.getMessage()).startswith(("tracing:", "metrics:")):
            return True
        if self.shown:
            return False
        self.shown = True
        return True
