"""`ToolGateway`: a model-proposed tool call, decided, approved, answered or run with retries.

Every proposal becomes one `tool:<name>` step per attempt, and the gateway's `ToolVerdict` rides
in that step's `Effect.meta`; when the call must not run (arguments that cannot be judged,
denial, denied approval, honeypot, open circuit breaker), the interceptor answers the step with
`ShortCircuit` and the tool is never called.

The policy, the approvers (the digest they sign) and the tool all see one set of arguments: the
proposal parsed strictly, unmasked, validated and coerced by the tool, paths resolved
(`PolicyGate.prepare`). The tool is handed exactly those; its own validation of them is a no-op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.guards._approval_wait import await_approval
from tether.guards._config import GuardConfig
from tether.guards._pii_release import release_pii
from tether.guards._policygate import ARGUMENTS_RULE, PolicyGate
from tether.guards._state import RunStates
from tether.guards._steps import GUARD_STEP, RETRYABLE, TOOL_STEP
from tether.guards._verdict import ToolVerdict, tool_answer
from tether.guards.policy import PolicyDecision
from tether.tools import ToolError, ToolResult
from tether.tools.effect import effect_meta

if TYPE_CHECKING:
    from tether.runtime import Context
    from tether.tools import ToolRegistry


class ToolGateway:
    def __init__(self, config: GuardConfig, states: RunStates, gate: PolicyGate) -> None:
        self.config = config
        self.states = states
        self.gate = gate

    async def call(self, ctx: Context, registry: ToolRegistry, name: str,
                   arguments: Any) -> ToolResult:
        """The body of `Guards.tool` (see there), once the registry is known."""
        st = self.states.of(ctx)
        try:
            proposed = self.gate.parse(name, arguments)
        except ToolError as exc:
            return await _refuse_arguments(ctx, registry, name, _journal_form(arguments), exc,
                                           st.verdicts)
        # the tool gets the real values of the PII kinds the policy grants it; the model never
        release = release_pii(self.gate, st.policy, st.masker, st.vault, name, proposed,
                              registry)
        args = release.arguments
        tool = self.gate.lookup(name, registry)  # once for the call: prepared and judged alike
        try:
            args = self.gate.prepare(st.policy, name, args, tool=tool)
        except ToolError as exc:
            return await _refuse_arguments(ctx, registry, name, args, exc, st.verdicts)
        if st.policy is not None and st.policy.path_args(name):
            # resolved paths depend on the filesystem of the moment: journaled, so a replay
            # decides on (and hands the tool) the paths the live run judged
            resolved = args
            args = await ctx.step(f"{GUARD_STEP}paths:{name}", lambda: resolved, pure=True)
        decision = self.gate.judge(st.policy, name, args, tool=tool)
        policy = decision.to_json()
        if decision.action == "deny":
            return await _answer(ctx, registry, args, ToolVerdict(name, policy, tool_answer(
                name, "policy", ok=False, error_type="policy_denied",
                message=f"denied by policy rule '{decision.rule}': {decision.reason}"),
                "policy"), st.verdicts)
        if decision.action == "honeypot":
            result = await _answer(ctx, registry, args, ToolVerdict(name, policy, tool_answer(
                name, "honeypot", ok=True, output={"status": "ok"}), "honeypot"), st.verdicts)
            flag = {"flag": "honeypot", "tool": name, "rule": decision.rule}
            reason = f"honeypot tool '{name}' was called"
            st.flags.append({"reason": reason, **flag})
            ctx.flag(reason, **flag)  # `tether runs --flagged` lists the run
            return result
        if decision.action == "approve":
            denied = await await_approval(ctx, self.config.approvers, st, name, args, decision,
                                          tool.version if tool is not None else None)
            if denied is not None:
                return await _answer(ctx, registry, args, ToolVerdict(name, policy, tool_answer(
                    name, "approval", ok=False, error_type="approval_denied", message=denied),
                    "approval"), st.verdicts)
        retry = self.config.retry
        attempt = 0
        while True:
            attempt += 1
            # the interceptor journals this decision with the step, and consults the tool's
            # circuit breaker: while it is open, the step is answered `tool_unavailable`
            verdict = ToolVerdict(name, {**policy, "via": "gateway", "attempt": attempt})
            st.retrying = attempt > 1
            # an in-doubt call's start records its arguments: as the model proposed them (PII
            # masked), not as released to the tool
            meta = verdict.attach({"arguments": proposed}, st.verdicts)
            try:
                # the verdict rides in the step's own meta (the interceptor takes it out)
                # exactly the version judged (and approved), even if the registry has gained a
                # newer one since
                result = await ctx.tool(registry, name, args or {}, meta=meta,
                                        version=tool.version if tool is not None else None)
            finally:
                st.retrying = False
                ToolVerdict.withdraw(st.verdicts, meta)
            failed = not result.ok and result.error is not None and \
                result.error.type in RETRYABLE
            if failed and result.error is not None and result.error.type == "timeout" and \
                    not (tool is not None and (tool.idempotent or tool.accepts_idempotency_key)):
                # a timed-out call may still act (a thread cannot be stopped): calling a tool
                # that is not safe to repeat again could act twice
                failed = False
            if not failed or retry is None or not retry.should_retry(attempt):
                return release.mask_output(result)  # what the call saw unmasked stays hidden
            # each attempt and each back-off timer is journaled: after a crash the count goes on
            await ctx.sleep(retry.delay(attempt, seed=f"{ctx.run_id}:{name}:{attempt}"))


async def _refuse_arguments(ctx: Context, registry: ToolRegistry, name: str, args: Any,
                            exc: Exception, issued: dict[int, Any]) -> ToolResult:
    """Arguments the policy cannot judge as the tool would receive them: the step is answered
    `invalid_arguments` with the reason, so the model can correct the call."""
    decision = PolicyDecision("deny", ARGUMENTS_RULE, f"the arguments cannot be judged: {exc}",
                              name)
    return await _answer(ctx, registry, args, ToolVerdict(name, decision.to_json(), tool_answer(
        name, "arguments", ok=False, error_type="invalid_arguments", message=str(exc)),
        "arguments"), issued)


def _journal_form(arguments: Any) -> Any:
    """Unparsable arguments as the step records them (JSON-safe)."""
    if isinstance(arguments, bytes):
        return arguments.decode("utf-8", "replace")
    if arguments is None or isinstance(arguments, dict | list | str | int | float | bool):
        return arguments
    return repr(arguments)


async def _answer(ctx: Context, registry: ToolRegistry, args: Any, verdict: ToolVerdict,
                  issued: dict[int, Any]) -> ToolResult:
    """The proposal's tool step, answered by the guards instead of the tool (`issued`: the
    run's `RunGuardState.verdicts`)."""
    answer = verdict.answer
    assert answer is not None
    try:
        meta = effect_meta(registry.get(verdict.tool))
    except Exception:
        meta = {"kind": "tool", "tool": verdict.tool}

    def answered(_arguments: Any) -> dict[str, Any]:
        # never the tool: runs only if no GuardInterceptor answered (fails closed)
        return answer

    attached = verdict.attach(meta, issued)
    try:
        data = await ctx.step(TOOL_STEP + verdict.tool, answered, args, idempotent=True,
                              meta=attached)
    finally:
        ToolVerdict.withdraw(issued, attached)
    return ToolResult.model_validate(data)
