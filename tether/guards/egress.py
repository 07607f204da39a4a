"""Network egress, a policy of its own: which hosts, on which ports, a tool may reach.

Issue 13 found `http.allow_domains` blind to ports (`localhost` let `http://localhost:PB/admin`
reach an internal service), applied to the first URL of a redirect chain only, and to tools of
kind http/openapi only. Here an allow-list entry names a host *and* a port:

    api.example.com         the scheme's default port only: 443 for https, 80 for http
    api.example.com:8443    that port, any scheme
    localhost:*             any port (written out, never implied)
    *.example.com           any subdomain of example.com (not example.com itself)
    127.0.0.1:8080, [::1]:8080

The same `EgressPolicy.check` judges a URL a network tool was given (before the call) and every
request its HTTP client sends, each redirect hop included (`tether.tools.network`).

A URL is judged only if it is plain enough that every parser reads the same host and port from
it: http or https, no credentials (`user@host`), no backslash, whitespace or control character,
a host that is a DNS name or a canonical IP literal (`127.1`, `0x7f.0.0.1` and `2130706433`
connect to 127.0.0.1 but are refused), and `urllib` and httpx (the client) agreeing on host and
port. What a host name resolves to is not checked (see docs/security.md).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_LABELS = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_EXAMPLES = "write a host or host:port, e.g. api.example.com, localhost:8080, [::1]:8080"


class EgressEntryError(ValueError):
    """An allow-list entry that is not `host`, `host:port` or `host:*`."""


class UnsafeURL(ValueError):
    """A URL whose destination cannot be vouched for."""


@dataclass(frozen=True)
class Target:
    """Where a request goes: what the client connects to."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _host_form(host: str) -> str:
    """A host as the client connects to it: IDNA ASCII, lower case, no trailing dot, IP literals
    canonical. Raises ValueError for anything else."""
    host = host.strip().rstrip(".").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host.isascii():
        import idna  # httpx's own IDNA encoder, so both sides spell the host alike

        host = idna.encode(host, uts46=True).decode("ascii")
    if not _LABELS.fullmatch(host):
        raise ValueError(f"{host!r} is not a DNS name or an IP address")
    last = host.rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):
        # no DNS name ends in a number: 127.1, 2130706433 and 0x7f.0.0.1 are IPv4 addresses in
        # forms the resolver still accepts; only the canonical a.b.c.d is compared
        raise ValueError(f"{host!r} is a non-canonical IP address (write it as a.b.c.d)")
    return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class EgressRule:
    """One allow-list entry. `port` None means the scheme's default port."""

    text: str
    host: str
    port: int | None = None
    any_port: bool = False

    def matches(self, target: Target) -> bool:
        if self.host.startswith("*."):
            suffix = self.host[1:]
            if not (target.host.endswith(suffix) and len(target.host) > len(suffix)):
                return False
        elif target.host != self.host:
            return False
        if self.any_port:
            return True
        if self.port is None:
            return target.port == DEFAULT_PORTS[target.scheme]
        return target.port == self.port


def parse_rule(text: str) -> EgressRule:
    """An allow-list entry; `EgressEntryError` says what is wrong and what to write."""
    if not isinstance(text, str) or not text.strip():
        raise EgressEntryError(f"empty entry; {_EXAMPLES}")
    raw = text.strip()
    if "://" in raw or "/" in raw or "@" in raw or any(c.isspace() for c in raw):
        raise EgressEntryError(f"'{text}' must be a host or host:port, not a URL; {_EXAMPLES}")
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise EgressEntryError(f"'{text}': unclosed '[' ; {_EXAMPLES}")
        host, rest = raw[: end + 1], raw[end + 1:]
        if rest and not rest.startswith(":"):
            raise EgressEntryError(f"'{text}': expected ':port' after ']'")
        port_text = rest[1:] if rest else None
    elif raw.count(":") > 1:
        raise EgressEntryError(f"'{text}': an IPv6 address needs brackets, e.g. [::1]:8080")
    elif ":" in raw:
        host, port_text = raw.split(":")
    else:
        host, port_text = raw, None
    port: int | None = None
    any_port = port_text == "*"
    if port_text is not None and not any_port:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise EgressEntryError(f"'{text}': the port must be 1-65535 or '*' (any port)")
        port = int(port_text)
    wildcard = host.startswith("*.")
    if "*" in (host[2:] if wildcard else host):
        raise EgressEntryError(
            f"'{text}': '*' may only be a whole first label ('*.example.com'); a bare '*' would "
            "allow every host: list the hosts instead")
    try:
        name = _host_form(host[2:] if wildcard else host)
    except ValueError as exc:
        raise EgressEntryError(f"'{text}': {exc}; {_EXAMPLES}") from None
    if wildcard and _is_ip(name):
        raise EgressEntryError(f"'{text}': '*.' applies to DNS names, not IP addresses")
    return EgressRule(text, f"*.{name}" if wildcard else name, port, any_port)


