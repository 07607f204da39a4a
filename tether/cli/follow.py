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
                              poll: float = POLL_SECONDS,
                              interrupts: Interrupts | None = None) -> RunRecord:
    """`tether.drive(run_id)`, printing each journal event of the run as it is committed
    (`stream=None`: silently). With `interrupts`, Ctrl-C stops the driving worker as
    `tether worker` stops (see `Interrupts`), and the events of its drain are printed too."""
    drive = asyncio.create_task(_drive(tether, run_id, interrupts))
    if stream is None:
        return await drive
    tail = TreeTail(tether.store, run_id)
    while not drive.done():
        emit(tail.poll(), stream)
        await asyncio.wait({drive}, timeout=poll)
    emit(tail.poll(), stream)  # the final events, committed with the run's status
    return drive.result()


async def _drive(tether: Tether, run_id: str, interrupts: Interrupts | None) -> RunRecord:
    """`Tether.drive`, with a worker that `interrupts` can stop: cancelling the task instead
    would interrupt the worker wherever it is (a claim just committed, a step's thread) rather
    than let it drain."""
    if interrupts is None:
        return await tether.drive(run_id)
    return await tether.drive(run_id, stop=interrupts.stop,
                              worker=interrupts.watch(tether.worker()))


def _settled(run: RunRecord | None, horizon_s: float, now: float) -> bool:
    if run is None or run.finished:
        return True
    if run.status != "waiting":
        return False
    return run.wake_at is None or run.wake_at > now + horizon_s


def follow(store: Store, run_id: str, *, stream: TextIO = sys.stdout,
           poll: float = POLL_SECONDS, timer_horizon_s: float = TIMER_HORIZON_S,
           hints: TextIO = sys.stderr) -> RunRecord:
    """Print the run's journal (and its children's), then each new event as it is committed,
    until the run has finished or waits for something not imminent (a signal, a person, a
    timer more than `timer_horizon_s` away). The status is read before the events, so the last
    poll includes everything committed with the final status.

    A run queued for `QUEUED_HINT_AFTER_S` gets one line on `hints` saying how to start a
    worker: following it goes on (a worker may come), but silence looked like a hang."""
    tail = TreeTail(store, run_id)
    hinted = False
    while True:
        run = store.get_run(run_id)
        emit(tail.poll(), stream)
        now = store.now()
        if _settled(run, timer_horizon_s, now):
            assert run is not None  # the caller resolved the id; runs are never deleted
            return run
        assert run is not None
        if not hinted and run.status == "queued" and now - run.updated_at >= QUEUED_HINT_AFTER_S:
            emit([queued_hint(run, store)], hints)
            hinted = True
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


def worker_command(store: Store) -> str:
    """The command that starts a worker on `store`'s database, as a person types it: what
    resumes a run handed back to the queue, or takes a queued one. `--db` is left out for the
    database a bare `tether worker` opens anyway ($TETHER_DB, else the default file); a
    PostgreSQL URL is named as the store names it, its password redacted."""
    import shlex

    from tether.store import default_db_path

    db = store.url.removeprefix("sqlite:///")
    return "tether worker" if db == default_db_path() else f"tether worker --db {shlex.quote(db)}"


#: `tether show --follow` says what to do about a queued run once it was queued this long (a
#: worker that serves the database takes a new run well within it)
QUEUED_HINT_AFTER_S = 2.0


def queued_hint(run: RunRecord, store: Store) -> str:
    """What a person does about a queued run: start a worker (`tether show`, `--follow`)."""
    again = " again" if run.attempts else ""  # handed back (a worker stopped) vs never taken
    return f"no worker has taken it{again} yet: start one with {worker_command(store)}"


def running_steps(store: Store, run_ids: Collection[str]) -> list[tuple[str, str, float]]:
    """(run id, step name, started at) of each step the runs' journals show started and not
    ended: what a stopping worker waits for."""
    from tether.store import vocabulary as v

    ends = {v.STEP_COMPLETED, v.STEP_FAILED, v.STEP_IN_DOUBT, v.STEP_RESOLVED}
    running = []
    for run_id in run_ids:
        started: dict[str | None, tuple[str, float]] = {}
        for event in store.load_events(run_id):
            if event.kind == v.STEP_STARTED:
                started[event.key] = (event.name or "?", event.ts)
            elif event.kind in ends:
                started.pop(event.key, None)
        running += [(run_id, name, ts) for name, ts in started.values()]
    return running


