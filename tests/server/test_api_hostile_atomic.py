"""An action and its audit entry are one transaction: never a cancel the log does not show.

Before: `POST /v1/runs/{id}/cancel` and `.../resolve` acted in one transaction and wrote the
audit entry in the next. A store that failed between the two (here: the database itself
refuses rows of the audit table, by a trigger) left the run cancelled, or its step resolved,
while the caller was told the request failed and the audit log had nothing: a governed action
nobody can account for. Now both commit together or neither does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.store.pg_support import raw_sql
from tether.runtime import Tether
from tether.store import NewEvent, dumps

from .api_hostile_support import Live, live

_REFUSE = ("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit "
           "BEGIN SELECT RAISE(ABORT, 'the audit table refuses rows'); END")


def _audit(served: Live) -> list[tuple[str, str | None]]:
    with served.client() as c:
        entries = c.get("/v1/audit", headers=served.auth("admin")).json()["entries"]
    return [(e["action"], e["run_id"]) for e in entries]


def test_a_cancel_whose_audit_entry_fails_cancels_nothing(tmp_path: Path) -> None:
    with live(tmp_path) as served, served.client() as c:
        store = served.app.state.tether.tether.store
        run_id = served.submit("waiter")
        served.wait(run_id, "waiting")
        raw_sql(store, _REFUSE)
        r = c.post(f"/v1/runs/{run_id}/cancel", json={"reason": "x"},
                   headers=served.auth("operator"))
        assert r.status_code >= 500 and "Traceback" not in r.text, r.text
        assert served.wait(run_id, "waiting")["run"]["cancel_requested"] is False
        raw_sql(store, "DROP TRIGGER refuse_audit")
        r = c.post(f"/v1/runs/{run_id}/cancel", json={"reason": "x"},
                   headers=served.auth("operator"))
        assert r.status_code == 202, r.text
        served.wait(run_id, "cancelled")
        assert _audit(served) == [("cancel", run_id)]


def test_a_resolution_whose_audit_entry_fails_resolves_nothing(tmp_path: Path) -> None:
    with live(tmp_path, embedded_worker=False) as served, served.client() as c:
        store = served.app.state.tether.tether.store
        run_id = served.submit("counter", 3)
        t = Tether(tmp_path / "tether.db")
        try:  # a worker died inside step add0: the run waits for a person's decision
            t.store.write(lambda tx: tx.append_events(run_id, [NewEvent(
                tx.next_seq(run_id), "step_started", "1", "add0", dumps({"attempt": 1}),
                tx.now())]))
            assert asyncio.run(t.drive(run_id)).status == "waiting"
            raw_sql(store, _REFUSE)
            r = c.post(f"/v1/runs/{run_id}/resolve", json={"action": "skip", "result": 5},
                       headers=served.auth("operator"))
            assert r.status_code >= 500, r.text
            kinds = [e.kind for e in t.store.load_events(run_id)]
            assert "step_resolved" not in kinds, kinds
            raw_sql(store, "DROP TRIGGER refuse_audit")
            r = c.post(f"/v1/runs/{run_id}/resolve", json={"action": "skip", "result": 5},
                       headers=served.auth("operator"))
            assert r.status_code == 200, r.text
            t.signal(run_id, "go")  # what `counter` waits for after its steps
            assert asyncio.run(t.drive(run_id)).result == 5 + 1 + 2
            assert _audit(served) == [("resolve:skip", run_id)]
        finally:
            t.close()
