"""One tenant-name rule everywhere a tenant is named: a run queued under a name no API key,
worker queue or MCP server accepts would belong to nobody who can see it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tether import Context, Tether
from tether.runtime import InvalidInput, WorkerQueue
from tether.server.keys import ApiKeys, KeyRequestError

BAD = ["a b", " acme", "", "-acme", "x" * 65, "acme/eu", "acmé"]
GOOD = ["acme", "acme-eu", "acme.eu_2", "A", "x" * 64]


async def spawns_into(ctx: Context, tenant: str) -> Any:
    child = await ctx.spawn("tests.runtime.agents_core:sequential", 1, tenant=tenant)
    return await child


@pytest.mark.parametrize("bad", BAD)
def test_every_entry_refuses_the_same_names(tmp_path: Path, bad: str) -> None:
    t = Tether(tmp_path / "t.db")
    try:
        with pytest.raises(InvalidInput, match="is not a tenant name"):
            t.submit("tests.runtime.agents_core:sequential", 1, tenant=bad)
        assert t.store.list_runs(limit=5) == []
    finally:
        t.close()
    with pytest.raises(ValueError, match="in the worker's queue: a tenant is 1-64"):
        WorkerQueue.of(tenants=[bad])
    with pytest.raises(KeyRequestError, match="invalid tenant"):
        ApiKeys.check(bad, "viewer")


@pytest.mark.parametrize("good", GOOD)
def test_and_accept_the_same_names(tmp_path: Path, good: str) -> None:
    t = Tether(tmp_path / "t.db")
    try:
        assert t.submit("tests.runtime.agents_core:sequential", 1, tenant=good)
    finally:
        t.close()
    assert WorkerQueue.of(tenants=[good]).tenants == {good}
    ApiKeys.check(good, "viewer")


async def test_a_child_spawned_into_a_bad_tenant_fails_its_parent(tmp_path: Path) -> None:
    t = Tether(tmp_path / "t.db")
    try:
        rec = await t.run(spawns_into, "a b")
        assert rec.status == "failed"
        assert "ctx.spawn(tenant=...) 'a b' is not a tenant name" in (rec.error or "")
        assert [r.id for r in t.store.list_runs(limit=5)] == [rec.id]  # no child was created
        rec = await t.run(spawns_into, "acme")
        assert rec.status == "succeeded"
    finally:
        t.close()
