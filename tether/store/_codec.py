"""JSON encoding shared by store and runtime: one codec so live values and replayed values are
byte-for-byte the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ._records import Event
from .errors import JournalCorrupt

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> bytes:
    # orjson >= 3.12 returns its whole output buffer: a 47-byte result holds a ~4 KB allocation
    # for as long as the bytes live (journal events, inputs, results held by executing runs: ~4 KB
    # of RSS each, measured). The copy right-sizes it, and costs less than the page faults it saves.
    return bytes(memoryview(orjson.dumps(value, option=_OPTS, default=_default)))


def loads(data: bytes | str | None) -> Any:
    if data is None:
        return None
    return orjson.loads(data)


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, bytes):
        raise TypeError(
            "bytes are not JSON; store them with ctx.store.put_artifact and keep the digest"
        )
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def decoded_events(run_id: str, rows: list[Any], where: str,
                   data: Callable[[Any], Any] | None = None) -> list[Event]:
    """`Event`s from `(seq, kind, key, name, data, ts)` rows; `data(raw)` gives the JSON bytes
    of a row's data column. A row whose data does not decode raises `JournalCorrupt` naming
    it (one bad row must not read as a crash of whoever loads the journal)."""
    raw = data or (lambda d: d)
    try:
        return [Event(run_id, r[0], r[1], r[2], r[3], loads(raw(r[4])), r[5]) for r in rows]
    except orjson.JSONDecodeError:
        for r in rows:
            try:
                loads(raw(r[4]))
            except orjson.JSONDecodeError as exc:
                raise JournalCorrupt(where, run_id, f"event {r[0]} ({r[1]})",
                                     str(exc)) from exc
        raise


def decoded(run_id: str, part: str, data: Any) -> Any:
    """`loads(data)`, a failure raising `JournalCorrupt` for `part` of run `run_id`."""
    try:
        return loads(data)
    except orjson.JSONDecodeError as exc:
        raise JournalCorrupt("", run_id, part, str(exc)) from exc
