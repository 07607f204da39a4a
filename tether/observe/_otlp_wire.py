"""SpanRecords as an OTLP `ExportTraceServiceRequest`, encoded straight to protobuf bytes.

Why not the SDK's encoder: it builds a protobuf object per span, per attribute and per value
(~30 µs for a span of six attributes, more than the durable step the span describes costs the
runtime), and the bytes it produces are a fixed layout. Here a span is a few byte strings joined,
and what repeats from span to span (an attribute's key, `gen_ai.operation.name = "chat"`, a model
or tool name) is encoded once. The official exporters still send the bytes (`_otlp_send`), and
tests/observe/test_otlp_wire.py holds the result equal to what the SDK's encoder makes of the
same spans (via `SpanConverter`), so the two cannot drift apart.

The wire format: https://protobuf.dev/programming-guides/encoding/ ; the messages:
opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto (opentelemetry-proto).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .spans import AttrValue, SpanEvent, SpanRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_KIND = {"internal": b"\x30\x01", "client": b"\x30\x03"}  # Span.kind (6): INTERNAL, CLIENT
_FLAGS = b"\x85\x01" + struct.pack("<I", 0x100)  # Span.flags (16): CONTEXT_HAS_IS_REMOTE
_STATUS = {"unset": b"\x7a\x00", "ok": b"\x7a\x02\x18\x01"}  # Span.status (15): code (3)
#: strings this long are not remembered (content, error messages): they rarely repeat
_CACHED_LEN = 96
_CACHE_MAX = 8192
#: attributes whose value is new on every span (a model's tool call id): never remembered, so
#: they neither miss in two caches per span nor fill them up (a full cache is cleared)
_UNIQUE = frozenset({"gen_ai.tool.call.id"})
#: journal seqs whose `tether.journal.seq` attribute an encoder keeps (~60 bytes each, made as
#: spans need them): every run's spans count from 1 again, so a worker's runs share them
SEQS_KEPT = 4096
#: a `ScopeSpans.spans` field's tag and length, by the length of the span (most are shorter)
SPAN_HEADS = tuple(b"\x12" + (bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)))
                   for n in range(1024))
#: `SpanEncoder.int_heads`: an int attribute's field up to its value, for a value of 1 and of 2
#: varint bytes, and the whole field for every value of 1 byte
IntHeads = tuple[bytes, bytes, bytes, tuple[bytes, ...]]


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 as protobuf writes it: ten bytes of two's complement
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:  # journal seqs and token counts: two bytes, without the loop
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: its tag, the body's length, the body."""
    n = len(body)
    return tag + (bytes((n,)) if n < 0x80 else _varint(n)) + body


