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
#: `mentioned(find=...)` of each backend: its substring search over a blob column
SQLITE_FIND = "instr({col}, ?) > 0"
POSTGRES_FIND = "position(?::bytea in {col}) > 0"

#: where a run keeps what may hold a digest: (table, key column, blob columns, time column)
_BLOBS = (("events", "id", ("data",), "ts"),
          ("runs", "id", ("input", "result", "options", "flags"), "updated_at"),
          ("signals", "id", ("payload",), "created_at"))


def digests_in(blob: bytes) -> set[str]:
    """The words of `blob` that look like artifact digests (a caller checks which are stored)."""
    return {w.decode() for w in _DIGEST.findall(blob)}


#: at most this many candidates are looked for by the database itself, one scan each (a
#: deletion's few): its substring search beats reading every blob into Python (200,000 events:
#: 0.09 s a candidate against 3 s for the read); more (a prune's thousands) are read once
SEARCHED_MAX = 8
_SEARCH_PAGE = 100  # rows holding a candidate's bytes, read at a time to find it as a word


def mentioned(query: Query, candidates: Collection[str], *, since: float | None = None,
              find: str | None = None) -> set[str]:
    """The `candidates` some stored blob mentions (with `since`: only blobs written since
    then, by each table's time column). `find`: the backend's SQL for "column `{col}` holds
    the bytes `?`", used for a few candidates (`SEARCHED_MAX`)."""
    wanted = {d.encode() for d in candidates}
    found: set[bytes] = set()
    if not wanted:
        return set()
    if find is not None and len(wanted) <= SEARCHED_MAX:
        return _searched(query, wanted, since, find)
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


def _searched(query: Query, wanted: set[bytes], since: float | None, find: str) -> set[str]:
    """Each candidate by the database's substring search; the rows it finds are read here
    for the digest as a word of its own (`_DIGEST`), as the full read counts it."""
    found: set[str] = set()
    for digest in sorted(wanted):
        if any(_mentions_in(query, table, key, columns, when, digest, since, find)
               for table, key, columns, when in _BLOBS):
            found.add(digest.decode())
    return found


def _mentions_in(query: Query, table: str, key: str, columns: tuple[str, ...], when: str,
                 digest: bytes, since: float | None, find: str) -> bool:
    holds = "(" + " OR ".join(find.format(col=c) for c in columns) + ")"
    after: Any = None
    while True:
        clauses: list[str] = [holds]
        params: list[Any] = [digest] * len(columns)
        if since is not None:
            clauses.append(f"{when} >= ?")
            params.append(since)
        if after is not None:
            clauses.append(f"{key} > ?")
            params.append(after)
        rows = query(f"SELECT {key}, {', '.join(columns)} FROM {table} WHERE "
                     f"{' AND '.join(clauses)} ORDER BY {key} LIMIT {_SEARCH_PAGE}", params)
        for row in rows:
            if any(blob and digest in _DIGEST.findall(bytes(blob)) for blob in row[1:]):
                return True
        if len(rows) < _SEARCH_PAGE:
            return False
        after = rows[-1][0]
