"""Progress as it happens: one line per journal event, as the event is committed.

Used by `tether run` (the run executing here), `tether show RUN --follow` (a run executed by any
worker) and `tether worker -v` (every run this worker executes). All of them poll the store for
the events after the last one seen (`load_events(run_id, after_seq)`: one indexed query per run
and poll, returning only what is new) and print each with `tether.observe.event_line`, the one
renderer, so the lines look the same wherever a run is watched from. Polling, not a hook in the
runtime: a follower in another process sees exactly what is durable, and nothing it does can slow
or break the run it watches.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, NoReturn, TextIO

if TYPE_CHECKING:
    from tether.observe import TimelineBuilder
    from tether.runtime import Tether, Worker
    from tether.store import RunRecord, Store

POLL_SECONDS = 0.25
#: `tether show --follow` stops at a waiting run unless its timer fires sooner than this
TIMER_HORIZON_S = 30.0
#: exit code of `tether show --follow` by the status the run stopped in
FOLLOW_EXIT_CODES = {"succeeded": 0, "failed": 1, "halted": 3, "cancelled": 4, "waiting": 5}


class JournalTail:
    """The lines of one run's journal not printed yet. `prime`: read (without printing) what
    is journaled already, so durations and token totals of later lines stay right."""

    def __init__(self, store: Store, run_id: str, *, prefix: str = "",
                 prime: bool = False) -> None:
        from tether.observe import TimelineBuilder

        self.store = store
        self.run_id = run_id
        self.prefix = prefix
        self.last_seq = 0
        self.builder: TimelineBuilder = TimelineBuilder()
        if prime:
            self._rows()

    def _rows(self) -> list[str]:
        from tether.observe import event_line

        lines = []
        for event in self.store.load_events(self.run_id, after_seq=self.last_seq):
            row = self.builder.row(event)
            self.last_seq = event.seq
            so_far = (self.builder.tokens_in, self.builder.tokens_out)
            lines.append(self.prefix + event_line(row, tokens_so_far=so_far))
        return lines

    def poll(self) -> list[str]:
        """The new events, one line each (none when nothing was committed since)."""
        return self._rows()


class TreeTail:
    """The lines of a run's journal and of its descendants' (spawned while it is followed):
    the run's own lines as `JournalTail` gives them, each child's prefixed by the child's id.
    Children are looked up once per poll (one query), so a run that fans out is not silent
    while its children work."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.tails = {run_id: JournalTail(store, run_id)}

    def poll(self) -> list[str]:
        lines = self.tails[self.run_id].poll()
        for child in self.store.descendants(self.run_id):
            tail = self.tails.get(child.id)
            if tail is None:
                tail = self.tails[child.id] = JournalTail(self.store, child.id,
                                                          prefix=f"{child.id} ")
            lines += tail.poll()
        return lines


def emit(lines: list[str], stream: TextIO) -> None:
    """Each line as one line: what models, tools and agents wrote into it cannot move the
    cursor, retitle the window or forge another event's line (`_safe`)."""
    from ._safe import safe_text

    for line in lines:
        print(safe_text(line, one_line=True), file=stream, flush=True)


async def drive_with_progress(tether: Tether, run_id: str, *, stream: TextIO | None,
                              poll: float = POLL_SECONDS) -> RunRecord:
    """`tether.drive(run_id)`, printing each journal event of the run as it is committed
    (`stream=None`: silently)."""
    drive = asyncio.create_task(tether.drive(run_id))
    if stream is None:
        return await drive
    tail = TreeTail(tether.store, run_id)
    while not drive.done():
        emit(tail.poll(), stream)
        await asyncio.wait({drive}, timeout=poll)
    emit(tail.poll(), stream)  # the final events, committed with the run's status
    return drive.result()


def _settled(run: RunRecord | None, horizon_s: float, now: float) -> bool:
    if run is None or run.finished:
        return True
    if run.status != "waiting":
        return False
    return run.wake_at is None or run.wake_at > now + horizon_s


def follow(store: Store, run_id: str, *, stream: TextIO = sys.stdout,
           poll: float = POLL_SECONDS, timer_horizon_s: float = TIMER_HORIZON_S) -> RunRecord:
    """Print the run's journal (and its children's), then each new event as it is committed,
    until the run has finished or waits for something not imminent (a signal, a person, a
    timer more than `timer_horizon_s` away). The status is read before the events, so the last
    poll includes everything committed with the final status."""
    tail = TreeTail(store, run_id)
    while True:
        run = store.get_run(run_id)
        emit(tail.poll(), stream)
        if _settled(run, timer_horizon_s, store.now()):
            assert run is not None  # the caller resolved the id; runs are never deleted
            return run
        time.sleep(poll)


class WorkerProgress:
    """`tether worker -v`: a line for each journal event of every run this worker executes,
    prefixed by the run's id. A run is watched from its claim (its earlier journal is read, not
    printed) until its execution ended and its last events were printed."""

    def __init__(self, worker: Worker, stream: TextIO, poll: float = POLL_SECONDS) -> None:
        self.worker = worker
        self.stream = stream
        self.poll_s = poll
        self.tails: dict[str, JournalTail] = {}

    def claimed(self, run_id: str) -> None:
        if run_id not in self.tails:
            self.tails[run_id] = JournalTail(self.worker.store, run_id, prefix=f"{run_id} ",
                                             prime=True)

    def tick(self, executing: Collection[str]) -> None:
        for run_id, tail in list(self.tails.items()):
            emit(tail.poll(), self.stream)
            if run_id not in executing:
                del self.tails[run_id]  # its execution ended: these were its last events

    async def run(self, stop: Callable[[], bool]) -> None:
        while not stop():
            # a snapshot before reading: a run that ends meanwhile is read once more next tick
            executing = set(self.worker.executing)
            self.tick(executing)
            await asyncio.sleep(self.poll_s)
        self.tick(())


def follow_command(tether: Tether, run_id: str) -> NoReturn:
    """`tether show RUN --follow`: the lines, then how the run stopped; the exit code says it
    (FOLLOW_EXIT_CODES: 0 succeeded, 1 failed, 3 halted, 4 cancelled, 5 waiting)."""
    import typer

    from ._common import handle_errors
    from ._safe import safe_text

    with handle_errors():
        tether.get(run_id)  # an unknown id is a clear error, not an endless wait
    run = follow(tether.store, run_id)
    what = run.error or run.reason or ""
    print(safe_text(f"run {run.id} {run.status}" + (f": {what}" if what else ""), one_line=True),
          flush=True)
    raise typer.Exit(FOLLOW_EXIT_CODES.get(run.status, 1))