def _any_value(value: AttrValue) -> bytes:
    """An `AnyValue` message, as the SDK's encoder chooses its variant (bool before int)."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, Sequence):  # ArrayValue (5) of AnyValues (1)
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(x)) for x in value))
    raise TypeError(f"a span attribute cannot hold {type(value).__name__} ({value!r})")


class SpanEncoder:
    """Spans as `Span` messages (each as the `ScopeSpans.spans` field a request holds). Made
    once per exporter or live export, on one thread: the attributes it has seen, remembered."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._pairs: dict[tuple[str, AttrValue], bytes] = {}
        self._attrs: dict[tuple[str, Any], bytes] = {}
        self._ids: dict[str, bytes] = {}
        self._names: dict[tuple[str, str], bytes] = {}
        self._heads: dict[tuple[str, str], Any] = {}  # `int_heads`, `str_heads`
        # `tether.journal.seq` as a KeyValue's key (its value differs from span to span)
        self._seq_key = self._key("tether.journal.seq")
        self._seq_len = len(self._seq_key) + 3  # and the value's tag, length and int tag
        #: `seq_attribute` of the first seqs, made once: every run's spans carry the same ones
        self.seq_attributes: list[bytes | None] = [None] * SEQS_KEPT

    def span_field(self, s: SpanRecord) -> bytes:
        """`s` as the `spans` (2) field of a `ScopeSpans`: what `WireEncoder.wrap` joins."""
        return _field(b"\x12", self.span(s))

    def named(self, name: str, kind: str) -> bytes:
        """A span's `name` (5) and `kind` (6) fields."""
        named = self._names.get((name, kind))
        if named is None:
            if len(self._names) > _CACHE_MAX:
                self._names.clear()
            named = self._names[(name, kind)] = _field(b"\x2a", name.encode()) + _KIND[kind]
        return named

    def seq_attribute(self, seq: int) -> bytes:
        """The `tether.journal.seq` attribute (9) every span carries (`SpanConverter` adds it)."""
        if 0 <= seq < SEQS_KEPT:
            made = self.seq_attributes[seq]
            if made is not None:
                return made
        # KeyValue{key, AnyValue{int_value (3)}}: every length below 0x80 (a varint is <= 10 bytes)
        n = _varint(seq)
        made = b"".join((b"\x4a", bytes((self._seq_len + len(n),)), self._seq_key,
                         b"\x12", bytes((1 + len(n),)), b"\x18", n))
        if 0 <= seq < SEQS_KEPT:
            self.seq_attributes[seq] = made
        return made

    def span(self, s: SpanRecord) -> bytes:
        """One `Span` message; `tether.journal.seq` added as `SpanConverter` adds it."""
        ids = self._ids
        trace = ids.get(s.trace_id)
        if trace is None:
            if len(ids) > _CACHE_MAX:
                ids.clear()
            trace = ids[s.trace_id] = b"\x0a\x10" + bytes.fromhex(s.trace_id)
        parts = [trace, b"\x12\x08" + bytes.fromhex(s.span_id)]
        if s.parent_id:
            parent = ids.get(s.parent_id)
            if parent is None:
                parent = ids[s.parent_id] = b"\x22\x08" + bytes.fromhex(s.parent_id)
            parts.append(parent)
        attribute = self.attribute
        parts += (self.named(s.name, s.kind), b"\x39" + _pack_q(round(s.start * 1e9)),
                  b"\x41" + _pack_q(round(s.end * 1e9)))
        remembered = self._attrs  # a short string's field straight from `attribute`'s cache
        for k, val in s.attributes.items():
            encoded = remembered.get((k, val)) if val.__class__ is str else None
            parts.append(attribute(k, val) if encoded is None else encoded)
        parts.append(self.seq_attribute(s.end_seq))
        if s.events:
            parts += [_field(b"\x5a", self._event(e)) for e in s.events]
        status = _STATUS.get(s.status)
        if status is None:  # error: code (3) ERROR and the message (2), if any
            message = s.status_message
            status = _field(b"\x7a", (_field(b"\x12", message.encode()) if message else b"")
                            + b"\x18\x02")
        parts += (status, _FLAGS)
        return b"".join(parts)

    def _event(self, e: SpanEvent) -> bytes:
        pair = self.pair
        return b"".join((b"\x09" + _pack_q(round(e.ts * 1e9)), _field(b"\x12", e.name.encode()),
                         *[_field(b"\x1a", pair(k, val)) for k, val in e.attributes.items()]))

    def attribute(self, key: str, value: AttrValue) -> bytes:
        """A span's `attributes` (9) field holding one `KeyValue`; remembered as `pair`."""
        known: tuple[str, Any]
        if key in _UNIQUE and value.__class__ is str:
            return _field(b"\x4a", self._key(key) + _field(b"\x12", _field(b"\x0a",
                                                                            value.encode())))
        if (value.__class__ is str and len(value) <= _CACHED_LEN) or value.__class__ is bool:
            known = (key, value)
        elif value.__class__ is int and -1 < value < 0x4000:  # token counts: not remembered
            n = _varint(value)
            key_field = self._key(key)
            body_len = len(key_field) + 3 + len(n)
            if body_len < 0x80:
                return b"".join((b"\x4a", bytes((body_len,)), key_field, b"\x12",
                                 bytes((1 + len(n),)), b"\x18", n))
            return _field(b"\x4a", self.pair(key, value))
        elif (value.__class__ is list and len(value) == 1 and value[0].__class__ is str
              and len(value[0]) <= _CACHED_LEN):  # finish reasons: on every chat span
            known = (key, (value[0],))  # a tuple: never equal to a string's or a bool's key
        else:
            return _field(b"\x4a", self.pair(key, value))
        encoded = self._attrs.get(known)
        if encoded is None:
            if len(self._attrs) > _CACHE_MAX:
                self._attrs.clear()
            encoded = self._attrs[known] = _field(b"\x4a", self.pair(key, value))
        return encoded

    def pair(self, key: str, value: AttrValue) -> bytes:
        """A `KeyValue` message's body; remembered when the value is a short string or a bool."""
        if not (value.__class__ is bool or (value.__class__ is str and len(value) <= _CACHED_LEN)):
            return self._key(key) + _field(b"\x12", _any_value(value))  # numbers rarely repeat
        known = (key, value)  # True and 1 are equal keys, but an int is never cached
        encoded = self._pairs.get(known)
        if encoded is None:
            if len(self._pairs) > _CACHE_MAX:
                self._pairs.clear()
            encoded = self._pairs[known] = self._key(key) + _field(b"\x12", _any_value(value))
        return encoded

    def int_heads(self, key: str) -> IntHeads:
        """What precedes the value in a `Span.attributes` field of `key` and an int value of 1
        and of 2 varint bytes (`small_int`), and the whole field for each value of 1 byte (a
        token count's, made once: ~40 ns, not ~250). For `_wire_spans`, on every span."""
        made = self._heads.get(("int", key))
        if made is None:
            field = self._key(key)
            if len(field) + 5 >= 0x80:
                raise ValueError(f"an attribute key too long for small_int: {key!r}")

            def head(size: int) -> bytes:  # KeyValue{key, AnyValue{int_value (3)}}
                return b"\x4a" + bytes((len(field) + 3 + size,)) + field + b"\x12" + bytes(
                    (1 + size,)) + b"\x18"

            one = head(1)
            made = self._heads[("int", key)] = (
                b"", one, head(2), tuple(one + bytes((n,)) for n in range(0x80)))
        return made

    def str_heads(self, key: str) -> tuple[bytes, ...]:
        """What precedes an ASCII string of each length in a `Span.attributes` field of `key`
        (a tool call's id), for every length whose field is short (its lengths one byte each);
        a longer or non-ASCII value is `attribute`'s to do."""
        made = self._heads.get(("str", key))
        if made is None:
            field = self._key(key)
            made = self._heads[("str", key)] = tuple(
                b"".join((b"\x4a", bytes((len(field) + 4 + n,)), field, b"\x12",
                          bytes((n + 2,)), b"\x0a", bytes((n,))))
                for n in range(0x80 - 4 - len(field)))
        return made

    def key_field(self, key: str) -> bytes:
        """A `KeyValue`'s `key` (1) field."""
        return self._key(key)

    def _key(self, key: str) -> bytes:
        encoded = self._keys.get(key)
        if encoded is None:
            encoded = self._keys[key] = _field(b"\x0a", key.encode())
        return encoded


