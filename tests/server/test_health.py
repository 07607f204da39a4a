"""`GET /healthz` and `GET /readyz` of `tether serve`: asked without a key, they say whether the
server is alive and whether it can do its job, and nothing of any tenant's."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg

from tests.store.pg_support import PgSchema

from . import api_support as S


def test_probes_answer_without_a_key_and_are_not_api_routes(tmp_path: Path) -> None:
    with S.running(tmp_path) as api:
        done = api.submit("echo", "ada")
        api.wait(done["id"], "succeeded")
        for path in ("/healthz", "/readyz"):
            r = api.client.get(path)  # no Authorization header
            assert r.status_code == 200, r.text
            assert r.json() == {"status": "ok"}
            assert r.headers["cache-control"] == "no-store"
        paths = api.client.get("/openapi.json").json()["paths"]
        assert "/healthz" not in paths and "/readyz" not in paths
        # the API itself still wants a key
        assert api.client.get("/v1/runs").status_code == 401


def test_readyz_is_503_while_the_store_does_not_answer_and_healthz_stays_200() -> None:
    """A table the readiness read needs, locked by another session (as a migration holds
    it): the check waits 2 s, then says so; probes meanwhile do not pile up checks."""
    schema = PgSchema()
    try:
        keys = S.make_keys(schema.url)
        from fastapi.testclient import TestClient

        from tether.server.api import create_app

        app = create_app(S.config(schema.url))
        with TestClient(app) as client, psycopg.connect(schema.url) as locker:
            assert client.get("/readyz").status_code == 200
            locker.execute("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            r = client.get("/readyz")
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["status"] == "not ready"
            assert "the store has not answered a read started" in body["problems"][0], body
            again = client.get("/readyz")  # the same check, still waiting: not a second one
            assert again.status_code == 503
            assert time.monotonic() - started >= 3.5
            waiting = schema.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'meta'::regclass "
                "AND NOT granted")
            assert waiting == [(1,)], waiting
            assert client.get("/healthz").status_code == 200  # alive: do not restart it
            locker.rollback()
            deadline = time.monotonic() + 10
            while (r := client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, r.text
                time.sleep(0.1)
            assert r.json() == {"status": "ok"}
            assert keys  # the keys exist: the probes never needed one
    finally:
        schema.drop()


def _samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value of a Prometheus text exposition (comments left out)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_metrics_count_the_queue_and_show_the_embedded_worker(tmp_path: Path) -> None:
    with S.running(tmp_path) as api:
        done = api.submit("echo", "ada")
        api.wait(done["id"], "succeeded")
        api.submit("waiter", None)
        r = api.client.get("/metrics")  # no key
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        samples = _samples(r.text)
        assert samples["tether_store_up"] == 1
        assert samples['tether_runs{status="succeeded"}'] == 1
        assert samples['tether_runs{status="queued"}'] + samples[
            'tether_runs{status="running"}'] + samples['tether_runs{status="waiting"}'] == 1
        assert samples['tether_runs{status="halted"}'] == 0  # every status, 0 included
        worker = api.app.state.tether.worker.owner
        assert samples[f'tether_worker_serving{{worker="{worker}"}}'] == 1
        assert samples[f'tether_worker_concurrency{{worker="{worker}"}}'] == 256
        assert samples[f'tether_worker_loop_silent_seconds{{worker="{worker}"}}'] < 5
        assert "acme" not in r.text and "globex" not in r.text  # no tenant is named
        assert "# TYPE tether_worker_executions_total counter" in r.text


def test_a_store_that_cannot_be_read_is_store_up_0_not_a_failed_scrape(tmp_path: Path) -> None:
    from tether.server.prometheus import QueueCounts, exposition
    from tether.store import SQLiteStore

    db = tmp_path / "t.db"
    store = SQLiteStore(db)
    try:
        counts = QueueCounts(store, every=0.0)
        assert counts.get() == {}
        with sqlite3.connect(db) as other:  # changed outside Tether: the count cannot run
            other.execute("DROP TABLE runs")
        assert counts.get() is None
        samples = _samples(exposition(None, counts.get()))
        assert samples == {"tether_store_up": 0.0}
    finally:
        store.close()


async def test_a_run_the_worker_refused_is_counted_apart(tmp_path: Path) -> None:
    """A worker that cannot load a run's guards takes it and hands it back unrun: one of its
    executions, and one refusal, so a scrape tells a worker that refuses everything from one
    that works."""
    from tether import Tether
    from tether.server.prometheus import exposition

    t = Tether(tmp_path / "t.db")
    try:
        ok = t.submit("tests.runtime.agents_core:sequential", 1)
        refused = t.submit("tests.runtime.agents_core:sequential", 1,
                           guards="tests.guards.missing:GUARDS")
        worker = t.worker()
        assert (await t.drive(ok, worker=worker)).status == "succeeded"
        assert (await t.drive(refused, worker=worker)).status == "waiting"
        health = worker.health()
        assert (health.executed, health.refused) == (2, 1)
        samples = _samples(exposition(health, None))
        assert samples[f'tether_worker_executions_total{{worker="{worker.owner}"}}'] == 2
        assert samples[f'tether_worker_refusals_total{{worker="{worker.owner}"}}'] == 1
    finally:
        t.close()
