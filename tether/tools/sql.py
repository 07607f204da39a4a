"""`sqlite_query_tool`: SQL for a model, read-only because SQLite enforces it.

A policy that reads SQL text can be fooled by any difference between its tokenizer and the
engine's (issue 13: `WITH a AS (SELECT 'x\\') DELETE FROM users --'` passed a text check and
deleted every row). Here the database decides. Each call opens the file with
`mode=ro`, sets `PRAGMA query_only`, allows no attached database, installs an authorizer that
permits reads only (SELECT, reading columns, recursive CTEs, ordinary functions, a few schema
PRAGMAs) and runs exactly one statement with `execute`, never `executescript`.

A query cannot outlive its time limit: it runs in a thread of its own whose connection has a
progress handler that aborts the statement at the deadline (and at once when the caller is
cancelled), so a runaway recursive CTE stops instead of burning a core until the process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from tether.tools._decorator import FunctionTool
from tether.tools._errors import ToolDefinitionError, ToolExecutionError, ToolTimeoutError

# What a read may do. Everything else (INSERT, UPDATE, DELETE, CREATE, DROP, ATTACH, PRAGMA
# writes, transactions, ANALYZE, ...) is denied by the authorizer.
_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})
_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "index_info",
                           "index_xinfo", "foreign_key_list"})
# Functions that reach outside the database; most are absent from Python's SQLite anyway.
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile",
                               "edit"})
_ACTION_NAMES = {getattr(sqlite3, n): n.removeprefix("SQLITE_").replace("_", " ") for n in (
    "SQLITE_CREATE_INDEX", "SQLITE_CREATE_TABLE", "SQLITE_CREATE_TEMP_INDEX",
    "SQLITE_CREATE_TEMP_TABLE", "SQLITE_CREATE_TEMP_TRIGGER", "SQLITE_CREATE_TEMP_VIEW",
    "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_VIEW", "SQLITE_DELETE", "SQLITE_DROP_INDEX",
    "SQLITE_DROP_TABLE", "SQLITE_DROP_TEMP_INDEX", "SQLITE_DROP_TEMP_TABLE",
    "SQLITE_DROP_TEMP_TRIGGER", "SQLITE_DROP_TEMP_VIEW", "SQLITE_DROP_TRIGGER", "SQLITE_DROP_VIEW",
    "SQLITE_INSERT", "SQLITE_PRAGMA", "SQLITE_TRANSACTION", "SQLITE_UPDATE", "SQLITE_ATTACH",
    "SQLITE_DETACH", "SQLITE_ALTER_TABLE", "SQLITE_REINDEX", "SQLITE_ANALYZE",
    "SQLITE_CREATE_VTABLE", "SQLITE_DROP_VTABLE", "SQLITE_FUNCTION", "SQLITE_SAVEPOINT",
)}
_PROGRESS_EVERY = 1000  # SQLite VM instructions between two deadline checks (~microseconds)
_GRACE_S = 1.0  # the tool's outer bound beyond the query's own limit (never reached normally)


@dataclass
class _Call:
    """One query's shared state between the caller and the thread running it."""

    stop: threading.Event = field(default_factory=threading.Event)
    deadline: float = 0.0
    denied: list[str] = field(default_factory=list)
    conn: sqlite3.Connection | None = None

    def authorize(self, action: int, arg1: str | None, arg2: str | None, _db: str | None,
                  _trigger: str | None) -> int:
        if action in _READ_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in _DENIED_FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS:
            return sqlite3.SQLITE_OK
        what = _ACTION_NAMES.get(action, f"action {action}")
        target = arg2 if action == sqlite3.SQLITE_FUNCTION else arg1
        self.denied.append(f"{what} {target}" if target else what)
        return sqlite3.SQLITE_DENY

    def progress(self) -> int:
        """Non-zero aborts the statement: at the deadline, or when the caller gave up."""
        return int(self.stop.is_set() or time.monotonic() > self.deadline)

    def interrupt(self) -> None:
        self.stop.set()
        conn = self.conn
        if conn is not None:
            conn.interrupt()  # documented as safe from another thread


