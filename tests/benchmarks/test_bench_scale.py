"""`make bench-scale` and `make bench-dbos` at toy sizes, on both stores, so the scripts cannot rot:
worker processes execute every submitted step exactly once, the growth window tops a store up and
reports memory, the reports render. DBOS's side runs only where its venv exists (`make
bench-dbos-venv`; it is a benchmark tool, not a test dependency)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_dbos, bench_scale
from benchmarks.core.probes import machine
from benchmarks.scale import versus
from benchmarks.scale.dbs import fresh, unfinished
from benchmarks.scale.growth import top_up, window
from tests.store.pg_support import PgSchema

pytestmark = pytest.mark.slow  # worker processes, PostgreSQL


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield fresh("sqlite", "bench", tmp_path)
        return
    schema = PgSchema()
    try:
        yield schema.url
    finally:
        schema.drop()


def test_worker_processes_execute_every_step_once(url: str) -> None:
    result = versus.tether_workers(url, workers=2, runs=20, steps=2, sleep=0.0)
    assert sum(result["per_worker_steps"]) == 40  # counted by the workers, replays excluded
    assert unfinished(url) == 0
    assert result["steps_per_s"] > 0 and len(result["peak_rss_mb"]) == 2
    if url.startswith("postgresql://"):  # the server did the writes: its backends spent CPU
        assert result["server_cpu_per_step_us"] > 0


def test_growth_window_tops_up_and_reports_memory(url: str) -> None:
    assert top_up(url, 20, steps=2, sleep=0.0)["submitted"] == 20
    assert top_up(url, 20, steps=2, sleep=0.0)["submitted"] == 0  # already 20 in flight
    row = window(url, 1, warm_s=0.0, measure_s=0.2)
    assert row["in_flight"] == 20 and row["workers"] == 1
    report = row["reports"][0]
    assert report["peak_rss_mb"] >= report["baseline_rss_mb"] > 10
    assert unfinished(url) < 20  # the worker made progress (its first step opened the window)


def test_scale_run_and_report_render(tmp_path: Path) -> None:
    schema = PgSchema()
    try:
        urls = {"sqlite": fresh("sqlite", "scale", tmp_path), "postgres": schema.url}
        res = bench_scale.run(urls, [20, 40], [1], warm=0.0, measure=0.2, trace=3, steps=2,
                              sleep=0.0, executing=(2, 4))
    finally:
        schema.drop()
    assert [(r["store"], r["target"]) for r in res["rows"]] == [
        ("sqlite", 20), ("postgres", 20), ("sqlite", 40), ("postgres", 40)]
    top = res["traced"]["sqlite"]["reports"][0]["top"]
    assert len(top["held"]) == 3 and top["grew"]
    args: Any = type("Args", (), {"warm": 0.0, "measure": 0.2})
    text = bench_scale.report(res, machine(), {"fsync_p50_ms": 1.0}, args, 1.0,
                              ["load average 1", "load average 1"], "")
    assert "| sqlite | " in text and "| postgres | " in text
    assert "bytes per extra in-flight run" in text
    assert [r["concurrency"] for r in res["executing"]] == [2, 2, 4, 4]
    assert "KB per run a worker executes at once" in text


@pytest.mark.skipif(not versus.DBOS_PYTHON.exists(),
                    reason="DBOS venv absent: `make bench-dbos-venv` makes it")
def test_dbos_side_runs_every_workflow() -> None:
    schema = PgSchema()
    dbos_schema = f"dbos_{uuid.uuid4().hex[:12]}"
    try:
        result = versus.dbos(schema.server, runs=5, steps=2, sleep=0.0, schema=dbos_schema)
    finally:
        schema.execute(f"DROP SCHEMA IF EXISTS {dbos_schema} CASCADE")
        schema.drop()
    assert result["runs"] == 5 and result["steps_per_s"] > 0 and result["cpu_s"] > 0
    assert result["server_cpu_per_step_us"] >= 0


def test_dbos_report_states_the_ratio() -> None:
    def side(rate: float) -> dict[str, Any]:
        return {"steps_per_s": rate, "cpu_per_step_us": 1e6 / rate, "load1": 1.0,
                "server_cpu_per_step_us": 0.0, "total_cpu_per_step_us": 1e6 / rate}

    res = {"side": {"tether-postgres": [side(900.0)], "dbos": [side(300.0)],
                    "tether-sqlite": [side(1800.0)]},
           "workers": [{"store": "sqlite", "workers": 1, "steps_per_s": 10.0,
                        "cpu_per_step_us": 5.0, "server_cpu_per_step_us": 0.0,
                        "per_worker_steps": [40],
                        "peak_rss_mb": [50.0], "load1": 1.0}]}
    text = bench_dbos.report(res, machine(), {"fsync_p50_ms": 1.0}, 20, 2, 1, 1.0,
                             ["load average 1", "load average 1"], "")
    assert "median **3.0x** (target >= 3x: **met**)" in text
    assert "SQLite/PostgreSQL steps/s: 2.00x" in text