def target_of(url: str) -> Target:
    """Where `url` goes, or `UnsafeURL` when parsers could disagree about it."""
    if not isinstance(url, str):
        raise UnsafeURL(f"{type(url).__name__} is not a URL")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise UnsafeURL(f"{url!r} contains whitespace or control characters")
    if "\\" in url:
        raise UnsafeURL(f"{url!r} contains a backslash (parsers disagree on where its host ends)")
    try:
        parts = urlsplit(url)
        split_port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"{url!r} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeURL(f"{url!r} is not an http(s) URL")
    if "@" in parts.netloc:
        raise UnsafeURL(f"{url!r} carries credentials (user@host); they are refused because "
                        "parsers disagree on the host of such URLs")
    import httpx  # the client's own reading of the URL is the one that connects

    try:
        parsed = httpx.URL(url)
        client_host = parsed.raw_host.decode("ascii")
        client_port = parsed.port
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise UnsafeURL(f"{url!r} is not a valid URL ({exc})") from None
    if not parts.hostname or not client_host:
        raise UnsafeURL(f"{url!r} has no host")
    try:
        host = _host_form(client_host)
        split_host = _host_form(parts.hostname)
    except ValueError as exc:
        raise UnsafeURL(f"{url!r}: {exc}") from None
    port = client_port or DEFAULT_PORTS[scheme]
    if host != split_host or port != (split_port or DEFAULT_PORTS[scheme]):
        raise UnsafeURL(f"{url!r}: parsers disagree on its destination ({host}:{port} or "
                        f"{split_host}:{split_port or DEFAULT_PORTS[scheme]})")
    return Target(scheme, host, port)


@dataclass(frozen=True)
class EgressPolicy:
    """An allow-list of destinations; empty allows none (deny by default)."""

    rules: tuple[EgressRule, ...] = ()
    #: where the list came from, for reasons (`egress.allow`, `http.allow_domains`, `domain_in`)
    label: str = "egress.allow"

    @classmethod
    def of(cls, entries: Iterable[str], label: str = "egress.allow") -> EgressPolicy:
        return cls(tuple(parse_rule(e) for e in entries), label)

    @property
    def entries(self) -> list[str]:
        return [r.text for r in self.rules]

    def check(self, url: str) -> tuple[bool, str]:
        """(allowed, why) for one URL."""
        try:
            target = target_of(url)
        except UnsafeURL as exc:
            return False, str(exc)
        for rule in self.rules:
            if rule.matches(target):
                return True, f"{target} is allowed by '{rule.text}'"
        same_host = [r.text for r in self.rules if r.host == target.host]
        hint = (f" ({', '.join(same_host)} allows other ports: a name without a port means "
                f"{DEFAULT_PORTS['https']} for https and {DEFAULT_PORTS['http']} for http; add "
                f"'{target}' to allow this one)" if same_host else "")
        return False, f"{target} is not in the {self.label} list {self.entries}{hint}"


@functools.lru_cache(maxsize=256)
def cached_policy(entries: tuple[str, ...], label: str) -> EgressPolicy:
    """Parsed once per distinct list (a `domain_in` operand is checked on every call)."""
    return EgressPolicy.of(entries, label)
