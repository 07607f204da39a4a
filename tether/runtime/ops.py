"""Run state transitions, each one transaction over the store's `Tx` primitives.

All status changes live here so that every entry point (worker, client, CLI, server) moves runs
through the same checked transitions. Each function returns an operation `Callable[[Tx], T]` that
runs inside the group committer or `store.write`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tether.store import TERMINAL_STATUSES, LeaseLost, NewEvent, RunRecord, Tx, dumps
from tether.store import vocabulary as v

from .errors import NotInDoubt, RunFinished, RunNotDeletable, RunNotFound
from .retry import RetryPlan, RunNotRetryable


def _event(tx: Tx, run_id: str, kind: str, data: Any = None, key: str | None = None,
           name: str | None = None) -> NewEvent:
    return NewEvent(tx.next_seq(run_id), kind, key, name, dumps(data) if data is not None else None,
                    tx.now())


def _require(tx: Tx, run_id: str) -> RunRecord:
    run = tx.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


def submitted(run: RunRecord) -> dict[str, Any]:
    """The data of a run's `run_submitted` event."""
    return {"agent": run.agent, "tenant": run.tenant, "parent_id": run.parent_id,
            "depth": run.depth}


def create_run(run: RunRecord) -> Callable[[Tx], str]:
    def op(tx: Tx) -> str:
        tx.insert_run(run)
        tx.append_events(run.id, [_event(tx, run.id, "run_submitted", submitted(run))])
        return run.id
    return op


def create_claimed(run: RunRecord, owner: str, ttl: float) -> Callable[[Tx], None]:
    """Insert `run` already running under `owner`'s lease (epoch 1, its first claim), never
    queued: a run its creator executes at once (`Worker.start_new`). Its `run_submitted`
    event is the caller's to append, in the same transaction."""
    if run.status != "running" or run.attempts != 1:
        raise ValueError(f"run {run.id}: created claimed means status 'running' and "
                         f"attempts 1, not {run.status!r} and {run.attempts}")

    def op(tx: Tx) -> None:
        tx.insert_run(run)
        tx.grant_lease(run.id, owner, ttl, 1)
    return op


def wake(tx: Tx, run_id: str, why: str, *, signal: str | None = None) -> None:
    """Make a waiting run runnable (a signal arrived, a child finished). `why` replaces the
    waiting reason, which would otherwise still say "waiting for ..." on a queued run.

    The run's row is locked first: on PostgreSQL a run suspending (its `suspend` holds the row
    and reads its children and signals) and a child finishing or a signal arriving could
    otherwise each read the other as not yet done, and the run would wait forever (seen once in
    the PostgreSQL chaos test: a parent "waiting for child run" whose child had succeeded)."""
    tx.lock_run(run_id)
    run = tx.get_run(run_id)
    if signal is not None and run is not None and run.status == "waiting" \
            and signal not in v.awaited_signals(tx.load_events(run_id)):
        # a signal the journal shows no `wait_for` of: kept for a later one, the run left
        # waiting (a mistyped name queued it, with a reason naming the typo even after the
        # right signal came)
        return
    if run is not None and run.status == "waiting" and not run.options.get("in_doubt"):
        # a run waiting for a human decision stays put: only `resolve` wakes it
        tx.update_run(run_id, status="queued", wake_at=None, reason=f"{why}; queued to resume")


def send_signal(run_id: str, name: str, payload: Any) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        run = _require(tx, run_id)
        if run.finished:
            raise RunFinished(run_id, run.status, f"deliver signal {name!r}")
        signal_id = tx.insert_signal(run_id, name, dumps(payload))
        wake(tx, run_id, f"signal {name!r} arrived", signal=name)
        return signal_id
    return op


def request_cancel(run_id: str, reason: str = "cancelled by request") -> Callable[[Tx], list[str]]:
    """Cancel a run and every descendant (structured concurrency: no child outlives a cancelled
    parent). Idle runs end at once; running ones are flagged and their worker stops them."""

    def op(tx: Tx) -> list[str]:
        run = _require(tx, run_id)
        if run.finished:
            raise RunFinished(run_id, run.status, "cancel it")
        return _cancel_tree(tx, [run, *tx.descendants(run_id)], reason)
    return op


