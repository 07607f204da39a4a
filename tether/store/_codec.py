"""JSON encoding shared by store and runtime: one codec so live values and replayed values are
byte-for-byte the same."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson

from ._records import Event
from .errors import JournalCorrupt

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
#: how deep lists and objects may nest in a journaled value (orjson's limit)
MAX_DEPTH = 254
#: the largest value journaled, as JSON: well under what a field holds (SQLite's 1e9 bytes by
#: default, PostgreSQL's 1 GB), so that a step's result never fails the write itself — that
#: failure came after the step had run, and its run went round again at every lease expiry
MAX_VALUE_BYTES = 256 << 20


def dumps(value: Any) -> bytes:
    """JSON bytes of `value`; a string holding lone surrogates (which UTF-8, and so JSON, cannot
    hold) is written with them as backslash escapes of their bytes (`text_safe`)."""
    # orjson >= 3.12 returns its whole output buffer: a 47-byte result holds a ~4 KB allocation
    # for as long as the bytes live (journal events, inputs, results held by executing runs: ~4 KB
    # of RSS each, measured). The copy right-sizes it, and costs less than the page faults it saves.
    try:
        return _bounded(orjson.dumps(value, option=_OPTS, default=_default))
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, TypeError):  # `_default`'s explanation, not orjson's
            raise orjson.JSONEncodeError(str(exc.__cause__)) from exc.__cause__
        if "Recursion limit" in str(exc):
            raise orjson.JSONEncodeError(
                f"it is nested deeper than {MAX_DEPTH} levels (lists and objects within each "
                "other), more than the journal's JSON encoder writes; flatten it, or store it "
                "as an artifact (ctx.store.put_artifact) and keep the digest") from None
        if "surrogates" not in str(exc):
            raise
    return _bounded(orjson.dumps(text_safe(value), option=_OPTS, default=_default))


def _bounded(encoded: bytes) -> bytes:
    if len(encoded) > MAX_VALUE_BYTES:
        raise ValueTooLarge(
            f"it is {_size(len(encoded))} as JSON, over the journal's {_size(MAX_VALUE_BYTES)} "
            "per value; store it as an artifact (ctx.store.put_artifact) and keep the digest")
    return bytes(memoryview(encoded))


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


class ValueTooLarge(TypeError):
    """A value over `MAX_VALUE_BYTES` as JSON (a TypeError like every value the journal
    cannot hold, so each caller's "not JSON-serializable" path explains it)."""


def text_safe(value: Any) -> Any:
    """`value` with every string that holds lone surrogates made valid text.

    Why: such strings are ordinary in Python (a file name that is not UTF-8 comes back from
    `os.listdir` as `'caf\\udce9'`, `surrogateescape`), but JSON cannot hold them, and a tool or
    step whose result could not be journaled would fail after its side effect happened (and
    its retry repeat it). A surrogate that stands for a byte becomes that byte (so bytes that
    were UTF-8 read as the text they were), any other byte that is not UTF-8 a `\\xNN` escape:
    what a reader (a model, a person) can still make sense of. Live and replayed values agree,
    as both are read back from the same JSON."""
    kind = type(value)
    if kind is str or isinstance(value, str):
        return _valid_text(str(value))
    if kind is dict or isinstance(value, dict):
        return {text_safe(k): text_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [text_safe(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(text_safe(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return text_safe(dataclasses.asdict(value))
    if callable(getattr(value, "model_dump", None)):
        return text_safe(value.model_dump(mode="json"))
    return value


def _valid_text(text: str) -> str:
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate not from `surrogateescape`: its own UTF-8 bytes
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def loads(data: bytes | str | None) -> Any:
    if data is None:
        return None
    return orjson.loads(data)


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:  # members that do not compare (1 and "a"): ordered by their JSON
            return sorted(value, key=dumps)
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