#: the Ctrl-C line of a busy worker names this many steps and runs, read from at most this
#: many journals (the rest are counted)
_STEPS_NAMED = 3
_JOURNALS_READ = 20


class Interrupts:
    """SIGINT (Ctrl-C) and SIGTERM while a worker executes runs here (`tether run`, `tether
    worker`). The first sets `stop`: the worker drains (each run stops before its next effect
    and goes back to the queue; a step already running is waited for, so its outcome is
    journaled) and a line on stderr says what it waits for. Later ones only say it again, with
    how to stop at once anyway.

    Why not asyncio.run's own handling, which `tether run` had: its second Ctrl-C raised
    KeyboardInterrupt wherever the loop was, destroying the run's task mid-step: the effect
    happened, its step_completed was never journaled, and the run stayed `running` until its
    lease expired, then was in doubt (`tether resolve`)."""

    def __init__(self, store: Store, *, run_id: str | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        """`run_id`: the run the command drives (`tether run`), named even when it is not
        executing when the signal comes (a timer, a child's turn). `say`: where the lines go
        (default: a line on stderr; `tether worker` logs them, its stderr being its log)."""
        self.store = store
        self.run_id = run_id
        self.say = say or (lambda line: emit([line], sys.stderr))
        self.stop = asyncio.Event()
        self.count = 0
        self.worker: Worker | None = None

    def watch(self, worker: Worker) -> Worker:
        """The worker whose runs and steps the lines name; the signals go to this handler
        from now on (call it in the running loop)."""
        import signal

        self.worker = worker
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.signalled)
        return worker

    def signalled(self) -> None:
        """The signal handler (called by the loop, between its callbacks: the store may be
        read); a line is written whatever happens, and nothing is raised into the loop."""
        self.count += 1
        self.stop.set()
        try:
            line = self.line()
        except Exception as exc:  # the store could not be read: stop all the same
            line = f"interrupted: stopping (what is running could not be read: {exc})"
        if line is not None:
            self.say(line)

    def line(self) -> str | None:
        """What the worker waits for now, from the journals of the runs it executes (the
        steps started and not ended), and what happens to the runs after (None: a worker
        with nothing to hand back stops at once, as it always did, silently)."""
        import os

        worker = self.worker
        runs = worker.executing if worker is not None else []
        # read on the loop the worker drains on: a busy worker's first journals are enough
        steps = running_steps(self.store, runs[:_JOURNALS_READ])
        named = [f"'{name}'" + (f" of run {run_id}" if len(runs) > 1 else "")
                 for run_id, name, _ in steps[:_STEPS_NAMED]]
        unread = len(runs) - _JOURNALS_READ
        named += [f"{len(steps) - _STEPS_NAMED} more"] if len(steps) > _STEPS_NAMED else []
        named += [f"those of {unread} more runs"] if unread > 0 else []
        what = f"step{'s' if len(named) > 1 else ''} {', '.join(named)}"
        if self.count > 1 and steps:
            for_s = self.store.now() - min(ts for _, _, ts in steps)
            owners = sorted({run_id for run_id, _, _ in steps})
            resolve = f"tether resolve {owners[0]}" if len(owners) == 1 else "tether resolve RUN"
            return (f"still waiting for {what} (running {for_s:.0f}s) to finish, so the "
                    f"outcome is journaled; to stop at once anyway: kill -KILL {os.getpid()} "
                    f"(left in doubt then, for {resolve} to decide)")
        if not runs and self.run_id is not None:
            run = self.store.get_run(self.run_id)
            status = run.status if run is not None else "gone"
            return (f"interrupted: stopping; run {self.run_id} is {status} (a worker resumes "
                    f"it: {worker_command(self.store)})")
        if not runs:
            return None
        them = "it" if len(runs) == 1 else "them"
        listed = ", ".join(runs[:_STEPS_NAMED]) + (f" and {len(runs) - _STEPS_NAMED} more"
                                                   if len(runs) > _STEPS_NAMED else "")
        handing = (f"handing run{'s' if len(runs) > 1 else ''} {listed} back to the queue (a "
                   f"worker resumes {them}: {worker_command(self.store)})")
        if self.count > 1:
            return f"still {handing}"
        if not steps:
            return f"interrupted: {handing}"
        timeout = worker.drain_timeout if worker is not None else 0
        return (f"interrupted: waiting for {what} to finish (up to {timeout:g}s; a step in a "
                f"thread until it returns), then {handing}")


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
