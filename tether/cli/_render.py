"""How the CLI shows runs: status colours, times, a run as JSON, the timeline with its outcome.

`run_dict` is the stable JSON shape of a run for `tether runs --json` and `tether show --json`
(documented field by field in docs/cli.md): fields may be added, never renamed or removed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ._common import console

if TYPE_CHECKING:
    from rich.table import Table

    from tether.store import Event, RunRecord, Store

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


#: the reason of a run that waits in `ctx.wait_for(NAME)`; NAME `approval:ID` is a tool call
#: waiting for a person's approval (docs/guards.md)
_SIGNAL_WAIT = re.compile(r"^waiting for signal '([^']+)'$")


def _print_next_step(record: RunRecord, store: Store | None) -> None:
    """What a person does about a run waiting for a signal, or queued with no worker to take
    it: the command, not just its name. `store`: the run's, naming the database the worker
    must serve (None: no hint for a queued run; `tether run` says it its own way)."""
    if record.status == "queued" and store is not None:
        from .follow import queued_hint  # one text for `tether show` and `show --follow`

        console.print(queued_hint(record, store), markup=False, soft_wrap=True)
        return
    waits = _SIGNAL_WAIT.match(record.reason or "") if record.status == "waiting" else None
    if waits is None:
        return
    run_id, name = record.id, _line(waits[1])
    if name.startswith("approval:"):
        console.print(f"decide it: tether approve {name.removeprefix('approval:')} --key "
                      "YOUR.key --keys approvers.yaml (or tether deny …); a worker then "
                      "resumes the run", markup=False, soft_wrap=True)
    else:
        console.print(f"send it: tether signal {run_id} {name} 'JSON'; a worker then resumes "
                      "the run", markup=False, soft_wrap=True)


#: the rows `tether show` draws of a long journal without `--all`: the first, the last
SHOW_WINDOW = (50, 200)


#: the least width rich shrinks a folding column of the timeline to (its `min_width`)
_FOLDED_MIN = 24


def table_min_width(table: Table) -> int:
    """The narrowest console the timeline table fits without rich cutting its right side off:
    the columns that never wrap at their widest cell, the folding ones at their least width,
    plus padding and borders (an 80-column terminal, or output piped to a file, is narrower
    than a journal with tokens and durations)."""
    from rich.cells import cell_len
    from rich.text import Text

    from ._safe import safe_text  # as the console draws the cells: control characters escaped

    total = 3 * len(table.columns) + 1  # a space either side of each cell, and the borders
    for column in table.columns:
        cells = [cell_len(Text.from_markup(safe_text(str(c))).plain) for c in column.cells]
        widest = max([cell_len(str(column.header)), *cells])
        total += widest if column.no_wrap else min(widest, _FOLDED_MIN)
    return total


def print_event_lines(table: Table, events: list[Event], *, full: bool,
                      every_row: bool) -> None:
    """The timeline as `tether run` prints it live, one line per event, for a console too
    narrow for the table: the lines wrap, nothing is cut."""
    from tether.observe import event_line, timeline_rows

    rows = timeline_rows(events)
    head, tail = SHOW_WINDOW
    hidden = 0 if every_row or len(rows) <= head + tail + 1 else len(rows) - head - tail
    console.print(f"{table.title} (one line per event: the table needs a console "
                  f"{table_min_width(table)} columns wide)", markup=False, soft_wrap=True)
    for i, row in enumerate(rows):
        if hidden and i == head:
            console.print(f"… {hidden:,} events not shown (--all)", markup=False)
        if hidden and head <= i < len(rows) - tail:
            continue
        console.print(event_line(row, width=None if full else 90), markup=False,
                      soft_wrap=True)
    console.print(str(table.caption), markup=False, soft_wrap=True)


def print_timeline(record: RunRecord, events: list[Event], *, full: bool = False,
                   lease: Lease | None = None, now: float | None = None,
                   every_row: bool = False, store: Store | None = None) -> None:
    from tether.observe import timeline_table
    from tether.store import vocabulary as v

    table = timeline_table(record, events, full=full,
                           window=None if every_row else SHOW_WINDOW)
    if console.width >= table_min_width(table):
        console.print(table)
    else:  # rich would cut the table's right side (detail, totals): one line per event instead
        print_event_lines(table, events, full=full, every_row=every_row)
    console.print(f"status: {status_text(record.status)}")
    if record.result is not None:
        result = json.dumps(record.result, default=str, ensure_ascii=False)
        if not full and len(result) > 2000:
            result = result[:2000] + f"… ({len(result) - 2000} more characters: --full)"
        elif len(result) > FULL_RESULT_MAX:
            result = (result[:FULL_RESULT_MAX] + f"… ({len(result) - FULL_RESULT_MAX} more "
                      "characters: tether show RUN --json)")
        console.print(f"result: {escape(result)}", soft_wrap=True)
    # the error, the reason and the next step are one line each: a line break an agent or a
    # model put in them must not forge a line of its own (a `decide it: tether approve …`)
    if record.error:
        console.print(f"[red]error:[/] {escape(_line(record.error))}", soft_wrap=True)
        trace = next((e.data.get("traceback") for e in reversed(events)
                      if e.kind == v.RUN_FAILED and isinstance(e.data, dict)), None)
        if trace and full:
            console.print(escape(str(trace)), markup=True)
        elif trace:
            console.print(f"[dim]traceback stored: tether show {record.id} --full[/dim]")
    if record.reason and not record.finished:
        label = "waiting" if record.status == "waiting" else "note"
        console.print(f"[cyan]{label}:[/] {escape(_line(record.reason))}", soft_wrap=True)
    _print_next_step(record, store)
    if (held := lease_text(record, lease, now)):
        console.print(f"[blue]lease:[/] {escape(_line(held))}", soft_wrap=True)


def _line(text: str) -> str:
    from ._safe import safe_text

    return safe_text(text, one_line=True)
