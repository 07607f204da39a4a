"""Where a text reveals a known PII value in disguise: hex, base64, URL or HTML/backslash
escapes, character codes, reversed, other case, or (for the output of a call that was handed
the value) a large enough piece of it.

A model that may not see a value can still ask a tool to transform it (`SELECT hex('[EMAIL_1]')`)
and read the result. Encoding the value every possible way cannot keep up (base64 of
"mail: " + value does not contain base64 of the value), so this goes the other way round: it
decodes every run of the text that looks encoded, and looks for the value in what comes out.
"""

from __future__ import annotations

import base64
import binascii
import html
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote_plus

_DIGIT_KINDS = frozenset({"PHONE", "CARD", "SSN"})

_HEX_RUN = re.compile(
    r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{2}(?:[ :-]?[0-9A-Fa-f]{2}){3,}[0-9A-Fa-f]?(?![0-9A-Fa-f])")
_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{8,}={0,2}")
_PERCENT_RUN = re.compile(r"[\w.~+!*'()@-]*(?:%[0-9A-Fa-f]{2}[\w.~+!*'()@-]*)+")
_CODES_RUN = re.compile(r"(?<![\w.])\d{2,7}(?:[^\w\n]{1,6}\d{2,7}){3,}(?![\w.])")
_ESCAPES_RUN = re.compile(
    r"(?:\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\[0-7]{3}|&#[xX]?[0-9a-fA-F]{1,6};|[\w.@+-])*"
    r"(?:(?:\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\[0-7]{3}|&#[xX]?[0-9a-fA-F]{1,6};)"
    r"[\w.@+-]*){3,}")


@dataclass(frozen=True)
class Known:
    """A value the run knows is PII, with its kind; `digits` compares phone, card and SSN
    numbers whatever their punctuation."""

    label: str
    value: str

    @property
    def digits(self) -> bool:
        return self.label in _DIGIT_KINDS

    def needle(self) -> str:
        return self._needle

    @cached_property
    def _needle(self) -> str:
        return "".join(c for c in self.value if c.isdigit()) if self.digits \
            else _fold(self.value)


def fragment_length(known: Known) -> int:
    """How long a piece of a value must be to count as revealing it: a third of it (a half
    for numbers, whose short pieces are everywhere), never less than 5 characters."""
    n = len(known.needle())
    if known.digits:
        return min(n, max(6, math.ceil(n / 2)))
    return min(n, max(5, math.ceil(n / 3)))


def _fold(s: str) -> str:
    """Lower-case, one character for one (so positions in the folded text are positions in
    the original)."""
    low = s.lower()
    if len(low) == len(s):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in s)


_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*_\d+\]")


def _digits_view(s: str) -> tuple[str, list[int]]:
    """The digits of `s` (not those of placeholders) and where each one is."""
    hidden: set[int] = set()
    for m in _PLACEHOLDER.finditer(s):
        hidden.update(range(*m.span()))
    pos = [i for i, c in enumerate(s) if c.isdigit() and i not in hidden]
    return "".join(s[i] for i in pos), pos


def _pieces(needle: str, k: int) -> list[str]:
    return [needle[i:i + k] for i in range(len(needle) - k + 1)]


def plain_spans(text: str, known: Known, k: int,
                _views: tuple[str, tuple[str, list[int]]] | None = None,
                ) -> list[tuple[int, int]]:
    """Spans of `text` (as written or reversed) made of pieces of at least `k` characters of
    the value, merged."""
    needle = known.needle()
    if len(needle) < 3:
        return []
    folded, (digits, digit_pos) = _views or (_fold(text), _digits_view(text))
    if known.digits:
        hay, where = digits, digit_pos
    else:
        hay, where = folded, None
    hits: list[tuple[int, int]] = []
    for candidate in (needle, needle[::-1]):
        for piece in _pieces(candidate, k):
            i = hay.find(piece)
            while i >= 0:
                hits.append((where[i], where[i + k - 1] + 1) if where is not None
                            else (i, i + k))
                i = hay.find(piece, i + 1)
    return _merge(hits)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


# --------------------------------------------------------------------------- decoders
def _utf8(data: bytes) -> str:
    return data.decode("utf-8", errors="ignore")


def _hex(run: str) -> Iterator[str]:
    digits = re.sub(r"[ :-]", "", run)
    for shift in (0, 1):  # a hex digit glued before the run shifts every byte by half
        aligned = digits[shift:]
        aligned = aligned[:len(aligned) - len(aligned) % 2]
        try:
            data = bytes.fromhex(aligned)
        except ValueError:
            continue
        yield _utf8(data)
        if len(data) % 2 == 0:
            yield data.decode("utf-16-be", errors="ignore")
            yield data.decode("utf-16-le", errors="ignore")


