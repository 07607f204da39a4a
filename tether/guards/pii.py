"""PII masking: the model sees `[EMAIL_1]`, the tool gets the real address (if the policy lets it).

Recognizers (`_pii_recognizers`) find candidate spans and keep only those the format's own rules
accept (Luhn and issuer prefixes for cards, the IBAN registry and mod-97, SSA rules for SSNs,
libphonenumber's metadata for phone numbers, the words before a number, entropy for generic
tokens), so ordinary numbers and words are not masked. Overlaps are resolved by recognizer
priority then length, so a card number is never half-masked as a phone number. Values the run's
vault already knows are masked wherever they reappear, also encoded (hex, base64, escapes,
character codes) or reversed (`_pii_derived`).

The `Vault` maps placeholders back to values. It is per run, placeholders are stable (the same
value always gets the same placeholder, across model calls and replays), and it is persisted only
encrypted (AES-GCM, key from `TETHER_VAULT_KEY`). Values leave it only through `Vault.release`,
for the kinds the policy grants the tool being called (`_pii_release`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tether.guards._pii_checks import (
    high_entropy_token,
    iban_ok,
    ipv4_ok,
    ipv6_ok,
    luhn_ok,
    shannon_entropy,
    ssn_ok,
)
from tether.guards._pii_derived import Decoded, Known, decoded_views, reveal_spans
from tether.guards._pii_recognizers import (
    DEFAULT_PHONE_REGIONS,
    PLACEHOLDER,
    PiiPattern,
    Recognizer,
    default_recognizers,
)
from tether.guards.errors import VaultError

BUILTIN_KINDS: frozenset[str] = frozenset(
    {"email", "phone", "card", "ssn", "iban", "ip", "secret"})

__all__ = [
    "BUILTIN_KINDS", "PLACEHOLDER", "Finding", "PiiMasker", "PiiPattern", "Recognizer", "Vault",
    "decode_key", "high_entropy_token", "iban_ok", "ipv4_ok", "ipv6_ok", "luhn_ok",
    "new_vault_key", "replace_spans", "shannon_entropy", "ssn_ok", "vault_key_from_env",
]

_PLACEHOLDER = PLACEHOLDER


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a JSON value, object keys included (where placeholders can hide)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)


@dataclass
class Vault:
    """Placeholder <-> value map of one run. Never sent to a model; persisted only via `seal`."""

    by_value: dict[str, str] = field(default_factory=dict)
    by_placeholder: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    _knowns: list[Known] = field(default_factory=list, init=False, repr=False, compare=False)

    def placeholder_for(self, label: str, value: str) -> str:
        key = f"{label}\x00{value}"
        if key in self.by_value:
            return self.by_value[key]
        n = self.counters.get(label, 0) + 1
        self.counters[label] = n
        ph = f"[{label}_{n}]"
        self.by_value[key] = ph
        self.by_placeholder[ph] = value
        return ph

    def __len__(self) -> int:
        return len(self.by_placeholder)

    def entries(self) -> list[tuple[str, str]]:
        return list(self.by_placeholder.items())

    def knowns(self) -> list[Known]:
        """Every value the vault holds, with its kind (the label of its placeholder)."""
        if len(self._knowns) != len(self.by_placeholder):
            out = []
            for ph, value in self.by_placeholder.items():
                m = _PLACEHOLDER.fullmatch(ph)
                if m is not None:
                    out.append(Known(m.group(1), value))
            self._knowns = out
        return list(self._knowns)

    # --------------------------------------------------------------- unmask
    def unmask_text(self, text: str, kinds: Collection[str] | None = None) -> str:
        """Placeholders of the given kinds (lower-case labels; None: every kind) replaced by
        their values; others, and placeholders the vault does not hold, stay as written."""
        def one(m: re.Match[str]) -> str:
            if kinds is not None and m.group(1).lower() not in kinds:
                return m.group(0)
            return self.by_placeholder.get(m.group(0), m.group(0))

        return _PLACEHOLDER.sub(one, text)

    def unmask(self, value: Any, kinds: Collection[str] | None = None) -> Any:
        """Replace placeholders inside any JSON value (tool arguments) with the real values."""
        if isinstance(value, str):
            return self.unmask_text(value, kinds)
        if isinstance(value, list):
            return [self.unmask(v, kinds) for v in value]
        if isinstance(value, dict):
            return {k: self.unmask(v, kinds) for k, v in value.items()}
        return value

    def release(self, value: Any, kinds: Collection[str]) -> tuple[Any, dict[str, Known]]:
        """`value` with the placeholders of `kinds` filled in, and what was filled in (by
        placeholder): what a tool the policy lets see those kinds receives."""
        released: dict[str, Known] = {}

        for text in strings_in(value):
            for m in _PLACEHOLDER.finditer(text):
                if m.group(1).lower() in kinds and m.group(0) in self.by_placeholder:
                    released[m.group(0)] = Known(m.group(1), self.by_placeholder[m.group(0)])
        return self.unmask(value, kinds), released

    # ------------------------------------------------------------ persistence
    def seal(self, key: bytes, context: str = "") -> bytes:
        """AES-256-GCM; `context` (e.g. the run id) is bound as associated data so a vault
        cannot be swapped into another run."""
        _check_key(key)
        nonce = os.urandom(12)
        plain = orjson.dumps({"entries": self.entries(), "counters": self.counters})
        return b"TV1" + nonce + AESGCM(key).encrypt(nonce, plain, context.encode())

    @classmethod
    def open(cls, blob: bytes, key: bytes, context: str = "") -> Vault:
        _check_key(key)
        if not blob.startswith(b"TV1") or len(blob) < 3 + 12 + 16:
            raise VaultError("not a sealed Tether vault")
        try:
            plain = AESGCM(key).decrypt(blob[3:15], blob[15:], context.encode())
        except InvalidTag:
            raise VaultError(
                "vault cannot be decrypted: wrong key, wrong run or tampered") from None
        data = orjson.loads(plain)
        vault = cls(counters=dict(data["counters"]))
        for ph, value in data["entries"]:
            label = _PLACEHOLDER.fullmatch(ph)
            vault.by_placeholder[ph] = value
            vault.by_value[f"{label.group(1) if label else ''}\x00{value}"] = ph
        return vault


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != 32:
        raise VaultError("vault key must be 32 bytes (AES-256)")


def vault_key_from_env(env: str = "TETHER_VAULT_KEY") -> bytes:
    """The key is base64 (urlsafe or standard) of 32 random bytes: `tether pii keygen`."""
    raw = os.environ.get(env)
    if not raw:
        raise VaultError(f"{env} is not set; generate one with `tether pii keygen`")
    return decode_key(raw, env)


def decode_key(raw: str, what: str = "vault key") -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw.strip() + "=" * (-len(raw.strip()) % 4))
    except (ValueError, TypeError):
        raise VaultError(f"{what} is not valid base64") from None
    if len(key) != 32:
        raise VaultError(f"{what} must decode to 32 bytes, got {len(key)}")
    return key


def new_vault_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Finding:
    label: str
    start: int
    end: int
    value: str
    placeholder: str


@dataclass
class _TextWork:
    """What masking one text costs, kept: the recognizers' spans, its decoded runs."""

    spans: list[tuple[int, int, int, str]]
    views: list[Decoded] | None = None


