"""The loop detector given the fingerprint the guards took when a call started
(`observe_tool_call(..., fingerprint=...)`) counts exactly as when it computes it: the same
repeats, the same intervention, the same halt."""

from __future__ import annotations

import pytest

from tether.guards import LoopDetector, LoopHalt
from tether.guards.loops import call_fingerprint


@pytest.mark.parametrize("given", [False, True])
def test_a_given_fingerprint_counts_as_a_computed_one(given: bool) -> None:
    detector = LoopDetector()
    args = {"q": "Weather in  Paris", "page": 1.0}
    fingerprint = call_fingerprint("search", args) if given else None
    outcomes = [detector.observe_tool_call("search", args, fingerprint=fingerprint)
                for _ in range(2)]
    assert outcomes == [None, None]
    assert detector.repeats(call_fingerprint("search", {"q": "weather in paris", "page": 1}))\
        == 2
    intervention = detector.observe_tool_call("search", args, fingerprint=fingerprint)
    assert intervention is not None and intervention.kind == "repeated_call"
    assert "called 3 times" in intervention.evidence
    with pytest.raises(LoopHalt):
        detector.observe_tool_call("search", args, fingerprint=fingerprint)
