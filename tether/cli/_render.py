"""How the CLI shows runs: status colours, times, a run as JSON, the timeline with its outcome."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rich.markup import escape

from tether.observe import timeline_table
from tether.store import Event, RunRecord

from ._common import console

STATUS_STYLE = {
    "succeeded": "green", "failed": "red", "halted": "red", "cancelled": "yellow",
    "waiting": "cyan", "running": "blue", "queued": "white",
}


def run_dict(r: RunRecord) -> dict[str, Any]:
    return {"id": r.id, "agent": r.agent, "status": r.status, "tenant": r.tenant,
            "parent_id": r.parent_id, "depth": r.depth, "created_at": r.created_at,
            "result": r.result, "error": r.error, "reason": r.reason, "flags": r.flags}


def status_text(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def time_text(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def print_timeline(record: RunRecord, events: list[Event], *, full: bool = False) -> None:
    console.print(timeline_table(record, events, full=full))
    console.print(f"status: {status_text(record.status)}")
    if record.result is not None:
        result = json.dumps(record.result, default=str, ensure_ascii=False)
        if not full and len(result) > 2000:
            result = result[:2000] + f"… ({len(result) - 2000} more characters: --full)"
        console.print(f"result: {escape(result)}")
    if record.error:
        console.print(f"[red]error:[/] {escape(record.error)}")
        trace = next((e.data.get("traceback") for e in reversed(events)
                      if e.kind == "run_failed" and isinstance(e.data, dict)), None)
        if trace and full:
            console.print(escape(str(trace)), markup=True)
        elif trace:
            console.print("[dim]traceback stored: tether show RUN --full[/dim]")
    if record.reason and not record.finished:
        console.print(f"[cyan]waiting:[/] {record.reason}")
