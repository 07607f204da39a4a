"""The timeline of a run: one row per journal event, with durations, tokens and guard decisions.

Rows are plain data (`TimelineRow`, JSON-ready for scripts and, later, the web UI); `timeline_table`
is the one terminal renderer of them. Everything is read through `tether.store.vocabulary`, so the
timeline cannot drift from what the runtime and the guards journal.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from tether.store import Event, RunRecord
from tether.store import vocabulary as v

if TYPE_CHECKING:
    from tether.guards.pii import Scrubber


@dataclass(frozen=True)
class TimelineRow:
    seq: int
    t_ms: float  # since the run's first event
    kind: str
    key: str | None
    name: str | None
    took_ms: float | None  # for events that close an operation opened earlier
    detail: str  # never cut here: renderers decide how much fits
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    decision: str = ""  # the guards' decision on this step, e.g. "deny default"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TimelineTotals:
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    model_calls: int
    tool_calls: int
    decisions: dict[str, int]  # action -> count (allow, deny, approve, honeypot, ...)


class TimelineBuilder:
    """Rows one event at a time, so a journal being followed (`tether run`, `tether show
    --follow`, `tether worker -v`) gets the same rows as a whole one, and the run's token totals
    so far. Durations need the event that opened an operation: feed every event, in order."""

    def __init__(self, *, redact: bool = False) -> None:
        """`redact`: PII and secrets in the details masked (`tether.guards.pii.Scrubber`), for
        a reader the policy does not cover (a viewer key); operators read the journal as it
        is (`tether show`)."""
        self._scrub = _scrubber() if redact else None
        self._t0: float | None = None
        self._opened: dict[str, float] = {}
        self.tokens_in = 0
        self.tokens_out = 0

    def row(self, e: Event) -> TimelineRow:
        if self._t0 is None:
            self._t0 = e.ts
        took = None
        if e.kind == v.STEP_STARTED and e.key is not None:
            # an attempt: a step run again after a crash is timed from its own start, not from
            # that of the attempt its dead worker never finished (a 2 s step showed as 33 s)
            self._opened[e.key] = e.ts
        elif e.kind in v.OPENS and e.key is not None:
            # a wait (timer, signal, child) journaled again by a resumed run is timed from its
            # first start: the wait went on while no worker ran
            self._opened.setdefault(e.key, e.ts)
        elif e.kind in v.CLOSES and e.key in self._opened:
            took = (e.ts - self._opened.pop(e.key or "")) * 1000
        call = v.model_call(e)
        if call is not None:
            self.tokens_in += call.input_tokens
            self.tokens_out += call.output_tokens
        return TimelineRow(
            seq=e.seq, t_ms=(e.ts - self._t0) * 1000, kind=e.kind, key=e.key, name=e.name,
            took_ms=took, detail=self._scrub.text(describe(e)) if self._scrub else describe(e),
            tokens_in=call.input_tokens if call else 0,
            tokens_out=call.output_tokens if call else 0,
            cost_usd=call.cost_usd if call else None,
            decision=_decision_text(v.guard_decision(e)),
        )


def timeline_rows(events: list[Event], *, redact: bool = False) -> list[TimelineRow]:
    builder = TimelineBuilder(redact=redact)
    return [builder.row(e) for e in events]


def _scrubber() -> Scrubber:
    from tether.guards.pii import Scrubber  # the recognizers: only for a redacted view

    return Scrubber()


def event_line(row: TimelineRow, *, tokens_so_far: tuple[int, int] | None = None,
               width: int | None = 160) -> str:
    """One event as one plain line (no markup): what progress output prints as events commit.

    `tokens_so_far` (the run's totals up to this event) is shown on model calls, so a long run
    says what it has spent while it goes; `width` cuts the detail (None: whole)."""
    parts = [f"#{row.seq:<4}", f"{'+' + _seconds(row.t_ms):>8}", f"{row.kind:<15}"]
    if row.name:
        parts.append(row.name)
    if row.took_ms is not None:
        parts.append(f"({row.took_ms:.0f} ms)")
    if row.tokens_in or row.tokens_out:
        tokens = f"tokens {row.tokens_in}→{row.tokens_out}"
        if tokens_so_far is not None:
            tokens += f" (run {tokens_so_far[0]}→{tokens_so_far[1]})"
        parts.append(tokens)
    if row.decision:
        parts.append(f"[{row.decision}]")
    detail = _cut(row.detail, width)
    return " ".join(parts).rstrip() + (f" · {detail}" if detail else "")


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.1f}s"


def timeline_totals(events: list[Event]) -> TimelineTotals:
    """`decisions` counts each decision of the guards once: a call that needed an approval
    is decided at its request (the `guard:approval:` step), and the approved call's own step
    journals that decision again; a retried call journals it again at each attempt."""
    tin, tout, cost = v.usage_of(events)
    decisions: dict[str, int] = {}
    asked: dict[str, int] = {}  # tool -> approval requests whose call is not journaled yet
    models = tools = 0
    for e in events:
        models += v.model_call(e) is not None
        tools += v.tool_call(e) is not None
        d = v.guard_decision(e)
        if d is None or d.extra.get("attempt", 1) != 1:
            continue
        family, subject = v.step_family(e.name), v.step_subject(e.name)
        if family == "guard" and d.action == "approve":
            subject = subject.removeprefix("approval:")
            asked[subject] = asked.get(subject, 0) + 1
        elif family == "tool" and d.action == "approve" and asked.get(subject):
            asked[subject] -= 1  # decided at its request, counted there
            continue
        decisions[d.action] = decisions.get(d.action, 0) + 1
    return TimelineTotals(tin, tout, cost, models, tools, decisions)


def _decision_text(d: v.GuardDecision | None) -> str:
    if d is None:
        return ""
    text = f"{d.action} {d.rule or ''}".strip()
    if d.short_circuit:
        text += f" → {d.short_circuit} answered"
    return text


def describe(e: Event) -> str:
    """What an event says, in a line (not shortened)."""
    data: Any = e.data
    d = data if isinstance(data, dict) else {}
    family = v.step_family(e.name)
    if e.kind == v.RUN_SUBMITTED:
        return f"agent {d.get('agent')}, tenant {d.get('tenant')}"
    if e.kind in (v.RUN_STARTED, v.RUN_RESUMED):
        return f"worker {d.get('worker')}, attempt {d.get('attempt')}"
    if e.kind == v.STEP_STARTED:
        return _started(e, family)
    if (call := v.model_call(e)) is not None:
        said = ", ".join(f"{c.get('name')}({_json(c.get('arguments'))})" for c in call.tool_calls)
        reply = f"calls {said}" if said else (call.text or f"({call.finish_reason})")
        failed = [a for a in call.attempts if a.get("error_type")]
        if failed:  # a retry or fallback answered: which tries failed first, and why
            reply += " · after " + "; ".join(
                f"{a.get('model')}: {a.get('error_type')}: {a.get('error')}" for a in failed)
        if call.rejected:  # asked again with this feedback: the next model call is the retry
            return f"rejected: {'; '.join(call.rejected)} · reply was: {reply}"
        return f"repaired · {reply}" if call.repaired else reply
    if (retry := v.retry_record(e)) is not None:
        return _retry_text(retry)
    if (res := v.exec_result(e)) is not None:
        return _exec_text(res)
    if (tc := v.tool_call(e)) is not None:
        if tc.ok:
            return "ok: " + _json(tc.output)
        return f"{tc.error_type}: {tc.error_message}"
    if e.kind in (v.STEP_FAILED, v.RUN_FAILED):
        return f"{d.get('type')}: {d.get('message')}"
    if e.kind == v.RUN_HALTED:
        return str(d.get("reason"))
    if e.kind == v.LOG:
        fields = {k: val for k, val in d.items() if k != "message"}
        return str(d.get("message", "")) + (f" {_json(fields)}" if fields else "")
    if e.kind == v.SIGNAL_WAITING:
        return f"waiting for signal {e.name!r}"
    if data is None:
        return ""
    return _json(data)


def _retry_text(r: v.RetryRecord) -> str:
    again = ", ".join(r.rerun_steps) if r.rerun_steps else "no step (the agent's code after them)"
    return (f"attempt {r.attempt} of a {r.previous_status} run ({r.previous_error or 'no error'}): "
            f"{r.replayed_steps} step(s) replay from the journal; runs again: {again}")


def _started(e: Event, family: str) -> str:
    meta = v.step_meta(e)
    if family == "model":
        return f"model {meta.get('model') or v.step_subject(e.name)}"
    if family == "tool":
        text = f"{meta.get('side_effect')}, idempotent={meta.get('idempotent')}"
        if "arguments" in meta:  # a call that would be in doubt after a crash: which call
            text += f" · arguments {_json(meta['arguments'])}"
        return text
    if family == "exec":
        return f"sandbox {meta.get('backend')}, {meta.get('language')}"
    if family == "guard":
        decision = v.guard_decision(e)
        return f"approval {meta.get('approval_id')}: {decision.reason if decision else ''}"
    return ""


def _exec_text(res: dict[str, Any]) -> str:
    files = res.get("files") or {}
    written = [*files.get("added", []), *files.get("modified", [])]
    text = f"exit {res.get('exit_code')}, {res.get('duration_ms') or 0:.0f} ms"
    if written:
        text += "; wrote " + ", ".join(written)
    out = " ".join(str(res.get("stdout") or "").split())
    return text + (f"; {out}" if out else "")


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


#: the longest detail `full` puts in a table cell: a terminal table of a 300 MB event took
#: gigabytes and minutes; past this the whole value is in `--json`
FULL_DETAIL_MAX = 20_000


def clip_detail(text: str, whole: str = "tether show RUN --json") -> str:
    """A row's detail for a full view: whole up to `FULL_DETAIL_MAX` characters, then cut
    with a note naming where the whole value is (`whole`)."""
    if len(text) <= FULL_DETAIL_MAX:
        return text
    return f"{text[:FULL_DETAIL_MAX]}… ({len(text) - FULL_DETAIL_MAX:,} more characters: {whole})"


def _cut(text: str, width: int | None) -> str:
    if width is None:
        return " ".join(clip_detail(text).split())
    text = " ".join(text.split())
    if width is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


def _line_breaks_shown(name: str | None) -> str:
    """A step's name on its row: a line break in it (a name an MCP server or an agent chose)
    shown as `\\n`/`\\r`, not as what looks like another row. The other control characters
    are the printing console's to show (`tether.cli._safe.SafeConsole`); a detail's whitespace
    is collapsed by `_cut`."""
    return (name or "").replace("\r", "\\r").replace("\n", "\\n")


def timeline_table(record: RunRecord, events: list[Event], *, full: bool = False,
                   detail_width: int = 90, window: tuple[int, int] | None = None) -> Table:
    """The run's journal as a table; `full` shows every detail whole, up to `FULL_DETAIL_MAX`
    characters a cell (the whole value: `tether show RUN --json`). `window`: only the first
    and the last rows of a long journal (a run of 100,000 events took 236 s to draw), with
    a row saying how many are not shown; the caption's totals count every event."""
    width = None if full else detail_width
    table = Table(title=f"journal of run {record.id} · {record.agent} · {record.status}",
                  title_justify="left")
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("+ms", justify="right", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("name", max_width=24, overflow="fold")
    table.add_column("took", justify="right", no_wrap=True)
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("detail (guard decisions first)", ratio=1, min_width=24, overflow="fold")
    rows: list[TimelineRow | None] = list(timeline_rows(events))
    if window is not None and len(rows) > sum(window) + 1:
        hidden = len(rows) - sum(window)
        rows = [*rows[:window[0]], None, *rows[-window[1]:]]
    for r in rows:
        if r is None:
            table.add_row("…", "", "", "", "", "", f"{hidden:,} events not shown (--all)")
            continue
        tokens = f"{r.tokens_in}→{r.tokens_out}" if (r.tokens_in or r.tokens_out) else ""
        detail = escape(_cut(r.detail, width))
        if r.decision:
            style = "green" if r.decision.startswith("allow") else (
                "yellow" if r.decision.startswith("approve") else "red")
            detail = f"[{style}]{escape(r.decision)}[/{style}] · {detail}"
        table.add_row(str(r.seq), f"{r.t_ms:.0f}", r.kind, escape(_line_breaks_shown(r.name)),
                      "" if r.took_ms is None else f"{r.took_ms:.0f} ms", tokens, detail)
    table.caption = totals_text(timeline_totals(events))
    table.caption_justify = "left"
    return table


def totals_text(totals: TimelineTotals) -> str:
    """The run's totals in a line (the timeline's caption): a count in the singular for one,
    and no cost at all for a run that called no model."""
    spent = "no model calls"
    if totals.model_calls:
        cost = "unknown (no price for this model)" if totals.cost_usd is None else (
            f"${totals.cost_usd:.4f}")
        spent = (f"{_count(totals.model_calls, 'model call')}, {totals.tokens_in} tokens in, "
                 f"{totals.tokens_out} out, cost {cost}")
    decided = ", ".join(f"{n} {a}" for a, n in sorted(totals.decisions.items())) or "none"
    return f"{spent}; {_count(totals.tool_calls, 'tool call')}; guard decisions: {decided}"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n or 'no'} {thing}s"