def small_int(heads: IntHeads, n: int) -> bytes:
    """An int attribute (token counts, journal seqs) as `SpanEncoder.attribute` encodes it,
    without its generic path; b"" when `n` is not in 0..16383 (then ask the encoder)."""
    if 0 <= n < 0x80:
        return heads[3][n]
    if 0 <= n < 0x4000:
        return heads[2] + bytes(((n & 0x7F) | 0x80, n >> 7))
    return b""


class WireEncoder(SpanEncoder):
    """Whole requests: the spans under the exporter's resource and scope (encoded once)."""

    def __init__(self, resource: Resource, scope: InstrumentationScope) -> None:
        super().__init__()
        self._resource = _field(b"\x0a", _attributes(resource.attributes))  # Resource (1)
        self._scope = _field(b"\x0a", b"".join((  # ScopeSpans.scope (1)
            _field(b"\x0a", scope.name.encode()),
            _field(b"\x12", (scope.version or "").encode()) if scope.version else b"")))
        schema = scope.schema_url or ""
        self._scope_schema = _field(b"\x1a", schema.encode()) if schema else b""
        self._resource_schema = (_field(b"\x1a", resource.schema_url.encode())
                                 if resource.schema_url else b"")

    def request(self, spans: Sequence[SpanRecord]) -> bytes:
        """An `ExportTraceServiceRequest` holding `spans` (one resource, one scope)."""
        return self.wrap([self.span_field(s) for s in spans])

    def requests(self, spans: Sequence[SpanRecord], max_bytes: int) -> list[bytes]:
        """`spans` in requests of at most about `max_bytes` each (a collector limits the size of
        one request; a span larger than that goes alone)."""
        return self.requests_of([self.span_field(s) for s in spans], max_bytes)

    def requests_of(self, span_fields: Sequence[bytes], max_bytes: int) -> list[bytes]:
        """Spans encoded already (`span_field`, `WireSpans`) in requests of at most about
        `max_bytes` each."""
        if sum(map(len, span_fields)) <= max_bytes:  # the usual batch: one request, no loop
            return [self.wrap(span_fields)] if span_fields else []
        out: list[bytes] = []
        at, size = 0, 0
        for i, encoded in enumerate(span_fields):
            if i > at and size + len(encoded) > max_bytes:
                out.append(self.wrap(span_fields[at:i]))
                at, size = i, 0
            size += len(encoded)
        if at < len(span_fields):
            out.append(self.wrap(span_fields[at:]))
        return out

    def wrap(self, span_fields: Sequence[bytes]) -> bytes:
        """An `ExportTraceServiceRequest` of spans encoded already: its lengths worked out
        first, so the request's bytes (~0.6 MB for a batch) are copied once, not per message
        level."""
        scope_len = len(self._scope) + sum(map(len, span_fields)) + len(self._scope_schema)
        scope_head = b"\x12" + _varint(scope_len)  # ResourceSpans.scope_spans (2)
        resource_len = (len(self._resource) + len(scope_head) + scope_len
                        + len(self._resource_schema))
        return b"".join((b"\x0a", _varint(resource_len), self._resource, scope_head,
                         self._scope, *span_fields, self._scope_schema, self._resource_schema))


def _attributes(attributes: Any) -> bytes:
    return b"".join(_field(b"\x0a", _field(b"\x0a", str(k).encode())
                           + _field(b"\x12", _any_value(val)))
                    for k, val in (attributes or {}).items())