@dataclass(frozen=True)
class _ReadOnlySQLite:
    tool: str
    uri: str
    timeout: float
    max_rows: int
    max_value_bytes: int

    def query(self, call: _Call, sql: str, params: list[Any]) -> dict[str, Any]:
        """Runs in the query's own thread."""
        conn = sqlite3.connect(self.uri, uri=True, isolation_level=None,
                               check_same_thread=False)
        call.conn = conn
        try:
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_value_bytes)
            conn.execute("PRAGMA query_only = ON")
            conn.set_authorizer(call.authorize)
            conn.set_progress_handler(call.progress, _PROGRESS_EVERY)
            cursor = conn.execute(sql, params)
            rows = cursor.fetchmany(self.max_rows + 1)
            columns = [d[0] for d in cursor.description or ()]
        finally:
            call.conn = None
            conn.close()
        return {"columns": columns,
                "rows": [[_json_value(v) for v in row] for row in rows[: self.max_rows]],
                "truncated": len(rows) > self.max_rows}

    def failure(self, call: _Call, exc: Exception) -> Exception:
        """The model-readable reason a query did not run."""
        text = str(exc)
        if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in text:
            return ToolExecutionError(self.tool, (
                "refused: one statement per call (this tool never runs a script); send each "
                "query on its own"))
        if call.denied or "not authorized" in text:
            what = ", ".join(dict.fromkeys(call.denied)) or text
            return ToolExecutionError(self.tool, (
                f"refused by the read-only connection: {what} is not a read (not authorized). "
                "This tool only reads: SELECT, WITH ... SELECT, VALUES, and PRAGMA table_info/"
                "index_list/index_info/foreign_key_list"))
        if "readonly" in text or "read-only" in text:
            return ToolExecutionError(self.tool, f"refused: the database is read-only ({text})")
        if "interrupted" in text:
            return ToolTimeoutError(self.tool, self.timeout)
        if "too big" in text:
            return ToolExecutionError(self.tool, (
                f"refused: string or blob too big (a value may be at most "
                f"{self.max_value_bytes} bytes); select less"))
        return ToolExecutionError(self.tool, f"SQLite error: {text}")

    async def run(self, sql: str, params: list[Any]) -> dict[str, Any]:
        call = _Call(deadline=time.monotonic() + self.timeout)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[dict[str, Any]] = loop.create_future()

        def settle(result: dict[str, Any] | None, error: BaseException | None) -> None:
            if done.cancelled():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)  # type: ignore[arg-type]

        def target() -> None:
            try:
                result, error = self.query(call, sql, params), None
            except sqlite3.Error as exc:
                result, error = None, self.failure(call, exc)
            except Exception as exc:  # reported to the caller, never lost in the thread
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, result, error)

        thread = threading.Thread(target=target, name=f"tether-sql:{self.tool}", daemon=True)
        thread.start()
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # the caller gave up (its own timeout, a cancelled run): stop the query and see the
            # thread end before letting go, so no query keeps running behind its back
            call.interrupt()
            await asyncio.wait([done], timeout=_GRACE_S)
            raise
        finally:
            thread.join(_GRACE_S)  # it has settled the future: only its return is left


def _json_value(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


def sqlite_query_tool(
    path: str | Path,
    *,
    name: str = "sql_query",
    description: str | None = None,
    version: str = "1",
    timeout: float = 5.0,
    max_rows: int = 1000,
    max_value_bytes: int = 1_000_000,
) -> FunctionTool:
    """A read-only SQL tool over the SQLite file at `path` (which must exist).

    Arguments the model fills in: `query` (one statement) and optional `params` bound to `?`
    placeholders. Result: `{"columns", "rows", "truncated"}` (at most `max_rows` rows; blobs as
    hex). `timeout` bounds each query: at the deadline the statement is aborted inside SQLite
    and the call fails with `timeout`. `max_value_bytes` caps any string or blob a query may
    build (`zeroblob(2e9)` is refused, not allocated).
    """
    db = Path(path)
    if not db.is_file():
        raise ToolDefinitionError(
            f"sqlite_query_tool: {str(db)!r} is not a file; pass the path of an existing SQLite "
            "database (the tool opens it read-only and never creates one)")
    if not timeout > 0:
        raise ToolDefinitionError(f"sqlite_query_tool: timeout must be > 0 seconds, not "
                                  f"{timeout!r}")
    if max_rows < 1 or max_value_bytes < 1:
        raise ToolDefinitionError("sqlite_query_tool: max_rows and max_value_bytes must be >= 1")
    runner = _ReadOnlySQLite(name, db.resolve().as_uri() + "?mode=ro", timeout, max_rows,
                             max_value_bytes)

    async def sql_query(
        query: Annotated[str, Field(description="One SQLite SELECT (or WITH ... SELECT) "
                                                "statement; use ? for values")],
        params: Annotated[list[str | int | float | None] | None,
                          Field(description="Values bound to the ? placeholders")] = None,
    ) -> dict[str, Any]:
        return await runner.run(query, list(params or []))

    return FunctionTool(
        sql_query,
        name=name,
        version=version,
        description=description or (
            f"Read-only SQL over the SQLite database {db.name}: one SELECT statement per call, "
            f"at most {max_rows} rows, {timeout:g} s per query. Writes are refused."),
        side_effect="read",
        idempotent=True,
        timeout=timeout + _GRACE_S,
    )
