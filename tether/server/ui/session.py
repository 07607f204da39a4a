"""Browser sessions of the web UI: an opaque cookie standing for an API key held in memory.

A browser's EventSource cannot send an `Authorization` header, and a key kept in the page would
be readable by any script on it, so after login the browser holds only a random session id in a
cookie that is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it)
and scoped to `/ui`. The key itself stays in the server's memory; each request turns the
session back into the key's `Authorization` header (`SessionAuth`), so the UI's routes
authenticate through the API's own dependencies and a revoked key stops working at once.

Every session has its own CSRF token, required in every state-changing form: SameSite already
keeps other sites' forms from carrying the cookie, the token also covers browsers that ignore it.
Sessions live in this process only (a restarted server asks everyone to log in again).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "tether_session"
LOGIN_COOKIE = "tether_login"  # the login form's own CSRF token (no session yet)
PREFIX = "/ui"
TTL_S = 8 * 3600.0
MAX_SESSIONS = 10_000
#: sessions one API key may hold at once (browsers, tabs after logging in again); more drop
#: that key's oldest, so one key logging in in a loop cannot push anyone else's out
MAX_PER_KEY = 20


@dataclass
class Session:
    key: str
    csrf: str
    expires: float
    #: the outcome of this session's last decision: the inbox shows its `?done=` only when it
    #: is this, so a link cannot put words in the inbox's success box
    done: str = ""


class Sessions:
    """Session id -> the API key it stands for, with expiry; safe to use from any thread."""

    def __init__(self, ttl_s: float = TTL_S, limit: int = MAX_SESSIONS,
                 per_key: int = MAX_PER_KEY) -> None:
        self.ttl_s, self.limit, self.per_key = ttl_s, limit, per_key
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, key: str) -> tuple[str, Session]:
        now = time.time()
        with self._lock:
            self._drop_expired(now)
            own = [sid for sid, v in self._by_id.items() if v.key == key]  # oldest first
            for sid in own[:max(0, len(own) - self.per_key + 1)]:
                del self._by_id[sid]
            while len(self._by_id) >= self.limit:  # the oldest goes first
                self._by_id.pop(next(iter(self._by_id)))
            sid = secrets.token_urlsafe(32)
            found = self._by_id[sid] = Session(key, secrets.token_urlsafe(32), now + self.ttl_s)
            return sid, found

    def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        with self._lock:
            found = self._by_id.get(sid)
            if found is not None and found.expires < time.time():
                del self._by_id[sid]
                return None
            return found

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)

    def _drop_expired(self, now: float) -> None:
        for sid in [s for s, v in self._by_id.items() if v.expires < now]:
            del self._by_id[sid]


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    return bool(given and expected) and hmac.compare_digest(str(given), str(expected))


def cookie_of(scope_headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for k, v in scope_headers:
        if k == b"cookie":
            for part in v.decode("latin-1").split(";"):
                n, sep, value = part.strip().partition("=")
                if sep and n == name:
                    return value
    return None


class SessionAuth:
    """For requests under /ui: drop any `Authorization` header the browser sent, and put in
    the session's key instead (none without a valid session, so the API's dependencies answer
    401 and the UI shows its login page). Nothing outside /ui ever reads the cookie: the REST
    API stays bearer-only, so a cookie can never authorize a cross-site call to /v1."""

    def __init__(self, app: ASGIApp, sessions: Sessions) -> None:
        self.app, self.sessions = app, sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers") or [] if k != b"authorization"]
        found = self.sessions.get(cookie_of(headers, COOKIE))
        if found is not None:
            headers.append((b"authorization", f"Bearer {found.key}".encode()))
        await self.app({**scope, "headers": headers}, receive, send)
