"""Finding which artifacts stored blobs still mention (what a sweep may not delete), page by
page through events, runs and signals, on both backends."""

from __future__ import annotations

import hashlib

import pytest

from tether.store import NewEvent, RunRecord, Store, dumps
from tether.store import _artifact_refs as refs


def _digest(i: int) -> str:
    return hashlib.sha256(f"artifact {i}".encode()).hexdigest()


def test_mentions_are_found_in_every_kind_of_blob_across_pages(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refs, "_PAGE", 3)  # many pages from a few rows
    d = [_digest(i) for i in range(8)]
    for n in range(7):  # runs without mentions, then events: the mentions are on later pages
        store.write(lambda tx, n=n: tx.insert_run(RunRecord(
            id=f"r{n}", agent="m:a", status="queued", input={"n": n}, root_id=f"r{n}")))
    store.write(lambda tx: tx.insert_run(RunRecord(
        id="r9", agent="m:a", status="queued", root_id="r9", input={"file": d[0]},
        options={"nested": [{"x": f"prefix {d[1]} suffix"}]})))
    store.write(lambda tx: tx.append_events("r9", [
        NewEvent(i + 1, "step_completed", str(i), "s", dumps({"n": i}), 1.0 + i)
        for i in range(7)] + [NewEvent(8, "step_completed", "8", "s",
                                       dumps({"manifest": {"a.csv": d[2]}}), 9.0)]))
    store.write(lambda tx: tx.insert_signal("r9", "go", dumps([d[3]])))
    # not a mention: part of a longer hex word, or in upper case
    store.write(lambda tx: tx.insert_signal("r9", "x", dumps(["f" + d[4], d[5].upper()])))
    assert store.mentioned_artifacts(set(d)) == {d[0], d[1], d[2], d[3]}
    assert store.write(lambda tx: tx.mentioned_artifacts(set(d))) == {d[0], d[1], d[2], d[3]}
    assert store.mentioned_artifacts(set()) == set()
