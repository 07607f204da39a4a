"""CPU the PostgreSQL server spends for one database: the backends serving its sessions, read from
/proc (the server runs on this machine). A durable step's cost on PostgreSQL is largely the
server's (parsing, executing, WAL), which the client process's CPU time does not show.

Stdlib and psycopg only: DBOS's side (its own venv) imports it too. Leaves out the server's shared
processes (WAL writer, checkpointer), which serve every database at once."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

_TICK = os.sysconf("SC_CLK_TCK")


def _admin(url: str) -> tuple[str, str]:
    """(URL of the server's `postgres` database, the database `url` names)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres", query="")), parts.path.lstrip("/")


def backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each backend connected to `url`'s database, by pid."""
    import psycopg

    admin, database = _admin(url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))]
    out: dict[int, float] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile, or a server on another machine
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    return out


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """Server CPU seconds between two `backend_cpu` readings (backends started meanwhile count
    from zero; ones that exited meanwhile are lost: the pools keep theirs open)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
