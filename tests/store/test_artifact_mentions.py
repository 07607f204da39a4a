"""Which artifacts stored blobs mention, both ways a store looks: a few candidates (a deletion's)
by the database's own substring search, many (a prune's) by reading every blob once. The two
must agree, on both backends, in and out of a transaction."""

from __future__ import annotations

import hashlib
import time

from tether.store import NewEvent, RunRecord, Store, dumps
from tether.store._artifact_refs import SEARCHED_MAX


def _fake(i: int) -> str:
    return hashlib.sha256(f"never stored {i}".encode()).hexdigest()


def test_a_few_and_many_candidates_are_found_alike(store: Store) -> None:
    in_event, in_input, in_signal, nowhere = (store.put_artifact(f"blob {i}".encode())
                                              for i in range(4))
    store.write(lambda tx: tx.insert_run(RunRecord(
        id="r1", agent="m:f", status="succeeded", input={"file": in_input}, root_id="r1")))
    store.write(lambda tx: tx.append_events("r1", [NewEvent(
        1, "step_completed", "1", "keep", dumps({"report.csv": in_event}), time.time())]))
    store.write(lambda tx: tx.insert_signal("r1", "go", dumps({"attach": [in_signal]})))
    few = {in_event, in_input, in_signal, nowhere}
    many = few | {_fake(i) for i in range(SEARCHED_MAX)}
    assert len(few) <= SEARCHED_MAX < len(many)
    expected = {in_event, in_input, in_signal}

    assert store.mentioned_artifacts(few) == expected  # searched by the database
    assert store.mentioned_artifacts(many) == expected  # every blob read
    assert store.write(lambda tx: tx.mentioned_artifacts(few)) == expected
    assert store.write(lambda tx: tx.mentioned_artifacts(many)) == expected
    later = store.now() + 60
    assert store.mentioned_artifacts(few, since=later) == set()
    assert store.mentioned_artifacts(many, since=later) == set()
