"""How the CLI shows runs: status colours, times, a run as JSON, the timeline with its outcome.

`run_dict` is the stable JSON shape of a run for `tether runs --json` and `tether show --json`
(documented field by field in docs/cli.md): fields may be added, never renamed or removed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ._common import console

if TYPE_CHECKING:
    from tether.store import Event, RunRecord

STATUS_STYLE = {
    "succeeded": "green", "failed": "red", "halted": "red", "cancelled": "yellow",
    "waiting": "cyan", "running": "blue", "queued": "white",
}

Lease = tuple[str, float]  # (worker, expires_at)


def run_dict(r: RunRecord, lease: Lease | None = None, *, now: float | None = None
             ) -> dict[str, Any]:
    """`now`: the store's clock (`Store.now`), which lease expiries are written in."""
    now = time.time() if now is None else now
    return {"id": r.id, "agent": r.agent, "status": r.status, "tenant": r.tenant,
            "parent_id": r.parent_id, "root_id": r.root_id or r.id, "depth": r.depth,
            "created_at": r.created_at, "updated_at": r.updated_at, "attempts": r.attempts,
            "wake_at": r.wake_at, "result": r.result, "error": r.error, "reason": r.reason,
            "flags": r.flags, "guards": (r.options or {}).get("guards"),
            **({"omitted": list(r.omitted)} if r.omitted else {}),
            "lease": None if lease is None else {"worker": lease[0], "expires_at": lease[1],
                                                  "expired": lease[1] <= now}}


def status_style(status: str) -> str:
    return STATUS_STYLE.get(status, "white")


def status_text(status: str) -> str:
    return f"[{status_style(status)}]{status}[/]"


def time_text(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def lease_text(r: RunRecord, lease: Lease | None, now: float | None = None) -> str:
    """What a running run's lease says about its worker: alive until T, or gone since T (and
    the run will be taken over) — a SIGKILLed worker leaves `running` behind for a while."""
    if r.status != "running":
        return ""
    if lease is None:
        return "no worker holds it: it will be taken over"
    worker, expires = lease
    now = time.time() if now is None else now
    when = time_text(expires)
    if expires > now:
        return f"lease of worker {worker} expires at {when} (in {expires - now:.0f}s)"
    return (f"lease of worker {worker} expired at {when} ({now - expires:.0f}s ago): "
            "another worker will take it over")


#: the longest result `tether show --full` prints (the whole value: `--json`)
FULL_RESULT_MAX = 200_000
#: the longest error or reason a listing line shows (`tether show RUN` has them whole)
NOTE_MAX = 300


def run_note(r: RunRecord, lease: Lease | None, *, now: float | None = None) -> str:
    """One line of why a run is where it is: error, reason, lease."""
    parts = [p if len(p) <= NOTE_MAX else p[:NOTE_MAX - 1] + "…"
             for p in (r.error, r.reason, lease_text(r, lease, now)) if p]
    return "; ".join(parts)


#: the rows `tether show` draws of a long journal without `--all`: the first, the last
SHOW_WINDOW = (50, 200)


def print_timeline(record: RunRecord, events: list[Event], *, full: bool = False,
                   lease: Lease | None = None, now: float | None = None,
                   every_row: bool = False) -> None:
    from tether.observe import timeline_table
    from tether.store import vocabulary as v

    console.print(timeline_table(record, events, full=full,
                                 window=None if every_row else SHOW_WINDOW))
    console.print(f"status: {status_text(record.status)}")
    if record.result is not None:
        result = json.dumps(record.result, default=str, ensure_ascii=False)
        if not full and len(result) > 2000:
            result = result[:2000] + f"… ({len(result) - 2000} more characters: --full)"
        elif len(result) > FULL_RESULT_MAX:
            result = (result[:FULL_RESULT_MAX] + f"… ({len(result) - FULL_RESULT_MAX} more "
                      "characters: tether show RUN --json)")
        console.print(f"result: {escape(result)}")
    if record.error:
        console.print(f"[red]error:[/] {escape(record.error)}")
        trace = next((e.data.get("traceback") for e in reversed(events)
                      if e.kind == v.RUN_FAILED and isinstance(e.data, dict)), None)
        if trace and full:
            console.print(escape(str(trace)), markup=True)
        elif trace:
            console.print("[dim]traceback stored: tether show RUN --full[/dim]")
    if record.reason and not record.finished:
        label = "waiting" if record.status == "waiting" else "note"
        console.print(f"[cyan]{label}:[/] {escape(record.reason)}")
    if (held := lease_text(record, lease, now)):
        console.print(f"[blue]lease:[/] {escape(held)}")
