"""Server-sent events of a run's journal: ids are journal seqs, `Last-Event-ID` resumes after
one without losing or repeating an event, and the rows are the timeline's rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import api_support as S


def parse_sse(text: str) -> list[dict[str, Any]]:
    frames = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.lstrip(" ")
        if "event" in fields:
            fields["data"] = json.loads(fields["data"])
            frames.append(fields)
    return frames


def _stream(api: S.Api, run_id: str, **headers: str) -> list[dict[str, Any]]:
    r = api.client.get(f"/v1/runs/{run_id}/events", params={"follow": "false"},
                       headers={**api.as_("viewer"), **headers})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    return parse_sse(r.text)


def test_events_resume_after_last_event_id(tmp_path: Path) -> None:
    with S.running(tmp_path) as api:
        run = api.submit("counter", 3)
        detail = api.wait(run["id"], "waiting")
        whole = _stream(api, run["id"])
        events = [f for f in whole if f["event"] == "event"]
        assert [int(f["id"]) for f in events] == list(range(1, len(events) + 1))
        assert [f["data"] for f in events] == detail["timeline"]  # the timeline's own rows
        assert whole[-1]["event"] == "end" and whole[-1]["data"]["status"] == "waiting"
        for cut in (1, 4, len(events)):
            resumed = [f for f in _stream(api, run["id"], **{"Last-Event-ID": str(cut)})
                       if f["event"] == "event"]
            assert resumed == events[cut:]  # nothing lost, nothing twice, same durations
        bad = api.client.get(f"/v1/runs/{run['id']}/events",
                             headers={**api.as_("viewer"), "Last-Event-ID": "x"})
        assert bad.status_code == 422 and bad.json()["where"] == "Last-Event-ID header"