def _cancel_tree(tx: Tx, runs: Sequence[RunRecord], reason: str) -> list[str]:
    touched: list[str] = []
    for r in runs:
        if r.finished:
            continue
        if r.status == "running" and tx.lease_holder(r.id) is not None:
            tx.update_run(r.id, cancel_requested=1, reason=reason)
        else:
            tx.update_run(r.id, status="cancelled", cancel_requested=1, reason=reason, wake_at=None)
            tx.append_events(r.id, [_event(tx, r.id, "run_cancelled", {"reason": reason})])
            tx.release_lease(r.id)
        touched.append(r.id)
    return touched


def resolve_in_doubt(
    run_id: str, action: str, result: Any = None, key: str | None = None
) -> Callable[[Tx], str]:
    """Record a human decision about an in-doubt step and make the run runnable again."""
    if action not in ("retry", "skip", "fail"):
        raise ValueError(f"resolve action must be retry, skip or fail, not {action!r}")

    def op(tx: Tx) -> str:
        run = _require(tx, run_id)
        if run.finished:
            raise RunFinished(run_id, run.status, "resolve a step")
        doubt = (run.options or {}).get("in_doubt")
        if run.status != "waiting" or not doubt:
            raise NotInDoubt(
                f"run {run_id!r} has no in-doubt step to resolve (status {run.status}); "
                "`tether show` lists its steps"
            )
        target = key or doubt["key"]
        if target != doubt["key"]:
            raise NotInDoubt(f"step {target} of run {run_id!r} is not in doubt; {doubt['key']} is")
        tx.append_events(run_id, [_event(tx, run_id, "step_resolved", {
            "action": action, "result": result}, key=target, name=doubt.get("step"))])
        options = dict(run.options)
        options.pop("in_doubt", None)
        tx.update_run(run_id, status="queued", reason=None, options=options)
        return target
    return op


def finish(
    run_id: str, owner: str, status: str, *, result: Any = None, error: str | None = None,
    reason: str | None = None, events: Sequence[NewEvent] = (), epoch: int | None = None,
) -> Callable[[Tx], RunRecord | None]:
    """A run reached a terminal status: record it, release the lease, wake the parent, and cancel
    any descendants still alive (a child never outlives its parent). Returns the run as ended."""
    assert status in TERMINAL_STATUSES

    def op(tx: Tx) -> RunRecord | None:
        tx.check_lease(run_id, owner, epoch)
        if events:
            tx.append_events(run_id, events)
        tx.update_run(run_id, status=status, result=result, error=error, reason=reason,
                      wake_at=None)
        tx.release_lease(run_id, owner)
        _cancel_tree(tx, tx.descendants(run_id), f"parent run {run_id} ended {status}")
        run = tx.get_run(run_id)
        if run is not None and run.parent_id:
            wake(tx, run.parent_id, f"child run {run_id} ended {status}")
        return run
    return op


def suspend(
    run_id: str, owner: str, *, reason: str, wake_at: float | None, children: Sequence[str],
    signals: Sequence[str], events: Sequence[NewEvent] = (), options: dict[str, Any] | None = None,
    epoch: int | None = None,
) -> Callable[[Tx], str]:
    """Release the run until its wait condition holds. The condition is re-checked inside the
    same transaction, so a child finishing or a signal arriving meanwhile is never lost."""

    def op(tx: Tx) -> str:
        tx.check_lease(run_id, owner, epoch)
        if events:
            tx.append_events(run_id, events)
        run = tx.get_run(run_id)
        if run is not None and run.cancel_requested:
            # cancelled while it ran, before its worker's heartbeat saw the flag: waiting now
            # would lose the cancel (the flag is only read for running runs)
            why = run.reason or "cancelled by request"
            finish(run_id, owner, "cancelled", reason=why, epoch=epoch,
                   events=[_event(tx, run_id, "run_cancelled", {"reason": why})])(tx)
            return "cancelled"
        ready = False
        if signals and tx.pending_signal_names(run_id) & set(signals):
            ready = True
        for child in children:
            c = tx.get_run(child)
            if c is None or c.finished:
                ready = True
        status = "queued" if ready else "waiting"
        fields: dict[str, Any] = {"status": status,
                                  "reason": f"{reason}: already satisfied; queued to resume"
                                  if ready else reason,
                                  "wake_at": None if ready else wake_at}
        if options is not None:
            fields["options"] = options
        tx.update_run(run_id, **fields)
        tx.release_lease(run_id, owner)
        return status
    return op


