"""Checks a PII candidate must pass before it is masked: checksums, registries and context.

A regex alone finds too much (every 16-digit number, every dotted quad, every long identifier);
these keep what the format's own rules accept: Luhn and issuer prefixes for cards, the IBAN
registry's per-country length and mod-97, the SSA's rules for SSNs, octet ranges for IPv4, and
the words just before a candidate ("version 1.2.3.4" is not an address, "order 4155550132" is not
a phone number).
"""

from __future__ import annotations

import ipaddress
import math
import re

# IBAN length per country (SWIFT IBAN registry, release 98, plus the experimental ones in use).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

# Issuer prefixes (IIN ranges) of the card networks and the lengths each one issues.
_CARD_NETWORKS: tuple[tuple[re.Pattern[str], frozenset[int]], ...] = tuple(
    (re.compile(prefix), frozenset(lengths)) for prefix, lengths in (
        (r"^4", (13, 16, 19)),  # Visa
        (r"^(?:5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)", (16,)),  # Mastercard
        (r"^3[47]", (15,)),  # American Express
        (r"^(?:30[0-59]|36|38|39)", (14, 16, 17, 18, 19)),  # Diners Club
        (r"^(?:6011|64[4-9]|65)", (16, 17, 18, 19)),  # Discover
        (r"^35(?:2[89]|[3-8]\d)", (16, 17, 18, 19)),  # JCB
        (r"^(?:62|81)", (16, 17, 18, 19)),  # UnionPay
        (r"^(?:50|5[6-9]|6\d)", (13, 14, 15, 16, 17, 18, 19)),  # Maestro and other 5x/6x
        (r"^220[0-4]", (16, 17, 18, 19)),  # Mir
    ))


def luhn_ok(candidate: str) -> bool:
    """Luhn checksum on 13-19 digits (not all the same digit, which passes trivially)."""
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


def card_ok(candidate: str) -> bool:
    """A payment card: one kind of separator at most, a length its issuer's network issues,
    and Luhn. One random number in ten passes Luhn alone; prefix and length cut that."""
    separators = {c for c in candidate if not c.isdigit()}
    if len(separators) > 1:
        return False
    digits = "".join(c for c in candidate if c.isdigit())
    issued = any(prefix.match(digits) and len(digits) in lengths
                 for prefix, lengths in _CARD_NETWORKS)
    return issued and luhn_ok(digits)


def iban_ok(candidate: str) -> bool:
    """ISO 13616: a registered country, that country's length, and mod-97 == 1."""
    s = re.sub(r"[\s-]", "", candidate).upper()
    if len(s) < 15 or not s[:2].isalpha() or not s[2:4].isdigit() or not s.isalnum():
        return False
    expected = IBAN_LENGTHS.get(s[:2])
    if expected is not None and len(s) != expected:
        return False
    if expected is None and not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def ssn_ok(candidate: str) -> bool:
    """SSA rules: no area 000, 666 or 9xx, no group 00, no serial 0000."""
    digits = re.sub(r"\D", "", candidate)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return not (area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000")


def ipv4_ok(candidate: str) -> bool:
    """A real IPv4 address that can point at someone: not 0.0.0.0, loopback or broadcast."""
    try:
        addr = ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    # 0.0.0.0, 127.x, broadcast and netmasks (255.255.255.0) name nobody
    return not (addr.is_unspecified or addr.is_loopback or candidate.startswith("255."))


def ipv6_ok(candidate: str) -> bool:
    if candidate.count(":") < 2:
        return False
    try:
        addr = ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return not (addr.is_unspecified or addr.is_loopback)


def shannon_entropy(s: str) -> float:
    counts: dict[str, int] = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    n = len(s)
    return -sum(k / n * math.log2(k / n) for k in counts.values())


_SEGMENT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def looks_like_identifier(candidate: str) -> bool:
    """camelCase / snake_case names built from words (`getUserProfileById2FactorToken`):
    most of their characters sit in runs of three or more lower-case letters, which random
    tokens almost never have."""
    segments = _SEGMENT.findall(candidate)
    if not segments:
        return False
    wordy = sum(len(s) for s in segments if len(s) >= 3 and s[1:].islower() and s.isalpha())
    return wordy >= 0.6 * len(candidate.replace("_", "").replace("-", ""))


def high_entropy_token(candidate: str) -> bool:
    """Random-looking tokens: long, mixed classes, high entropy, and not a name made of words.
    Words, identifiers and hex hashes pass by."""
    if len(candidate) < 24:
        return False
    classes = sum(bool(re.search(p, candidate)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    if classes < 3 or looks_like_identifier(candidate):
        return False
    return shannon_entropy(candidate) >= 4.0


def preceding_words(text: str, start: int, width: int = 32) -> str:
    """The lower-cased text just before a candidate: the context its checks read."""
    return text[max(0, start - width):start].lower()


_VERSION_WORDS = re.compile(
    r"\b(?:v|versions?|ver\.?|releases?|build|firmware|rev(?:ision)?|tag|sdk|kernel|python"
    r"|node|chrome|firefox|schema|api|protocol|section|clause|chapter|step|item|oid)[\s:=#-]*$")
_VERSION_VERBS = re.compile(r"\b(?:to|from|patch|update|upgraded?|bump(?:ed)?)[\s:=#-]*$")


def ip_context_ok(text: str, start: int, candidate: str) -> bool:
    """`release 1.2.3.4`, `section 1.2.3.4`, `v1.2.3.4` are versions or outline numbers, not
    addresses; after `to`/`from`/`update` only a dotted number of single digits is taken for a
    version (`upgrade to 10.0.0.5` still names a host)."""
    before = preceding_words(text, start)
    if _VERSION_WORDS.search(before):
        return False
    small = all(len(octet) == 1 for octet in candidate.split("."))
    return not (small and _VERSION_VERBS.search(before))


_ID_CONTEXT = re.compile(
    r"(?:#|\b(?:order|invoice|id|ref|reference|ticket|tracking|account|acct|customer|pid|uid"
    r"|sku|serial|isbn|build|case|po|transaction|txn|receipt|shipment|batch|lot|part|model"
    r"|item|record|row|user|issue|pr|commit|job|run|request|req|session|product|policy"
    r"|claim|booking|confirmation|parcel|package|seq|sequence|timestamp|epoch|ts)\b"
    r"(?:\s*(?:no\.?|number|nr\.?|id|#))?)[\s:=#-]*$")


def id_context(text: str, start: int) -> bool:
    """`order #4155550132`, `invoice 5551234567`: a bare digit run named as an identifier."""
    return bool(_ID_CONTEXT.search(preceding_words(text, start)))


_SSN_CONTEXT = re.compile(
    r"\b(?:ssn|ss#|ss\s*no|social\s+security(?:\s+(?:no\.?|number|#))?|soc\.?\s*sec\.?"
    r"|tax\s*id|tin|itin|taxpayer\s+id(?:entification)?(?:\s+number)?)\b[^0-9\n]{0,16}$")


def ssn_context(text: str, start: int) -> bool:
    """An undashed SSN is nine digits like any other; only its name says what it is."""
    return bool(_SSN_CONTEXT.search(preceding_words(text, start, 48)))
