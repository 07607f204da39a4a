"""Which artifacts the database still mentions: what `Tether.prune` may sweep.

Artifacts are stored once by content (a sha256 digest) and referenced by that digest from
wherever a run keeps it — an event's data (a sandbox's file manifest, a step's result), a run's
input, result or options, a signal's payload — not through a column the database could join
on. So the references are found by reading: every stored blob, page by page, for 64-hex-digit
words that are digests of the candidates. Shared by both backends; `query` is a backend's
`(sql with ? placeholders, params) -> rows`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from typing import Any

#: a digest as `put_artifact` makes them (lowercase hex sha256), alone as a word
_DIGEST = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_PAGE = 2000
#: `put_artifact` of an artifact already stored renews its time when it is older than this: a
#: sweep spares what was put within its grace period minus this
ARTIFACT_RENEW_S = 600.0

Query = Callable[[str, Sequence[Any]], list[Any]]

#: where a run keeps what may hold a digest: (table, key column, blob columns, time column)
_BLOBS = (("events", "id", ("data",), "ts"),
          ("runs", "id", ("input", "result", "options", "flags"), "updated_at"),
          ("signals", "id", ("payload",), "created_at"))


def digests_in(blob: bytes) -> set[str]:
    """The words of `blob` that look like artifact digests (a caller checks which are stored)."""
    return {w.decode() for w in _DIGEST.findall(blob)}


def mentioned(query: Query, candidates: Collection[str], *, since: float | None = None
              ) -> set[str]:
    """The `candidates` some stored blob mentions (with `since`: only blobs written since
    then, by each table's time column)."""
    wanted = {d.encode() for d in candidates}
    found: set[bytes] = set()
    if not wanted:
        return set()
    for table, key, columns, when in _BLOBS:
        after: Any = None
        while True:
            clauses = [f"{when} >= ?"] if since is not None else []
            params: list[Any] = [since] if since is not None else []
            if after is not None:
                clauses.append(f"{key} > ?")
                params.append(after)
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            rows = query(f"SELECT {key}, {', '.join(columns)} FROM {table} {where} "
                         f"ORDER BY {key} LIMIT {_PAGE}", params)
            for row in rows:
                for blob in row[1:]:
                    if blob:
                        found.update(w for w in _DIGEST.findall(bytes(blob)) if w in wanted)
            if len(rows) < _PAGE or found >= wanted:
                break
            after = rows[-1][0]
        if found >= wanted:
            break
    return {d.decode() for d in found}