def set_aside(run_id: str, owner: str, *, reason: str, wake_at: float,
              epoch: int | None = None) -> Callable[[Tx], None]:
    """Leave a run whose record cannot be read (`JournalCorrupt`) waiting, with why, until
    `wake_at`: `suspend` without reading the run (it cannot be), so no cancel or signal is
    looked at; any worker looks again at `wake_at`."""

    def op(tx: Tx) -> None:
        tx.check_lease(run_id, owner, epoch)
        tx.update_run(run_id, status="waiting", reason=reason, wake_at=wake_at)
        tx.release_lease(run_id, owner)
    return op


def retry(run_id: str, plan: RetryPlan) -> Callable[[Tx], None]:
    """Queue a new attempt of a failed or halted run (`tether.runtime.retry` explains how).
    The journal gets a `run_retried` event, nothing is removed; refused if the run changed
    since the plan was made (another retry, a status change)."""

    def op(tx: Tx) -> None:
        # locked before it is read: a run deleted meanwhile (`delete_tree`, which locks the
        # tree) is then not found, rather than found, journaled to and left without its row
        tx.lock_run(run_id)
        run = _require(tx, run_id)
        if run.status != plan.previous_status or tx.next_seq(run_id) != plan.last_seq + 1:
            raise RunNotRetryable(f"run {run_id!r} changed while its retry was planned (now "
                                  f"{run.status}); look at it again with `tether show`")
        tx.append_events(run_id, [_event(tx, run_id, "run_retried", plan.event_data())])
        fields: dict[str, Any] = {}
        if plan.budget:
            fields["options"] = {**run.options, "budget": {
                **(run.options.get("budget") or {}), **plan.budget}}
        tx.update_run(run_id, status="queued", result=None, error=None, wake_at=None,
                      reason=f"retry queued (attempt {plan.attempt})", **fields)
    return op


def abandon(run_id: str, owner: str, epoch: int | None = None) -> Callable[[Tx], None]:
    """Give a run back to the queue (worker shutting down) without changing its journal."""

    def op(tx: Tx) -> None:
        try:
            tx.check_lease(run_id, owner, epoch)
        except LeaseLost:
            return
        tx.release_lease(run_id, owner)
        tx.update_run(run_id, status="queued")
    return op


def delete_tree(run_id: str) -> Callable[[Tx], tuple[list[str], int]]:
    """Delete a finished run tree (`run_id`, its root, and everything below it) with all that
    is kept for it; returns the ids deleted and how many events. Refused, with nothing done,
    for a run with a parent or a tree in which anything has not finished."""

    def op(tx: Tx) -> tuple[list[str], int]:
        rows = tx.tree(run_id)
        if not rows:
            raise RunNotFound(run_id)
        parent = next(p for i, _, p in rows if i == run_id)
        if parent is not None:
            raise RunNotDeletable(run_id, f"it is a child of run {parent!r}; a run tree is "
                                  "deleted whole, from its root")
        live = sorted((i, status) for i, status, _ in rows if status not in TERMINAL_STATUSES)
        if live:
            named = ", ".join(f"{i} is {status}" for i, status in live[:3])
            more = f" and {len(live) - 3} more" if len(live) > 3 else ""
            raise RunNotDeletable(run_id, f"{len(live)} run(s) of its tree have not finished "
                                  f"({named}{more}); cancel it (`tether cancel {run_id}`) or "
                                  "wait for it to end")
        ids = [i for i, _, _ in rows]
        return ids, tx.delete_runs(ids)
    return op
