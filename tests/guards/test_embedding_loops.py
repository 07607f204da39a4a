"""The numpy MiniLM embedder and the loop detector (with the real embedder)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tether.guards._minilm_numpy import _erf, _gelu
from tether.guards.embedding import Embedder, MiniLMEmbedder
from tether.guards.errors import LoopHalt
from tether.guards.loops import LoopConfig, LoopDetector, normalise_error

from .e2e_support import STUCK


def test_erf_matches_math_erf():
    xs = np.linspace(-6, 6, 2001)
    assert max(abs(float(_erf(xs)[i]) - math.erf(float(x))) for i, x in enumerate(xs)) < 2e-7


def test_gelu_matches_the_exact_erf_form():
    xs = np.linspace(-9, 9, 4001).astype(np.float32)
    got = _gelu(xs)
    assert got.dtype == np.float32
    exact = [float(x) * 0.5 * (1.0 + math.erf(float(x) / math.sqrt(2.0))) for x in xs]
    # within float32 rounding of the result (half an ulp of 9 is 4.8e-7)
    assert max(abs(float(g) - e) for g, e in zip(got, exact, strict=True)) < 6e-7


def test_embeddings_are_normalised_and_semantic(embedder):
    assert isinstance(embedder, Embedder)
    v = embedder.embed([
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
    ])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    # sentence-transformers gives 0.7553 for this pair with all-MiniLM-L6-v2
    assert abs(sims[0, 1] - 0.7553) < 2e-3
    assert sims[0, 2] < 0.2


def test_batch_equals_single_despite_padding(embedder):
    texts = ["short", "a considerably longer sentence with many more tokens in it"]
    batch = embedder.embed(texts)
    single = np.stack([embedder.embed([t])[0] for t in texts])
    assert np.abs(batch - single).max() < 1e-5


def test_embed_rejects_a_bare_string(embedder):
    with pytest.raises(TypeError):
        embedder.embed("text")  # type: ignore[arg-type]
    assert embedder.embed([]).shape == (0, 384)


def test_repeated_tool_call_intervenes_then_halts():
    d = LoopDetector()
    assert d.observe_tool_call("search", {"q": "x", "n": 1}) is None
    assert d.observe_tool_call("search", {"n": 1, "q": "x"}) is None  # key order irrelevant
    iv = d.observe_tool_call("search", {"q": "x", "n": 1})
    assert iv is not None and iv.kind == "repeated_call"
    assert iv.replan and iv.temperature_delta > 0 and iv.trim_history_to > 0
    assert "called 3 times" in iv.message
    with pytest.raises(LoopHalt) as exc:
        d.observe_tool_call("search", {"q": "x", "n": 1})
    assert exc.value.details["kind"] == "repeated_call"


def test_intervention_that_works_disarms():
    d = LoopDetector(config=LoopConfig(repeat_calls=2, max_interventions=2))
    d.observe_tool_call("a", {})
    assert d.observe_tool_call("a", {}) is not None
    assert d.observe_tool_call("b", {}) is None  # the agent changed course
    assert d.observe_tool_call("a", {}) is not None  # second (last allowed) intervention
    with pytest.raises(LoopHalt):
        d.observe_tool_call("a", {})


def test_repeated_error_with_varying_numbers():
    d = LoopDetector()
    assert normalise_error("timeout after 30s at 0x7f3a") == normalise_error(
        "timeout after 31s at 0x7f3b")
    d.observe_error("connection refused (attempt 1)")
    d.observe_error("connection refused (attempt 2)")
    assert d.observe_error("connection refused (attempt 3)") is not None
    with pytest.raises(LoopHalt):
        d.observe_error("connection refused (attempt 4)")


def test_semantic_loop_needs_a_full_window(embedder):
    d = LoopDetector(embedder)
    for t in STUCK[:4]:
        assert d.observe_thought(t) is None
    iv = d.observe_thought(STUCK[4])
    assert iv is not None and iv.kind == "semantic_loop"
    assert all(s >= 0.95 for s in d.thought_similarities())
    with pytest.raises(LoopHalt):
        d.observe_thought(STUCK[5])


def test_varied_thoughts_do_not_trigger(embedder):
    d = LoopDetector(embedder)
    for t in ["Search for the weather in Paris.", "The result says 18 degrees and sunny.",
              "Now convert 18 Celsius to Fahrenheit.", "That is 64.4 degrees Fahrenheit.",
              "Write the final answer for the user.", "Done: it is sunny and 64F in Paris."]:
        assert d.observe_thought(t) is None


def test_semantic_loop_recovers_after_intervention(embedder):
    d = LoopDetector(embedder)
    for t in STUCK[:4]:
        d.observe_thought(t)
    assert d.observe_thought(STUCK[4]) is not None
    assert d.observe_thought("Different approach: read the cached forecast file instead.") is None


def test_single_text_cache_returns_equal_independent_copies(embedder):
    text = "a sentence that is embedded twice for the cache test"
    first = embedder.embed([text])
    first[0, 0] = 123.0  # a caller mutating its result must not poison the cache
    again = embedder.embed([text])
    fresh = embedder._embed([text])
    assert again[0, 0] != 123.0
    assert np.abs(again - fresh).max() < 1e-6


SENTENCES = [
    "A man is eating food.",
    "short",
    "The weather in Paris is sunny; I should check it again to be sure, attempt 7.",
    "a considerably longer sentence with many more tokens in it, padded next to a short one",
]


def test_onnxruntime_and_numpy_backends_give_the_same_vectors(embedder):
    # the default embedder runs on ONNX Runtime (installed by `make setup`); numpy is the
    # reference it must match, batched (with padding) and single
    assert embedder.backend == "onnxruntime"
    reference = MiniLMEmbedder(backend="numpy", cache_size=0)
    assert reference.backend == "numpy"
    want = reference.embed(SENTENCES)
    got = embedder.embed(SENTENCES)
    assert np.abs(got - want).max() < 1e-5
    for text, row in zip(SENTENCES, want, strict=True):
        assert np.abs(embedder.embed([text])[0] - row).max() < 1e-5


def test_an_unknown_backend_is_named_in_the_error():
    with pytest.raises(ValueError, match="unknown embedder backend 'torch'"):
        MiniLMEmbedder(backend="torch").embed(["x"])  # type: ignore[arg-type]
