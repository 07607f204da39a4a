"""The `runs` row layout both stores share: its columns, how a row becomes a `RunRecord` (whole,
or for a listing, with big values left out), and the SQL both backends build the same way.

Kept apart from the two `Tx` modules so that neither backend imports the other's."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

from ._codec import decoded
from ._records import RunRecord
from .errors import JournalCorrupt

_RUN_COLUMNS = (
    "id, tenant, agent, spec_version, input, status, result, error, reason, parent_id, root_id, "
    "depth, wake_at, cancel_requested, created_at, updated_at, attempts, options, flags"
)
_UPDATABLE = {
    "status", "result", "error", "reason", "wake_at", "cancel_requested", "updated_at",
    "attempts", "options", "spec_version", "flags",
}
_JSON_COLUMNS = {"result", "options", "input", "flags"}
# what is kept for a run besides its journal (table, column holding the run's id), its row last
_KEPT_FOR_A_RUN = (("signals", "run_id"), ("leases", "run_id"), ("budget_holds", "run_id"),
                   ("budget_spend", "scope"), ("span_exports", "run_id"), ("runs", "id"))
# a new run's root_agent (the worker queues' key): its root's agent, or its own for a root (two
# parameters: the root's id, the run's agent); kept out of _RUN_COLUMNS, which reads share
_ROOT_AGENT = "COALESCE((SELECT agent FROM runs WHERE id=?), ?)"


def _finished_roots_query(before: float, after: tuple[float, str] | None, tenant: str | None,
                          statuses: Collection[str], limit: int, mark: str
                          ) -> tuple[str, list[Any]]:
    """`Store.finished_roots` as SQL for either backend (`mark`: its placeholder)."""
    wanted = sorted(set(statuses))
    sql = (f"SELECT id, updated_at FROM runs WHERE parent_id IS NULL AND updated_at < {mark} "
           f"AND status IN ({','.join([mark] * len(wanted))})")
    params: list[Any] = [before, *wanted]
    if tenant is not None:
        sql += f" AND tenant = {mark}"
        params.append(tenant)
    if after is not None:
        sql += f" AND (updated_at, id) > ({mark}, {mark})"
        params += [after[0], after[1]]
    return sql + f" ORDER BY updated_at, id LIMIT {mark}", [*params, limit]


def _run_from_row(row: Sequence[Any]) -> RunRecord:
    run_id = row[0]
    return RunRecord(
        id=run_id, tenant=row[1], agent=row[2], spec_version=row[3],
        input=decoded(run_id, "the input", row[4]), status=row[5],
        result=decoded(run_id, "the result", row[6]), error=row[7], reason=row[8],
        parent_id=row[9], root_id=row[10], depth=row[11], wake_at=row[12],
        cancel_requested=bool(row[13]), created_at=row[14], updated_at=row[15],
        attempts=row[16], options=decoded(run_id, "the options", row[17]) or {},
        flags=decoded(run_id, "the flags", row[18]) or [],
    )


#: the largest input or result a listing carries (as stored JSON); a bigger one is left out
#: (`RunRecord.omitted`): a list of 100 runs carried every value whole, so one run with a
#: 50 MB result made `tether runs` take 350 MB and a viewer's `GET /v1/runs` 105 MB
LISTED_VALUE_MAX = 64 * 1024


def listed_columns(length: str) -> str:
    """`_RUN_COLUMNS` for a listing: input and result NULL when over `LISTED_VALUE_MAX`, then
    the two sizes (`length`: the backend's byte-length function)."""
    cut = {c: f"CASE WHEN {length}({c}) > {LISTED_VALUE_MAX} THEN NULL ELSE {c} END"
           for c in ("input", "result")}
    columns = ", ".join(cut.get(c.strip(), c.strip()) for c in _RUN_COLUMNS.split(","))
    return f"{columns}, {length}(input), {length}(result)"


def listed_run_from_row(row: Sequence[Any]) -> RunRecord:
    """A run for a listing (a row of `listed_columns`): one whose record cannot be read is
    listed all the same — its status, why in `error`, its unreadable parts empty — so one bad
    row hides no other run (read alone, `get_run`, it still raises `JournalCorrupt`)."""
    sizes, row = row[-2:], row[:-2]
    omitted = tuple(name for name, size in zip(("input", "result"), sizes, strict=True)
                    if size is not None and size > LISTED_VALUE_MAX)
    try:
        run = _run_from_row(row)
        return dataclasses.replace(run, omitted=omitted) if omitted else run
    except JournalCorrupt as exc:
        return RunRecord(
            id=row[0], tenant=row[1], agent=row[2], spec_version=row[3], input=None,
            status=row[5], result=None, error=str(exc), reason=row[8], parent_id=row[9],
            root_id=row[10], depth=row[11], wake_at=row[12], cancel_requested=bool(row[13]),
            created_at=row[14], updated_at=row[15], attempts=row[16], options={}, flags=[])
