"""Whether a PostgreSQL store's sessions prepare statements, and the URL parameter that says so.

psycopg prepares a statement once it ran `prepare_threshold` times on a connection (named
`_pg3_0`, `_pg3_1`, ... per connection), which saves the server parsing and planning it again.
A prepared statement lives in one server session. Behind a transaction pooler that does not keep
them per client (PgBouncer before 1.21, or later with `max_prepared_statements = 0`) another
client's next transaction may land on that session: a Bind of its own `_pg3_0` then executes
*this* client's statement when both take the same number of parameters, without any error (a
read answers another query's rows, a write is not applied). So a store prepares only when no
pooler is in between, or when its URL says the pooler keeps prepared statements per client.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

import psycopg

from .errors import StoreError

log = logging.getLogger("tether.store")

#: the URL parameter (psycopg's own name; libpq knows no such parameter, so it is taken out)
PARAM = "prepare_threshold"
#: psycopg's default: prepared after 5 executions on a connection
PSYCOPG_THRESHOLD = 5
Setting = int | None | Literal["auto"]


def parse_setting(text: str) -> Setting:
    """`prepare_threshold=` from a URL: a number of executions, `none` (never) or `auto`."""
    value = text.strip().lower()
    if value in ("none", "never", "off"):
        return None
    if value in ("auto", ""):
        return "auto"
    if value.isdigit():
        return int(value)
    raise StoreError(f"invalid {PARAM}={text!r} in the PostgreSQL URL: use a number of "
                     "executions (5, psycopg's default), `none` (never prepare) or `auto`")


def take_setting(url: str, default: Setting) -> tuple[str, Setting]:
    """`url` without its `prepare_threshold` parameter, and the setting it gave (`default`
    when none). The other parameters are kept as written, in their order."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, default
    kept: list[str] = []
    setting = default
    given = False
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == PARAM:
            setting, given = parse_setting(value), True
        elif part:
            kept.append(part)
    if not given:
        return url, default
    return (f"{base}?{'&'.join(kept)}" if kept else base), setting


class Preparing:
    """The store's choice, shared by its pooled sessions (pool threads configure them).

    `auto` (the default): psycopg's threshold, unless a session shows a pooler in between: the
    process id the server announces at startup (BackendKeyData, `conn.info.backend_pid`) is
    not the one serving it (`pg_backend_pid()`). A pooler that hands one client's
    transactions to several server sessions cannot pass a single server's key on, so it
    answers with a key of its own (PgBouncer, in any mode, does). Seen once, prepared
    statements stay off for the store. A number: that threshold even behind a pooler (the
    deployment says it keeps prepared statements per client). None: never prepare."""

    def __init__(self, setting: Setting, url: str) -> None:
        self.url = url
        self.auto = setting == "auto"
        self.threshold: int | None = PSYCOPG_THRESHOLD if setting == "auto" else setting
        self._lock = threading.Lock()

    @property
    def on(self) -> bool:
        return self.threshold is not None

    def session(self, conn: psycopg.Connection[Any], server_pid: int) -> None:
        """A new pooled session, before any statement of the store runs on it: its threshold,
        off for good if `auto` and it shows a pooler."""
        if self.auto and self.threshold is not None and conn.info.backend_pid != server_pid:
            with self._lock:
                said = self.threshold is None
                self.threshold = None
            if not said:
                log.info("database %s: a connection pooler is in between (the session's server "
                         "process is not the one it was announced with); Tether does not "
                         "prepare statements there (%s=5 in the URL if the pooler keeps them "
                         "per client: PgBouncer 1.21+ with max_prepared_statements)",
                         self.url, PARAM)
        conn.prepare_threshold = self.threshold

    def take(self, conn: psycopg.Connection[Any]) -> None:
        """A pooled session taken for a statement: off too if it was configured before
        prepared statements were turned off."""
        if self.threshold is None:
            conn.prepare_threshold = None

    def stop(self, exc: psycopg.Error) -> None:
        """No prepared statements from now on: the server answered that one was missing,
        doubled or another client's (`pooled_away`), so a pooler is in between after all (one
        that passed the server's process id through, or a URL that said it keeps them).
        Warned once."""
        with self._lock:
            said = self.threshold is None
            self.threshold = None
        if not said:
            log.warning("database %s: a prepared statement was missing or doubled on the server "
                        "(%s): a transaction pooler (PgBouncer in transaction mode?) is in "
                        "between; Tether goes on without prepared statements", self.url,
                        exc.sqlstate)
