"""The ids of the runs workers execute: a run submitted with an id of the caller's choosing is
a root, and a root's id has no '.' (a child's id is its parent's id + '.KEY', and the store's
shards and run-id prefix lookups read everything after the first '.' as a child's)."""

from __future__ import annotations

import pytest

from tether import InvalidInput, Tether
from tether.store.shards import root_key

from . import agents_core as A


@pytest.mark.parametrize("run_id", ["acme.1", "r1.", ".r1"])
def test_a_submitted_run_id_with_a_dot_is_refused_before_anything_is_queued(
        tether: Tether, run_id: str) -> None:
    with pytest.raises(InvalidInput, match=r"may not have a '\.' in its id; a child run's id is "
                                           r"its parent's id \+ '\.KEY'") as refused:
        tether.submit(A.tree_parent, None, run_id=run_id)
    assert repr(run_id) in str(refused.value)
    assert "choose an id without '.'" in str(refused.value)
    assert tether.store.list_runs() == []


async def test_a_root_id_without_a_dot_is_kept_and_its_children_extend_it(
        tether: Tether) -> None:
    run_id = tether.submit(A.tree_parent, None, run_id="acme-1")
    assert run_id == "acme-1"
    record = await tether.drive(run_id)
    assert record.status == "waiting"  # for its three children
    kids = tether.store.list_runs(parent_id=run_id)
    assert len(kids) == 3
    assert all(k.id.startswith("acme-1.") and root_key(k.id) == "acme-1" for k in kids)
