"""A PostgreSQL server (initdb in a temp dir, a free port) and a PgBouncer of one test module's
own, for tests that stop, restart or freeze what they talk to (the crash hunt,
`test_pg_crash_hunt_*.py`): the shared server on port 55432 must never be touched that way.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []


class PrivatePg:
    """A PostgreSQL server of one test module's own: initdb in a temp dir, a free port."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: [int(x) for x in Path(p).parent.name.split(".")])
        if not bins or (shutil.which("runuser") is None and os.getuid() == 0):
            pytest.fail("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.bin = Path(bins[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="tether-pg-crash-"))
        os.chmod(self.dir, 0o755)
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-U", "tether", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")
        self.start()
        self.admin = self.url("postgres")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*_as_postgres(), str(self.bin / tool), *args],
                              capture_output=True, text=True, timeout=120, cwd=self.dir)
        if check and done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise AssertionError(f"{tool} {args}: {done.stdout}{done.stderr}{log}")
        return done

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-s",
                  "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} "
                  "-c unix_socket_directories='' -c max_connections=300", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-s", "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str) -> str:
        return f"postgresql://tether@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres",
                params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(sql.encode(), params)
            return cur.fetchall() if cur.description else []

    def new_database(self) -> str:
        name = f"hunt_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE DATABASE {name}")
        return name

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateBouncer:
    """PgBouncer in transaction mode in front of a `PrivatePg` (as `make pgbouncer`)."""

    def __init__(self, pg: PrivatePg, *, pool_size: int = 40) -> None:
        if not Path("/usr/sbin/pgbouncer").exists():
            pytest.fail("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
        self.pg = pg
        self.port = free_port()
        self.dir = pg.dir / "pgbouncer"
        self.dir.mkdir()
        self.pidfile = self.dir / "pgbouncer.pid"
        (self.dir / "pgbouncer.ini").write_text("\n".join([
            "[databases]", f"* = host=127.0.0.1 port={pg.port} user=tether", "[pgbouncer]",
            "listen_addr = 127.0.0.1", f"listen_port = {self.port}", "unix_socket_dir =",
            "auth_type = any", "pool_mode = transaction", "max_client_conn = 500",
            f"default_pool_size = {pool_size}", "ignore_startup_parameters = extra_float_digits",
            f"logfile = {self.dir / 'pgbouncer.log'}", f"pidfile = {self.pidfile}", ""]))
        if os.getuid() == 0:
            for p in (self.dir, *self.dir.iterdir()):
                shutil.chown(p, "postgres", "postgres")
        subprocess.run([*_as_postgres(), "/usr/sbin/pgbouncer", "-q", "-d",
                        str(self.dir / "pgbouncer.ini")], check=True, timeout=30)
        deadline = time.monotonic() + 20
        while subprocess.run([str(pg.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                              str(self.port), "-U", "tether", "-d", "postgres"]).returncode:
            assert time.monotonic() < deadline, "PgBouncer did not start"
            time.sleep(0.1)

    def url(self, database: str) -> str:
        return f"postgresql://tether@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            os.kill(int(self.pidfile.read_text().strip()), signal.SIGTERM)
