"""OpenTelemetry metrics from the journal: GenAI client metrics and the agent KPIs as instruments.

Instruments (OpenTelemetry GenAI semantic conventions v1.41.0, the version the spans follow):

* `gen_ai.client.token.usage` (histogram, `{token}`, `gen_ai.token.type` input/output) and
  `gen_ai.client.operation.duration` (histogram, `s`; `error.type` when the call failed), per
  model call, with `gen_ai.operation.name=chat`, `gen_ai.provider.name`, `gen_ai.request.model`,
  `gen_ai.response.model` and the conventions' bucket boundaries;
* `tether.tool.duration` (histogram, `s`) and `tether.tool.calls` (counter) per tool call or
  sandbox exec, with `gen_ai.tool.name` and `tether.tool.outcome` (ok, error, refused), so
  P(success) of a tool is `calls{outcome=ok} / calls{outcome=ok or error}` in any backend;
* per finished run (a task): `tether.task.runs` (counter, by `tether.run.status`),
  `tether.task.tokens` and `tether.task.cost` (TPT), `tether.task.thinking.duration` and
  `tether.task.tool.duration`, `tether.task.thought_to_action`, `tether.task.plan_fidelity`
  (only runs whose strategy journaled a plan);
* `tether.context.pressure` (histogram, prompt tokens / context window, per model call whose
  model's window is known), `tether.loop.interventions` and `tether.guard.halts` (counters, the
  latter by `tether.guard`: budget, loop, ...).

Every point carries `tether.agent` and `tether.tenant` (never a run id: one series per run would
swamp a metrics backend; the spans carry the run ids).

**Recorded once, when a run ends, from its journal.** A run's metrics are recorded by the process
whose worker wrote its end (`run_completed`, `run_failed`, `run_halted`, `run_cancelled`), from
the journal events since the run's previous end (a retried run ended before) — a bound the
journal itself holds, so no store table is needed. Replayed steps append nothing to the journal,
and only one worker can write a run's end (its lease is fenced), so a run resumed after a crash,
or after waiting, is counted exactly once, with the steps the dead worker did included. What is
not promised: a process killed between writing a run's end and its next export loses that run's
points, and a run that ends without a worker (cancelled while it waited, or with its parent) is
recorded by no one — `tether stats` reads the journal and has both; and points are stamped when they
are recorded, not with the journal's times (the spans carry those).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tether.observe._kpi_context import context_window, split_model
from tether.observe._kpi_facts import RunFacts, run_facts
from tether.observe.kpis import agent_kpis
from tether.store import vocabulary as v

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from tether.store import Event

SEMCONV_VERSION = "1.41.0"
# the conventions' ExplicitBucketBoundaries for the two gen_ai.client metrics
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)
RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2, 3, 5, 10)
COST_BUCKETS = (0.0001, 0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 50)


class MetricsRecorder:
    """The instruments, made once per meter provider; `record_run` records one run's end."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        from opentelemetry import metrics

        from tether import __version__

        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("tether", __version__,
                                   schema_url=f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}")
        hist, count = meter.create_histogram, meter.create_counter
        self.token_usage = hist(
            "gen_ai.client.token.usage", "{token}", "Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.operation_duration = hist(
            "gen_ai.client.operation.duration", "s", "GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.tool_duration = hist(
            "tether.tool.duration", "s", "Time a tool call or sandbox exec took to run.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.tool_calls = count("tether.tool.calls", "{call}",
                                "Tool calls by outcome: ok, error, refused (by the guards).")
        self.task_runs = count("tether.task.runs", "{run}", "Runs that ended, by status.")
        self.task_tokens = hist("tether.task.tokens", "{token}",
                                "Tokens (input + output) per task (run).",
                                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.task_cost = hist("tether.task.cost", "{USD}", "Model cost per task (run).",
                              explicit_bucket_boundaries_advisory=COST_BUCKETS)
        self.thinking = hist("tether.task.thinking.duration", "s",
                             "Time a task spent in model calls.",
                             explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.acting = hist("tether.task.tool.duration", "s",
                           "Time a task spent in tool calls and sandbox execs.",
                           explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.thought_to_action = hist(
            "tether.task.thought_to_action", "1", "Model calls per action in a task.",
            explicit_bucket_boundaries_advisory=RATIO_BUCKETS)
        self.plan_fidelity = hist(
            "tether.task.plan_fidelity", "1", "Tool calls run / planned, in a task with a plan.",
            explicit_bucket_boundaries_advisory=RATIO_BUCKETS)
        self.context_pressure = hist(
            "tether.context.pressure", "1",
            "Prompt tokens / the model's context window, per model call.",
            explicit_bucket_boundaries_advisory=RATIO_BUCKETS)
        self.interventions = count("tether.loop.interventions", "{intervention}",
                                   "Loop interventions the guards applied.")
        self.halts = count("tether.guard.halts", "{run}", "Runs a guard halted, by guard.")

    def record_run(self, events: Sequence[Event], *,
                   context_windows: Mapping[str, int] | None = None) -> bool:
        """Record the metrics of a run's journal if it ended (see the module's docstring);
        False, recording nothing, while it has not."""
        events = list(events)
        ends = [e.seq for e in events if e.kind in v.RUN_ENDS]
        if not ends or _retried_after(events, ends[-1]):
            return False  # running, or queued again since its last end: the next end records
        previous = ends[-2] if len(ends) > 1 else 0
        facts = run_facts(events, after_seq=previous)
        self.record_facts(facts, context_windows=context_windows)
        return True

    def record_facts(self, facts: RunFacts, *,
                     context_windows: Mapping[str, int] | None = None) -> None:
        who = {"tether.agent": facts.agent, "tether.tenant": facts.tenant}
        for m in facts.models:
            provider, requested = split_model(m.model)
            attrs: dict[str, Any] = {
                **who, "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                "gen_ai.request.model": requested,
                "gen_ai.response.model": split_model(m.response_model)[1]}
            if m.duration_s is not None:
                failed = {"error.type": m.error_type} if m.error_type else {}
                self.operation_duration.record(m.duration_s, {**attrs, **failed})
            if m.error_type is None:
                self.token_usage.record(m.input_tokens, {**attrs, "gen_ai.token.type": "input"})
                self.token_usage.record(m.output_tokens,
                                        {**attrs, "gen_ai.token.type": "output"})
                window = context_window(m.model, context_windows)
                if window:
                    self.context_pressure.record(m.input_tokens / window, {
                        **who, "gen_ai.request.model": requested})
        for t in facts.tools:
            attrs = {**who, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": t.tool,
                     "tether.tool.outcome": t.outcome}
            if t.error_type:
                attrs["error.type"] = t.error_type
            self.tool_calls.add(1, attrs)
            if t.duration_s is not None and t.outcome != "refused":
                self.tool_duration.record(t.duration_s, attrs)
        if facts.loop_interventions:
            self.interventions.add(facts.loop_interventions, who)
        for guard in facts.halts:
            self.halts.add(1, {**who, "tether.guard": guard})
        self._record_task(facts, who, context_windows)

    def _record_task(self, facts: RunFacts, who: dict[str, Any],
                     context_windows: Mapping[str, int] | None) -> None:
        k = agent_kpis(facts.agent, [facts], context_windows)
        self.task_runs.add(1, {**who, "tether.run.status": facts.status or "unfinished"})
        self.task_tokens.record(k.tokens_in + k.tokens_out, who)
        if k.cost_usd is not None:
            self.task_cost.record(k.cost_usd, who)
        self.thinking.record(k.thinking_s, who)
        self.acting.record(k.tool_s, who)
        if k.thought_to_action is not None:
            self.thought_to_action.record(k.thought_to_action, who)
        if k.plan_fidelity is not None:
            self.plan_fidelity.record(k.plan_fidelity, who)


def _retried_after(events: list[Event], end_seq: int) -> bool:
    return any(e.kind == v.RUN_RETRIED and e.seq > end_seq for e in events)


_RECORDERS: weakref.WeakKeyDictionary[Any, MetricsRecorder] = weakref.WeakKeyDictionary()


def recorder_for(meter_provider: MeterProvider | None = None) -> MetricsRecorder:
    """One recorder (one set of instruments) per meter provider; None: the global provider."""
    from opentelemetry import metrics

    provider = meter_provider or metrics.get_meter_provider()
    recorder = _RECORDERS.get(provider)
    if recorder is None:
        recorder = _RECORDERS[provider] = MetricsRecorder(provider)
    return recorder


def record_run_metrics(events: Sequence[Event], *, meter_provider: MeterProvider | None = None,
                       context_windows: Mapping[str, int] | None = None) -> bool:
    """Record a run's metrics from its journal if it ended; False (nothing recorded) if not.

    Call it once per end of a run — the live exporter (`export_metrics_live`) does, in the
    process that ended the run — not for every look at a journal: a metric is a sum, and two
    calls for one end count that run twice."""
    return recorder_for(meter_provider).record_run(events, context_windows=context_windows)
