"""A child-run depth limit that cannot mean anything is refused where it is given, not at the
first child (whose error would blame the child)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether import Tether
from tether.runtime import InvalidInput


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_a_meaningless_max_depth_is_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(InvalidInput, match="max_depth must be a whole number of 0 or more"):
        Tether(tmp_path / "a.db", max_depth=bad)  # type: ignore[arg-type]
    t = Tether(tmp_path / "b.db")
    try:
        with pytest.raises(InvalidInput, match=f"not {bad!r}"):
            t.submit("tests.runtime.agents_core:sequential", {}, max_depth=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match=f"not {bad!r}"):  # as the worker reads it
            t.submit("tests.runtime.agents_core:sequential", {}, options={"max_depth": bad})
        assert t.store.list_runs(limit=5) == []
    finally:
        t.close()


async def test_a_client_wide_limit_of_zero_means_no_children(tmp_path: Path) -> None:
    from . import agents_core as A

    t = Tether(tmp_path / "z.db", max_depth=0)  # 0 was read as "unset" and became 8
    try:
        rec = await t.run(A.recursive, 0)
        assert rec.status == "failed"
        assert [r.depth for r in t.store.list_runs(limit=10)] == [0]
        assert "the maximum depth is 0" in (rec.error or "")
    finally:
        t.close()
