"""`ModelGateway`: what the guards do around one model call (`Guards.model`).

Before it: apply a pending loop intervention (trim history, nudge, raise the temperature) and mask
PII, journaling the vault encrypted when it grew. After it: feed the response to the semantic
loop detector, whose intervention is applied before the next call (or which halts the run).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether.guards._config import GuardConfig, vault_key
from tether.guards._state import RunGuardState, RunStates
from tether.guards._steps import GUARD_STEP
from tether.guards.errors import LoopHalt, VaultError
from tether.runtime.errors import RunHalted

if TYPE_CHECKING:
    from tether.models import Model, ModelResponse
    from tether.runtime import Context


class ModelGateway:
    def __init__(self, config: GuardConfig, states: RunStates) -> None:
        self.config = config
        self.states = states

    async def call(self, ctx: Context, model: Model, messages: Sequence[Any], *,
                   pinned: int = 0, **kwargs: Any) -> ModelResponse:
        """The body of `Guards.model` (see there)."""
        from tether.models.messages import Message, as_messages

        config = self.config
        st = self.states.of(ctx)
        msgs = as_messages(list(messages))
        if st.pending is not None:
            iv, st.pending = st.pending, None
            msgs = trim_history(msgs, iv.trim_history_to, pinned)
            msgs.append(Message.user(iv.message))
            st.temperature_bump += iv.temperature_delta
            details = {k: v for k, v in iv.to_json().items() if k != "message"}
            ctx.log(f"loop intervention ({iv.kind}): {iv.message}", **details)
        if st.temperature_bump:
            base = float(kwargs.get("temperature", 0.0) or 0.0)
            kwargs["temperature"] = round(min(2.0, base + st.temperature_bump), 3)
        if config.pii:
            msgs = [mask_message(m, st) for m in msgs]
            await persist_vault(ctx, config, st)
        response: ModelResponse = await ctx.model(model, msgs, **kwargs)
        if response.text and response.text.strip():
            embedder = st.detector.embedder
            vec = None
            if embedder is not None:
                # ~10 ms of numpy: off the event loop, so other runs on this worker keep going
                vec = (await asyncio.to_thread(embedder.embed, [response.text]))[0]
            try:
                thought = None if vec is None else st.detector.observe_thought_vector(vec)
            except LoopHalt as exc:
                raise RunHalted(exc.reason, {"guard": "loop", **exc.details}) from None
            if thought is not None:
                st.pending = thought
        return response


async def persist_vault(ctx: Context, config: GuardConfig, st: RunGuardState) -> None:
    """Journal the vault, encrypted, whenever it grew (never in plaintext; without a key it
    is not stored at all and is rebuilt by re-masking on replay, which is deterministic)."""
    if len(st.vault) == st.sealed_entries:
        return
    st.sealed_entries = len(st.vault)
    try:
        key = vault_key(config)
    except VaultError:
        return
    blob = base64.b64encode(st.vault.seal(key, context=ctx.run_id)).decode()
    # a fact, not an effect: written once, skipped on replay (which re-masks anyway)
    ctx.annotate(f"{GUARD_STEP}vault", {"vault": blob, "entries": len(st.vault)})


def trim_history(msgs: list[Any], keep: int, pinned: int = 0) -> list[Any]:
    """Keep the prompt and the last `keep` messages, without splitting an assistant tool-call
    turn from its tool results. The prompt is the first `pinned` messages when the caller says
    how long it is (a strategy with few-shot examples: their turns precede the goal), else the
    system messages and the first user message (the goal)."""
    if pinned > 0:
        head, rest = list(msgs[:pinned]), list(msgs[pinned:])
    else:
        system = [m for m in msgs if m.role == "system"]
        rest = [m for m in msgs if m.role != "system"]
        if len(rest) <= keep + 1:
            return msgs
        head, rest = [*system, rest[0]], rest[1:]
    if len(rest) <= keep:
        return msgs
    tail = rest[-keep:] if keep else []
    while tail and tail[0].role == "tool":
        tail = tail[1:]
    return [*head, *tail]


def mask_message(m: Any, st: RunGuardState) -> Any:
    """The message with PII in its content and tool-call arguments replaced by placeholders."""
    update: dict[str, Any] = {}
    if m.content:
        update["content"] = st.masker.mask(m.content, st.vault)[0]
    if m.tool_calls:
        update["tool_calls"] = [
            tc.model_copy(update={"arguments": st.masker.mask_value(tc.arguments, st.vault)})
            for tc in m.tool_calls]
    return m.model_copy(update=update) if update else m
