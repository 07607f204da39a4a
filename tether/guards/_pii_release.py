"""Which PII a tool call receives unmasked, and what of it may come back to the model.

The model only ever sees placeholders (`[EMAIL_1]`); a tool call fills them in only for the kinds
the policy grants that call: `pii: [email]` on the rule that allows or approves it. Nothing is
granted by default, for the same reason tools are denied by default: a hostile model would
otherwise hand the value to any tool that transforms it and read it back, e.g.
`SELECT hex('[EMAIL_1]')` on a SQL tool returns the address hex-encoded, which no PII pattern
recognizes. With a tenant and an agent policy (`PolicySet`) both must grant a kind.

The grant is judged on the arguments the tool will receive: placeholders of the kinds some rule
for this tool could grant are filled in, the policy decides on those arguments, and the kinds
the deciding rules (the allow/approve rules that matched) do not grant are masked again, until
the two agree. A rule whose conditions only the real value satisfies (`to: {regex: '@corp'}`)
thus grants the kind only when it really allows the call; a call the policy refuses on the real
values (a `deny` rule on the recipient) is refused on them, so it is not sent to a placeholder
instead.

The output of a call that received unmasked values is sensitive: before the agent (and so the
model) gets it, it is masked as usual, then every piece of it that reveals one of the released
values, in any case, reversed, or decoded from hex, base64, URL or HTML escapes or character
codes, is masked too. If the values can still be read across its parts (one piece per row), the
whole output is withheld.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tether.guards._pii_derived import Known, reveal_spans
from tether.guards.errors import PolicyLoadError
from tether.guards.pii import (
    BUILTIN_KINDS,
    PLACEHOLDER,
    PiiMasker,
    Vault,
    replace_spans,
    strings_in,
)
from tether.guards.policy import Policy, PolicySet

if TYPE_CHECKING:
    from tether.guards._policygate import PolicyGate
    from tether.tools import ToolRegistry, ToolResult

WITHHELD = "[withheld: this output reveals personal data the tool was given unmasked]"
_GRANTING = ("allow", "approve")


def _policies(policy: Policy | PolicySet | None) -> tuple[Policy, ...]:
    if policy is None:
        return ()
    return tuple(policy.policies) if isinstance(policy, PolicySet) else (policy,)


def _every(sets: Iterable[frozenset[str]]) -> frozenset[str]:
    """The kinds every policy grants (none without a policy)."""
    result: frozenset[str] | None = None
    for s in sets:
        result = s if result is None else result & s
    return result or frozenset()


def candidate_kinds(policy: Policy | PolicySet | None, name: str) -> frozenset[str]:
    """The kinds some allow/approve rule for tool `name` could grant, in every policy."""
    return _every(p.for_tool(name).pii for p in _policies(policy))


def granted_kinds(gate: PolicyGate, policy: Policy | PolicySet | None, name: str, args: Any,
                  registry: ToolRegistry | None = None) -> frozenset[str] | None:
    """The kinds the rules that allow or approve calling `name` with `args` grant, in every
    policy; None when a policy refuses the call (deny, honeypot)."""
    per_policy: list[frozenset[str]] = []
    for p in _policies(policy):
        decision = gate.decide(p, name, args, registry)
        if decision.action not in _GRANTING:
            return None
        matched = {t.rule for t in decision.trace if t.outcome == "matched"}
        per_policy.append(frozenset(k for r in p.rules if r.id in matched
                                    and r.effect in _GRANTING for k in r.pii))
    return _every(per_policy)


def placeholder_kinds(value: Any) -> frozenset[str]:
    """The kinds (lower-case labels) of the placeholders anywhere in a JSON value."""
    return frozenset(m.group(1).lower() for text in strings_in(value)
                     for m in PLACEHOLDER.finditer(text))


@dataclass
class PiiRelease:
    """One tool call's arguments with the granted placeholders filled in, and what that
    exposes to the tool."""

    arguments: Any
    kinds: frozenset[str]
    released: dict[str, Known] = field(default_factory=dict)
    masker: PiiMasker | None = None
    vault: Vault | None = None

    def mask_output(self, result: ToolResult) -> ToolResult:
        """`result` as the agent may pass it on to the model (unchanged when nothing was
        released: the model call masks it as any other message)."""
        if not self.released or self.masker is None or self.vault is None:
            return result
        masker, vault, knowns = self.masker, self.vault, list(self.released.values())
        output = mask_sensitive(result.output, masker, vault, knowns)
        update: dict[str, Any] = {"output": output}
        if result.error is not None:
            message = mask_sensitive(result.error.message, masker, vault, knowns)
            update["error"] = result.error.model_copy(update={"message": message})
        return result.model_copy(update=update)


def release_pii(gate: PolicyGate, policy: Policy | PolicySet | None, masker: PiiMasker,
                vault: Vault, name: str, proposed: Any,
                registry: ToolRegistry | None = None) -> PiiRelease:
    """The arguments tool `name` receives: placeholders filled in for the kinds the policy
    grants this call, judged on those very arguments (see the module doc)."""
    kinds = candidate_kinds(policy, name)
    if not kinds or not len(vault):
        # nothing this tool may be granted, or nothing to fill in: what the loop below returns
        # for these, without walking the arguments
        return PiiRelease(proposed, frozenset())
    kinds &= placeholder_kinds(proposed)
    while True:
        args, released = vault.release(proposed, kinds)
        if not released:
            return PiiRelease(proposed, frozenset())
        granted = granted_kinds(gate, policy, name, args, registry)
        if granted is None:
            # refused on the values the model meant (a deny rule matched the real address):
            # the gateway refuses these very arguments, and the tool never runs
            return PiiRelease(args, kinds, released, masker, vault)
        if kinds <= granted:
            return PiiRelease(args, kinds, released, masker, vault)
        kinds &= granted  # strictly smaller: this ends


# -------------------------------------------------------------------- the tool's output
def mask_sensitive(value: Any, masker: PiiMasker, vault: Vault,
                   knowns: Sequence[Known]) -> Any:
    """The output of a call that received `knowns`: every part masked as usual and for any
    disguise of a piece of them; withheld whole if they can still be read across parts."""
    masked = _mask_parts(value, masker, vault, knowns)
    strings: list[str] = []
    _collect_strings(masked, strings)
    serialized = orjson.dumps(masked, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    if reveal_spans("".join(strings), knowns, fragments=True) \
            or reveal_spans(serialized, knowns, fragments=True):
        return WITHHELD
    return masked


def _mask_parts(value: Any, masker: PiiMasker, vault: Vault, knowns: Sequence[Known]) -> Any:
    if isinstance(value, str):
        return _mask_text(value, masker, vault, knowns)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        hidden = reveal_spans(str(value), knowns, fragments=True)
        return vault.placeholder_for(hidden[0][2].label, str(value)) if hidden else value
    if isinstance(value, list | tuple):
        return [_mask_parts(v, masker, vault, knowns) for v in value]
    if isinstance(value, dict):
        return {_mask_text(str(k), masker, vault, knowns): _mask_parts(v, masker, vault, knowns)
                for k, v in value.items()}
    return _mask_text(str(value), masker, vault, knowns)


def _mask_text(text: str, masker: PiiMasker, vault: Vault, knowns: Sequence[Known]) -> str:
    masked = masker.mask(text, vault)[0]
    keep = [m.span() for m in PLACEHOLDER.finditer(masked)]
    spans: list[tuple[str, int, int]] = []
    for s, e, known in sorted(reveal_spans(masked, knowns, fragments=True),
                              key=lambda t: (t[0], -t[1])):
        if spans and s < spans[-1][2]:
            spans[-1] = (spans[-1][0], spans[-1][1], max(spans[-1][2], e))
            continue
        spans.append((known.label, s, e))
    spans = [sp for sp in spans if not any(sp[1] < ke and ks < sp[2] for ks, ke in keep)] \
        if keep else spans
    return replace_spans(masked, spans, vault)[0] if spans else masked


def _collect_strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for v in value:
            _collect_strings(v, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(str(k))
            _collect_strings(v, out)


# ------------------------------------------------------------------- configuration check
def check_pii_grants(policies: Iterable[Policy | PolicySet | None],
                     custom_labels: Iterable[str]) -> None:
    """Every kind a rule grants is one the masker produces (a typo would silently grant
    nothing). Raises `PolicyLoadError` naming the rule and its line."""
    known = BUILTIN_KINDS | {label.lower() for label in custom_labels}
    for policy in policies:
        for p in _policies(policy):
            for rule in p.rules:
                for kind in rule.pii:
                    if kind not in known:
                        raise PolicyLoadError(
                            f"rule '{rule.id}': pii kind '{kind}' is not one the masker "
                            f"produces (built in: {', '.join(sorted(BUILTIN_KINDS))}; custom "
                            "kinds come from GuardConfig.pii_patterns labels)",
                            rule.line or None, p.source)
