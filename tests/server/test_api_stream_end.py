"""A live event stream never ends short: when it sees its run finished it reads the journal once
more before `end` (8741afe), because the run's last events commit together with its final
status, possibly just after the stream's last read.

The test makes that happen every time: the server has no embedded worker, and the stream's store
is watched so that, right after the stream has read the journal of a waiting run and before it
looks at the run's status, the run is signalled and a real worker (on a store of its own) runs
it to the end. Without the re-read the stream sent `end` without the run's last events
(test_a_run_streamed_live_cut_and_resumed saw 'end' after signal_received).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tether.runtime import Tether
from tether.store import Event, RunRecord

from . import api_support as S
from .test_api_stream import parse_sse


def run_until(t: Tether, run_id: str, status: str, timeout: float = 60.0) -> None:
    """A real worker executes the run until it is `status` (generous deadline: loaded CI)."""
    deadline = time.monotonic() + timeout
    worker = t.worker(poll_interval=0.05)
    asyncio.run(worker.serve(
        until=lambda: t.get(run_id).status == status or time.monotonic() > deadline))
    assert t.get(run_id).status == status, f"run {run_id} is {t.get(run_id).status}"


def test_a_stream_that_sees_its_run_finish_sends_the_last_events_before_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with S.running(tmp_path, embedded_worker=False) as api:
        run_id = api.submit("counter", 2)["id"]
        worker_side = Tether(tmp_path / "tether.db")
        try:
            run_until(worker_side, run_id, "waiting")  # two steps, then waits for `go`
            store = api.app.state.tether.tether.store
            load_events, get_run = store.load_events, store.get_run
            streamed_through: list[int] = []  # the last seq of each journal read of the run
            finished_meanwhile: list[str] = []

            def watched_load_events(rid: str, after_seq: int = 0) -> list[Event]:
                events = load_events(rid, after_seq)
                if rid == run_id:
                    streamed_through.append(events[-1].seq if events else after_seq)
                return events

            def watched_get_run(rid: str) -> RunRecord | None:
                if rid == run_id and streamed_through and not finished_meanwhile:
                    # the stream has read the journal and not yet seen the status: the run
                    # finishes now, its last events committing with its status
                    worker_side.signal(run_id, "go")
                    run_until(worker_side, run_id, "succeeded")
                    finished_meanwhile.append(f"after the stream read through seq "
                                              f"{streamed_through[-1]}")
                return get_run(rid)

            monkeypatch.setattr(store, "load_events", watched_load_events)
            monkeypatch.setattr(store, "get_run", watched_get_run)
            r = api.client.get(f"/v1/runs/{run_id}/events", headers=api.as_("viewer"))
            monkeypatch.undo()
        finally:
            worker_side.close()
        assert r.status_code == 200, r.text
        assert finished_meanwhile, "the run never finished between the stream's reads"
        frames = parse_sse(r.text)
        detail = api.wait(run_id, "succeeded")
        assert frames[-1]["event"] == "end" and frames[-1]["data"]["status"] == "succeeded"
        events: list[dict[str, Any]] = [f for f in frames if f["event"] == "event"]
        assert [f["data"] for f in events] == detail["timeline"], (
            f"the stream ended short ({finished_meanwhile[0]}): it sent "
            f"{len(events)} of the run's {len(detail['timeline'])} events before `end`")
        assert [int(f["id"]) for f in events] == list(range(1, len(events) + 1))
        assert len(detail["timeline"]) > streamed_through[0]  # the run did go on meanwhile