def _b64(run: str) -> Iterator[str]:
    core = run.rstrip("=")
    mixed = sum(bool(re.search(p, core)) for p in ("[a-z]", "[A-Z]", "[0-9+/_-]")) >= 2
    if len(core) < 8 or not mixed:  # a long word is not worth decoding
        return
    for skip in range(4):  # the run may be glued to the text before it
        chunk = core[skip:]
        chunk += "=" * (-len(chunk) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                yield _utf8(decode(chunk))
            except (binascii.Error, ValueError):
                continue


def _percent(run: str) -> Iterator[str]:
    yield unquote_plus(run)


def _codes(run: str) -> Iterator[str]:
    numbers = [int(n) for n in re.findall(r"\d+", run)]
    yield "".join(chr(n) if 32 <= n < 0x110000 else "\x00" for n in numbers)
    # hex code points written without 0x (`6a 61 6e 65`) are handled by the hex decoder


def _escapes(run: str) -> Iterator[str]:
    text = html.unescape(run)

    def one(m: re.Match[str]) -> str:
        token = m.group(0)
        base = 8 if token[1].isdigit() else 16
        digits = token[1:] if base == 8 else token[2:]
        try:
            return chr(int(digits, base))
        except ValueError:
            return token

    yield re.sub(r"\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\[0-7]{3}", one, text)


_DECODERS = ((_HEX_RUN, _hex), (_B64_RUN, _b64), (_PERCENT_RUN, _percent),
             (_CODES_RUN, _codes), (_ESCAPES_RUN, _escapes))


def decoded_runs(text: str, depth: int = 2) -> Iterator[tuple[int, int, str]]:
    """(start, end, decoded) for every run of `text` that decodes to something; decoded text
    is decoded again down to `depth` (base64 of hex), reported against the outer run."""
    for pattern, decode in _DECODERS:
        for m in pattern.finditer(text):
            for decoded in decode(m.group(0)):
                if not decoded or decoded == m.group(0):
                    continue
                yield m.start(), m.end(), decoded
                if depth > 1:
                    for _, _, deeper in decoded_runs(decoded, depth - 1):
                        yield m.start(), m.end(), deeper


@dataclass(frozen=True)
class Decoded:
    """A run of a text, decoded: its span, and the decoded text folded to lower case and
    reduced to its digits, ready to be searched for any number of values."""

    start: int
    end: int
    folded: str
    digits: str


def decoded_views(text: str) -> list[Decoded]:
    """Every distinct decoding of every encoded-looking run of `text` (what `reveal_spans`
    searches; independent of the values searched for, so a caller may keep it per text)."""
    seen: set[tuple[int, int, str]] = set()
    views: list[Decoded] = []
    for start, end, decoded in decoded_runs(text):
        if (start, end, decoded) in seen:
            continue
        seen.add((start, end, decoded))
        views.append(Decoded(start, end, _fold(decoded), _digits_view(decoded)[0]))
    return views


def _reveals(view: Decoded, known: Known, k: int) -> bool:
    needle = known.needle()
    hay = view.digits if known.digits else view.folded
    if len(hay) < k:
        return False
    return any(p in hay or p[::-1] in hay for p in _pieces(needle, k))


def reveal_spans(text: str, knowns: Sequence[Known], *, fragments: bool,
                 views: Sequence[Decoded] | None = None) -> list[tuple[int, int, Known]]:
    """Spans of `text` that reveal one of `knowns` (as written in any case, reversed, or in a
    decoded run): whole values only, or (`fragments`) any piece of `fragment_length`. `views`:
    `decoded_views(text)` if the caller already has them."""
    spans: list[tuple[int, int, Known]] = []
    usable = [kn for kn in knowns if len(kn.needle()) >= 4]
    if not usable:
        return spans
    lengths = [fragment_length(kn) if fragments else len(kn.needle()) for kn in usable]
    text_views = (_fold(text), _digits_view(text))
    for kn, k in zip(usable, lengths, strict=True):
        spans.extend((s, e, kn) for s, e in plain_spans(text, kn, k, text_views))
    for view in decoded_views(text) if views is None else views:
        for kn, k in zip(usable, lengths, strict=True):
            if _reveals(view, kn, k):
                spans.append((view.start, view.end, kn))
                break
    return spans
