"""The recognizers behind `PiiMasker`: each finds the spans of one kind of PII in a text.

Most are a regex plus the format's own checks (`_pii_checks`); phone numbers come from
`phonenumbers` (Google's libphonenumber metadata: which digits form a valid number in which
country, how they are grouped), which tells a national number from a date, a version or a list
of sizes far better than a digit-count pattern does. A recognizer yields `(start, end)` spans;
the masker resolves overlaps between recognizers by priority then length.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tether.guards import _pii_checks as chk

PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]*)_(\d+)\]")

Validator = Callable[[str], bool]
ContextCheck = Callable[[str, int, str], bool]  # (text, start, value) -> keep it?


class Recognizer(Protocol):
    """Finds one kind of PII: `label` names the placeholder (`[LABEL_n]`), lower `priority`
    wins an overlap."""

    @property
    def label(self) -> str: ...

    @property
    def priority(self) -> int: ...

    def spans(self, text: str) -> Iterator[tuple[int, int]]: ...


@dataclass(frozen=True)
class PiiPattern:
    """A regex recognizer: `group` is the sensitive part of a match, `validator` checks the
    value, `context` the text around it."""

    label: str
    regex: re.Pattern[str]
    validator: Validator | None = None
    priority: int = 50
    group: int | str = 0
    context: ContextCheck | None = None

    @classmethod
    def custom(cls, label: str, regex: str, priority: int = 40) -> PiiPattern:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", label):
            raise ValueError(f"PII label must be UPPER_SNAKE_CASE, got {label!r}")
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise ValueError(f"invalid regular expression for {label}: {exc}") from None
        return cls(label, compiled, None, priority)

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        for m in self.regex.finditer(text):
            value = m.group(self.group)
            if not value or PLACEHOLDER.fullmatch(value):
                continue
            s, e = m.span(self.group)
            if self.validator is not None and not self.validator(value):
                continue
            if self.context is not None and not self.context(text, s, value):
                continue
            yield s, e


# ------------------------------------------------------------------------------ phones
DEFAULT_PHONE_REGIONS: tuple[str, ...] = (
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "CH", "IN", "AU", "BR",
)


@dataclass(frozen=True)
class PhoneRecognizer:
    """International numbers anywhere, national ones as `regions` write them. Leniency
    STRICT_GROUPING: the digits must form a valid number *and* be grouped the way that country
    groups them, which is what keeps `10 20 30 40 50` and `2024-01-15 10:30` out. A bare run of
    digits named as an identifier (`order #4155550132`) is not a phone number."""

    regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS
    label: str = "PHONE"
    priority: int = 35

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        if sum(c.isdigit() for c in text) < 7:
            return
        import phonenumbers  # ~0.2 s to import: only when a text has enough digits

        seen: set[tuple[int, int]] = set()
        for chunk in _PHONE_CHUNK.finditer(text):
            digits = sum(c.isdigit() for c in chunk.group(0))
            if digits < 7 or digits > 17 or _NOT_A_PHONE.search(chunk.group(0)):
                continue
            # the matcher reads a little context (a `/` or `:` next to the digits makes them
            # a date or a time); each region costs a full parse, so an international number
            # (`+...`) is parsed once: every region reads it the same way
            lo, hi = max(0, chunk.start() - 3), min(len(text), chunk.end() + 3)
            window = text[lo:hi]
            regions = self.regions[:1] if chunk.group(0).startswith("+") else self.regions
            for region in regions:
                matcher = phonenumbers.PhoneNumberMatcher(
                    window, region, leniency=phonenumbers.Leniency.STRICT_GROUPING)
                for match in matcher:
                    span = (lo + match.start, lo + match.end)
                    if span in seen:
                        continue
                    seen.add(span)
                    raw = match.raw_string
                    if raw.isdigit() and (chk.id_context(text, span[0])
                                          or text[span[0] - 1:span[0]] == "/"):
                        continue  # `order #4155550132`, `/users/4155550132`
                    if PLACEHOLDER.search(raw):
                        continue
                    yield span


# where a phone number can be: digits with the separators numbers are written with
_PHONE_CHUNK = re.compile(r"(?:\+|\(\+?)?\d[\d \t().\-/]{4,30}\d\)?")
# never one: an ISO date, a decimal or dotted quad (a lone digit after a dot), a card-length run
_NOT_A_PHONE = re.compile(r"\b\d{4}-\d\d-\d\d\b|\d\.\d(?!\d)|\.\d\.|\d{13,}")


# ------------------------------------------------------------------------------- IBANs
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})")


@dataclass(frozen=True)
class IbanRecognizer:
    """Upper or lower case, grouped by spaces or dashes or not at all. The registry's length
    for the country says where the number ends, so `DE89 3704 0044 0532 0130 00 are` stops
    before `are`; then mod-97 decides."""

    label: str = "IBAN"
    priority: int = 15

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        for m in _IBAN_START.finditer(text):
            length = chk.IBAN_LENGTHS.get(m.group(1).upper())
            if length is None:
                continue
            end = _iban_end(text, m.end(), length - 4)
            if end is not None and chk.iban_ok(text[m.start():end]):
                yield m.start(), end


def _iban_end(text: str, pos: int, needed: int) -> int | None:
    """Where `needed` more alphanumerics end, single spaces or dashes allowed between them."""
    n = len(text)
    while needed:
        if pos < n and text[pos].isascii() and text[pos].isalnum():
            pos += 1
            needed -= 1
        elif pos + 1 < n and text[pos] in " -" and text[pos + 1].isascii() \
                and text[pos + 1].isalnum():
            pos += 1
        else:
            return None
    if pos < n and text[pos].isalnum():
        return None
    return pos


# ------------------------------------------------------------------------ credentials
_TYPE_WORDS = frozenset({
    "none", "null", "nil", "true", "false", "str", "string", "int", "bool", "bytes", "optional",
    "required", "redacted", "hidden", "masked", "secret", "password", "token", "undefined",
    "empty", "any", "text", "char", "varchar", "secretstr", "field",
})
_CODE_REF = re.compile(r"^(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*$|^[A-Za-z_]\w*$")


def _credential_value(text: str, start: int, value: str) -> bool:
    """The value of `password=...`: not a type, a template, an environment lookup or another
    variable; after `:` (prose: "password: click the link") it must also look like a secret."""
    quoted = value[:1] in "'\"" and value[-1:] == value[:1] and len(value) >= 2
    inner = value[1:-1] if quoted else value
    if not inner or inner.strip("*xX•.-_ ") == "":
        return False
    low = inner.lower()
    if low in _TYPE_WORDS or re.match(r"^(?:[<{\[$%]|\$\{|os\.|env\b|process\.env)", low):
        return False
    if re.fullmatch(r"(?:my|your|the|a|an)?[-_ ]?(?:pass(?:word)?|secret|token|key)s?", low):
        return False
    if not quoted and text[start + len(value):start + len(value) + 1] == "(":
        return False  # secret = get_secret('db'): a call, not a value
    separator = text[:start].rstrip().rstrip("'\"")[-1:]
    if not quoted and separator == "=" and _CODE_REF.match(inner) and "." in inner:
        return False  # token=self.token, password=config.db_password
    if not quoted and separator == ":":
        has_signal = any(c.isdigit() for c in inner) or any(not c.isalnum() for c in inner) \
            or any(c.isupper() for c in inner[1:])
        return has_signal and " " not in inner
    return True


_KEYS = (r"(?:password|passwd|passphrase|pwd|pass|secret|api[_-]?key|apikey|access[_-]?key"
         r"|secret[_-]?key|private[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token"
         r"|refresh[_-]?token|session[_-]?token|token|credentials?)")
_CREDENTIAL = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:[a-z0-9]+[_-])*(?:pg|db)?" + _KEYS + r"[\"']?\s*(?:=>|:=|[:=])(?!=)\s*"
    r"(?P<v>\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|[^\s,;'\"&()\[\]{}<>=][^\s,;'\"&()\[\]{}<>]{0,199})")


def _strip_quotes(m: re.Match[str]) -> tuple[int, int]:
    s, e = m.span("v")
    return (s + 1, e - 1) if m.group("v")[:1] in "'\"" else (s, e)


@dataclass(frozen=True)
class CredentialRecognizer:
    """`password=hunter2`, `"api_key": "..."`, `DB_PASS: s3cr3t`: the value is masked, the
    name stays (the model still knows a password was there)."""

    label: str = "SECRET"
    priority: int = 5

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        for m in _CREDENTIAL.finditer(text):
            value = m.group("v")
            if PLACEHOLDER.search(value) or not _credential_value(text, m.start("v"), value):
                continue
            yield _strip_quotes(m)


# ------------------------------------------------------------------- the default set
_SECRET_FORMATS = "|".join([
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*"
    r"PRIVATE KEY(?: BLOCK)?-----",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
    r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}\b",  # OpenAI / Anthropic
    r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b",  # Stripe
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",  # Slack
    r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API key
    r"\bglpat-[A-Za-z0-9_\-]{20,}\b",  # GitLab
    r"\bnpm_[A-Za-z0-9]{36}\b",  # npm
    r"\bhf_[A-Za-z0-9]{30,}\b",  # Hugging Face
    r"\bSG\.[\w-]{16,}\.[\w-]{16,}\b",  # SendGrid
    # JWTs, signed or not (`alg: none` leaves the third part empty)
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{4,}\.(?:[A-Za-z0-9_-]{8,})?(?![A-Za-z0-9_-])",
])
_BEARER = re.compile(r"(?i)\bbearer\s+(?P<v>[A-Za-z0-9._~+/-]{16,}=*)")
_URL_PASSWORD = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]{0,64}:(?P<v>[^/\s@]{1,128})@")

_NOT_TLDS = frozenset({
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "js", "mjs", "cjs",
    "ts", "tsx", "jsx", "css", "scss", "json", "yaml", "yml", "toml", "lock", "txt", "html",
    "htm", "xml", "csv", "log", "map", "wasm", "gz", "tar", "mp3", "mp4", "wav", "pdf", "py",
    "rb", "java", "kt", "go", "rs", "md", "sh", "zip",
})


def _email_ok(candidate: str) -> bool:
    tld = candidate.rsplit(".", 1)[-1].lower()
    return tld not in _NOT_TLDS


def _named_as_ssn(text: str, start: int, value: str) -> bool:
    return chk.ssn_context(text, start)


def _not_inline_data(text: str, start: int, value: str) -> bool:
    """A `data:...;base64,` payload is content, not a credential."""
    return not text[max(0, start - 7):start].lower().endswith("base64,")


def default_recognizers(phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
                        ) -> tuple[Any, ...]:
    """The built-in recognizers, most specific first (their priorities say so too)."""
    return (
        PiiPattern("SECRET", re.compile(_SECRET_FORMATS), None, 0),
        PiiPattern("SECRET", _URL_PASSWORD, None, 1, "v"),
        PiiPattern("SECRET", _BEARER, None, 2, "v"),
        CredentialRecognizer(),
        PiiPattern(
            "EMAIL",
            re.compile(r"(?<![\w.+%-])[\w.%+-]*\w@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+"
                       r"(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})(?![\w-]|\.\w)"),
            _email_ok, 10),
        IbanRecognizer(),
        PiiPattern("CARD", re.compile(r"(?<![\w.-])\d(?:[ .-]?\d){12,18}(?![\w-]|\.\d)"),
                   chk.card_ok, 20),
        PiiPattern("SSN", re.compile(r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-])"),
                   chk.ssn_ok, 25),
        PiiPattern("SSN", re.compile(r"(?<![\w-])\d{9}(?![\w-])"), chk.ssn_ok, 25, 0,
                   _named_as_ssn),
        # not `1.14.2.7-rc1` (a version) nor `10.0.0.0/8` (a network)
        PiiPattern("IP", re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}"
                                    r"(?![\w]|\.\d|-[A-Za-z]|/\d)"),
                   chk.ipv4_ok, 30, 0, chk.ip_context_ok),
        PiiPattern(
            "IP",
            re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}"
                       r"(?![0-9A-Fa-f:])"),
            chk.ipv6_ok, 31),
        PhoneRecognizer(tuple(phone_regions)),
        PiiPattern("SECRET", re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{24,}"),
                   chk.high_entropy_token, 60, 0, _not_inline_data),
    )