class PiiMasker:
    """Finds PII and replaces it with stable placeholders recorded in a `Vault`."""

    # a value found again, as written or disguised: after the specific recognizers, before the
    # generic high-entropy one (so base64 of an address is labelled EMAIL, not SECRET)
    KNOWN_PRIORITY = 55
    CACHE_TEXTS = 1024

    def __init__(self, extra: Sequence[Recognizer] = (), include_defaults: bool = True,
                 phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> None:
        base = default_recognizers(phone_regions) if include_defaults else ()
        self.recognizers: tuple[Recognizer, ...] = tuple(
            sorted((*base, *extra), key=lambda r: r.priority))
        # what the recognizers found in recent texts, and their decoded runs: an agent's
        # history is masked again before every model call, and only its new messages need
        # the (phone-number, decoding) work
        self._recent: OrderedDict[str, _TextWork] = OrderedDict()

    def fresh(self) -> PiiMasker:
        """A masker with these recognizers (stateless, shared) and an empty cache of its own:
        one per run, without sorting the recognizers again."""
        masker = PiiMasker.__new__(PiiMasker)
        masker.recognizers = self.recognizers
        masker._recent = OrderedDict()
        return masker

    def _work(self, text: str) -> _TextWork:
        work = self._recent.get(text)
        if work is not None:
            self._recent.move_to_end(text)
            return work
        work = _TextWork([(rec.priority, -(e - s), s, rec.label)
                          for rec in self.recognizers for s, e in rec.spans(text)])
        self._recent[text] = work
        if len(self._recent) > self.CACHE_TEXTS:
            self._recent.popitem(last=False)
        return work

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(r.label for r in self.recognizers)

    def find(self, text: str, vault: Vault | None = None) -> list[tuple[str, int, int]]:
        """(label, start, end) of every PII span, without overlaps; with a `vault`, also the
        values it already holds wherever they reappear, as written or disguised."""
        work = self._work(text)
        spans = list(work.spans)
        taken_placeholders = [m.span() for m in _PLACEHOLDER.finditer(text)]
        if vault is not None and len(vault):
            if work.views is None:
                work.views = decoded_views(text)
            for s, e, known in reveal_spans(text, vault.knowns(), fragments=False,
                                            views=work.views):
                spans.append((self.KNOWN_PRIORITY, -(e - s), s, known.label))
        spans.sort()
        taken = list(taken_placeholders)
        chosen: list[tuple[str, int, int]] = []
        for _, neg_len, s, label in spans:
            e = s - neg_len
            if any(s < te and ts < e for ts, te in taken):
                continue
            taken.append((s, e))
            chosen.append((label, s, e))
        chosen.sort(key=lambda t: t[1])
        return chosen

    def mask(self, text: str, vault: Vault) -> tuple[str, list[Finding]]:
        return replace_spans(text, self.find(text, vault), vault)

    def mask_value(self, value: Any, vault: Vault) -> Any:
        """Mask every string inside a JSON value (messages, tool results)."""
        if isinstance(value, str):
            return self.mask(value, vault)[0]
        if isinstance(value, list):
            return [self.mask_value(v, vault) for v in value]
        if isinstance(value, dict):
            return {k: self.mask_value(v, vault) for k, v in value.items()}
        return value


def replace_spans(text: str, spans: Sequence[tuple[str, int, int]],
                  vault: Vault) -> tuple[str, list[Finding]]:
    """`text` with each (label, start, end) span, in order and not overlapping, replaced by
    its placeholder."""
    out: list[str] = []
    findings: list[Finding] = []
    pos = 0
    for label, s, e in spans:
        value = text[s:e]
        ph = vault.placeholder_for(label, value)
        out.append(text[pos:s])
        out.append(ph)
        findings.append(Finding(label, s, e, value, ph))
        pos = e
    out.append(text[pos:])
    return "".join(out), findings



_SHARED: list[PiiMasker] = []
_LOCK = threading.Lock()


def _default_masker() -> PiiMasker:
    """The default recognizers, built once per process (building them sorts and compiles them;
    each scrubber takes a `fresh` copy with a cache of its own)."""
    with _LOCK:
        if not _SHARED:
            _SHARED.append(PiiMasker())
        return _SHARED[0].fresh()


class Scrubber:
    """Masks PII and secrets in free text and JSON values, with stable placeholders: for text
    that leaves the run for a reader the policy does not cover (an exported span, a viewer
    key's timeline, the web UI below the operator role).

    Why not the run's vault: the guards mask what the *model* reads, but the journal keeps what
    tools really returned and raised (a CRM row, a bearer token quoted by an HTTP error), and
    every view derived from the journal would copy it out. A scrubber masks such text with the
    default recognizers into placeholders of its own numbering (`[EMAIL_1]` is the first
    address *this* scrubber saw, not necessarily the model's): it never maps one back, so it
    needs no vault of the run's. One scrubber per reader of a run keeps a value's placeholder
    stable across that run's spans or rows."""

    __slots__ = ("_masker", "_vault")

    def __init__(self, masker: PiiMasker | None = None) -> None:
        self._masker = masker if masker is not None else _default_masker()
        self._vault = Vault()

    def text(self, text: str) -> str:
        """`text` with every value the recognizers (or this scrubber's earlier texts) find
        replaced by its placeholder."""
        if not text:
            return text
        return self._masker.mask(text, self._vault)[0]

    def value(self, value: Any) -> Any:
        """Every string inside a JSON value masked (keys are names, not data: kept)."""
        return self._masker.mask_value(value, self._vault)

    def json(self, value: Any) -> str:
        """A JSON value masked, as JSON text (what a span attribute holds)."""
        return json.dumps(self.value(value), default=str, ensure_ascii=False)
