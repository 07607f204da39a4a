"""PostgreSQL's LISTEN/NOTIFY for `PostgresStore.listen`: a connection and a thread of their own
that call back on every notification of the store's channel."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
from psycopg import sql


def listen(conninfo: str, channel: str, callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` from a thread on every NOTIFY on `channel`; returns the function that
    stops. A lost connection ends the listening silently (a worker's safety poll remains)."""
    conn = psycopg.connect(conninfo, autocommit=True)
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.is_set():
                for _ in conn.notifies(timeout=0.2):
                    callback()
        except psycopg.Error:
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=loop, name="tether-pg-listen", daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(timeout=2.0)

    return close
