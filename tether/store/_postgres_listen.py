"""PostgreSQL's LISTEN/NOTIFY for `PostgresStore.listen`: a connection and a thread of their own
that call back on every notification of the store's channel."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from .errors import StoreError

#: how long the first notification, sent to itself, may take to arrive
CHECK_S = 2.0


class ListenUnavailable(StoreError):
    """Notifications do not reach this connection (see `listen`)."""


def listen(conninfo: str, channel: str, callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` from a thread on every NOTIFY on `channel`; returns the function that
    stops. A lost connection (the server restarted, the session was cut) is replaced: the
    thread listens again on a new one, retried every 0.5 s doubling to 5 s, then calls back
    once, since what was notified meanwhile reached nobody. (Before, the listening ended
    silently: after a server restart every worker woke only by its 5 s safety poll, for good.)

    Before it returns, one notification is sent from another connection and must arrive:
    behind a transaction pooler (PgBouncer in transaction mode) LISTEN registers on whichever
    server session ran it, and nothing ever reaches this client, so a worker relying on it
    slept through new runs until its 5 s safety poll. Then `ListenUnavailable` is raised, and
    the worker polls every poll interval instead."""
    conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)
    try:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        token = f"tether-listen-check-{uuid.uuid4().hex}"
        with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as other:
            other.execute("SELECT pg_notify(%s, %s)", (channel, token))
        if not any(n.payload == token for n in conn.notifies(timeout=CHECK_S, stop_after=8)):
            raise ListenUnavailable(
                f"a notification sent on channel {channel!r} did not arrive within "
                f"{CHECK_S:g}s: a transaction pooler (PgBouncer in transaction mode?) is in "
                "between, and LISTEN does not work through it; polling instead")
    except BaseException:
        conn.close()
        raise
    # a wake-up another process sent during the check is not passed on: the worker claims
    # right after it starts listening, and sees what was committed before
    stop = threading.Event()

    def loop() -> None:
        current: psycopg.Connection[Any] | None = conn
        try:
            while current is not None and not stop.is_set():
                try:
                    for _ in current.notifies(timeout=0.2):
                        callback()
                except psycopg.Error:
                    current.close()
                    current = _listen_again(conninfo, channel, stop)
                    if current is not None:
                        callback()
        finally:
            if current is not None:
                current.close()

    thread = threading.Thread(target=loop, name="tether-pg-listen", daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(timeout=2.0)

    return close


def _listen_again(conninfo: str, channel: str, stop: threading.Event
                  ) -> psycopg.Connection[Any] | None:
    """A new connection LISTENing on `channel`, tried every 0.5 s doubling to 5 s; None once
    `stop` is set."""
    delay = 0.5
    while not stop.wait(delay):
        try:
            conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None,
                                   connect_timeout=5)
        except psycopg.Error:
            delay = min(delay * 2, 5.0)
            continue
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except psycopg.Error:
            conn.close()
            delay = min(delay * 2, 5.0)
            continue
        return conn
    return None
