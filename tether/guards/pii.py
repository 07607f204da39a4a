"""PII masking: the model sees `[EMAIL_1]`, the tool gets the real address.

Detectors find candidate spans with a regex and keep only those a validator accepts (Luhn for
cards, mod-97 for IBANs, octet ranges for IPs, SSA rules for SSNs, Shannon entropy for generic
tokens), so ordinary numbers and words are not masked. Overlaps are resolved by detector priority
then length, so a card number is never half-masked as a phone number.

The `Vault` maps placeholders back to values. It is per run, placeholders are stable (the same
value always gets the same placeholder, across model calls and replays), and it is persisted only
encrypted (AES-GCM, key from `TETHER_VAULT_KEY`). `unmask` is meant to be called only at tool
execution time.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tether.guards.errors import VaultError

Validator = Callable[[str], bool]


@dataclass(frozen=True)
class PiiPattern:
    """A detector: `label` names the placeholder (`[LABEL_n]`); lower `priority` wins overlaps."""

    label: str
    regex: re.Pattern[str]
    validator: Validator | None = None
    priority: int = 50
    group: int = 0  # which regex group is the sensitive value

    @classmethod
    def custom(cls, label: str, regex: str, priority: int = 40) -> PiiPattern:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", label):
            raise ValueError(f"PII label must be UPPER_SNAKE_CASE, got {label!r}")
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise ValueError(f"invalid regular expression for {label}: {exc}") from None
        return cls(label, compiled, None, priority)


# ------------------------------------------------------------------ validators
def luhn_ok(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = re.sub(r"[\s-]", "", candidate).upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def ssn_ok(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return not (area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000")


def ipv4_ok(candidate: str) -> bool:
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def ipv6_ok(candidate: str) -> bool:
    if candidate.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def phone_ok(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    return 7 <= len(digits) <= 15


def shannon_entropy(s: str) -> float:
    counts: dict[str, int] = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    n = len(s)
    return -sum(k / n * math.log2(k / n) for k in counts.values())


def high_entropy_token(candidate: str) -> bool:
    """Random-looking tokens: long, mixed classes, high entropy. Words and hex hashes pass by."""
    if len(candidate) < 24:
        return False
    classes = sum(bool(re.search(p, candidate)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    if classes < 3:
        return False
    return shannon_entropy(candidate) >= 4.0


_SECRET_FORMATS = "|".join(
    [
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*"
        r"PRIVATE KEY(?: BLOCK)?-----",
        r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
        r"\bASIA[0-9A-Z]{16}\b",
        r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",  # GitHub tokens
        r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
        r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}\b",  # OpenAI / Anthropic
        r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b",  # Stripe
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",  # Slack
        r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API key
        r"\bglpat-[A-Za-z0-9_\-]{20,}\b",  # GitLab
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b",  # JWT
    ]
)

DEFAULT_PATTERNS: tuple[PiiPattern, ...] = (
    PiiPattern("SECRET", re.compile(_SECRET_FORMATS), None, 0),
    PiiPattern(
        "EMAIL",
        re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}\b"),
        None,
        10,
    ),
    PiiPattern(
        "IBAN",
        re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b"),
        iban_ok,
        15,
    ),
    PiiPattern("CARD", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), luhn_ok, 20),
    PiiPattern("SSN", re.compile(r"(?<![\d-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d-])"), ssn_ok, 25),
    PiiPattern(
        "IP",
        re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])"),
        ipv4_ok,
        30,
    ),
    PiiPattern(
        "IP",
        re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])"),
        ipv6_ok,
        31,
    ),
    PiiPattern(
        "PHONE",
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}"
            r"(?![\w-])|(?<![\w+])\+\d{7,15}\b"
        ),
        phone_ok,
        35,
    ),
    PiiPattern("SECRET", re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{24,}"),
               high_entropy_token, 60),
)


def _phone_plausible(text: str) -> bool:
    """Reject bare dates/versions: a phone has a +, parentheses, or at least 9 digits."""
    digits = re.sub(r"\D", "", text)
    return text.startswith("+") or "(" in text or len(digits) >= 9


_PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]*)_(\d+)\]")


@dataclass
class Vault:
    """Placeholder <-> value map of one run. Never sent to a model; persisted only via `seal`."""

    by_value: dict[str, str] = field(default_factory=dict)
    by_placeholder: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

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

    # --------------------------------------------------------------- unmask
    def unmask_text(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self.by_placeholder.get(m.group(0), m.group(0)), text)

    def unmask(self, value: Any) -> Any:
        """Replace placeholders inside any JSON value (tool arguments) with the real values."""
        if isinstance(value, str):
            return self.unmask_text(value)
        if isinstance(value, list):
            return [self.unmask(v) for v in value]
        if isinstance(value, dict):
            return {k: self.unmask(v) for k, v in value.items()}
        return value

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


class PiiMasker:
    """Finds PII and replaces it with stable placeholders recorded in a `Vault`."""

    def __init__(self, extra: list[PiiPattern] | tuple[PiiPattern, ...] = (),
                 include_defaults: bool = True) -> None:
        base = DEFAULT_PATTERNS if include_defaults else ()
        self.patterns = tuple(sorted((*base, *extra), key=lambda p: p.priority))

    def find(self, text: str) -> list[tuple[PiiPattern, int, int]]:
        spans: list[tuple[int, int, int, PiiPattern]] = []
        for pat in self.patterns:
            for m in pat.regex.finditer(text):
                s, e = m.span(pat.group)
                value = m.group(pat.group)
                if not value or _PLACEHOLDER.fullmatch(value):
                    continue
                if pat.validator is not None and not pat.validator(value):
                    continue
                if pat.label == "PHONE" and pat.validator is phone_ok and not _phone_plausible(
                        value):
                    continue
                spans.append((pat.priority, -(e - s), s, pat))
        spans.sort(key=lambda t: (t[0], t[1], t[2]))
        taken: list[tuple[int, int]] = []
        chosen: list[tuple[PiiPattern, int, int]] = []
        for _, neg_len, s, pat in spans:
            e = s - neg_len
            if any(s < te and ts < e for ts, te in taken):
                continue
            taken.append((s, e))
            chosen.append((pat, s, e))
        chosen.sort(key=lambda t: t[1])
        return chosen

    def mask(self, text: str, vault: Vault) -> tuple[str, list[Finding]]:
        out: list[str] = []
        findings: list[Finding] = []
        pos = 0
        for pat, s, e in self.find(text):
            value = text[s:e]
            ph = vault.placeholder_for(pat.label, value)
            out.append(text[pos:s])
            out.append(ph)
            findings.append(Finding(pat.label, s, e, value, ph))
            pos = e
        out.append(text[pos:])
        return "".join(out), findings

    def mask_value(self, value: Any, vault: Vault) -> Any:
        """Mask every string inside a JSON value (messages, tool results)."""
        if isinstance(value, str):
            return self.mask(value, vault)[0]
        if isinstance(value, list):
            return [self.mask_value(v, vault) for v in value]
        if isinstance(value, dict):
            return {k: self.mask_value(v, vault) for k, v in value.items()}
        return value
