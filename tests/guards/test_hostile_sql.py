"""Read-only SQL against a hostile model, on a real SQLite database.

Two lines of defence, each tested alone and then together on the real runtime:
* the database: `sqlite_query_tool` opens the file read-only (`mode=ro`, `query_only`, an
  authorizer that allows only reads, one statement per call) and stops a runaway query;
* the policy: `sql: read_only` must judge a statement the way SQLite splits it (no backslash
  escapes, `#` is not a comment), and SQLite itself is the oracle for that judgement.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.guards import GuardConfig, Guards, loads_policy
from tether.guards._argchecks import sql_read_only
from tether.tools import ToolRegistry, sqlite_query_tool

ROWS = 5


def _make_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, role TEXT);"
        "CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT);"
        "CREATE INDEX users_name ON users(name);"
    )
    conn.executemany("INSERT INTO users(name, role) VALUES (?, ?)",
                     [(f"user{i}", "admin" if i == 0 else "staff") for i in range(ROWS)])
    conn.commit()
    conn.close()
    return path


def _snapshot(path: Path) -> tuple[Any, ...]:
    """Everything a write could change: schema, rows, user_version, the files next to it."""
    conn = sqlite3.connect(path)
    try:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        users = conn.execute("SELECT * FROM users ORDER BY id").fetchall()
        audit = conn.execute("SELECT * FROM audit ORDER BY id").fetchall()
        version = conn.execute("PRAGMA user_version").fetchone()
    finally:
        conn.close()
    files = sorted(p.name for p in path.parent.iterdir())
    return schema, users, audit, version, files


@pytest.fixture
def db(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return _make_db(tmp_path / "data" / "app.db")


def _attacks(tmp: Path) -> list[str]:
    """Writes disguised as reads. Each would change `db` (or create a file) if it ran."""
    out = tmp / "stolen.db"
    return [
        # the examples of issue 13
        "WITH a AS (SELECT 'x\\') DELETE FROM users --'",
        "SELECT 1 # ; DROP TABLE users",
        # backslash / quote / comment tricks
        "SELECT 'x\\'; DROP TABLE users; --'",
        "SELECT \"a\\\" FROM users; DELETE FROM users; --\"",
        "SELECT `a\\` FROM users; DELETE FROM users; --`",
        "SELECT $a$; DELETE FROM users; $a$",
        "SELECT 1 /* */ ; DELETE FROM users",
        "SELECT /* /* */ 1; DELETE FROM users; -- */",
        "SELECT 1 -- comment\n; DELETE FROM users",
        "SELECT 1 #\n; DELETE FROM users",
        "SELECT 1; DROP TABLE users",
        "SELECT * FROM users; UPDATE users SET role = 'admin'",
        # nested CTE writes
        "WITH x AS (SELECT 1) INSERT INTO users(name) SELECT 'mallory' FROM x",
        "WITH RECURSIVE a(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM a WHERE n < 3) "
        "DELETE FROM users WHERE id IN a",
        "WITH a AS (SELECT 1) UPDATE users SET name = 'x'",
        # UPSERT and friends
        "INSERT INTO users(id, name) VALUES (1, 'z') ON CONFLICT(id) DO UPDATE SET role = 'owner'",
        "REPLACE INTO users(id, name, role) VALUES (1, 'mallory', 'admin')",
        "DELETE FROM users RETURNING *",
        # ATTACH, PRAGMA writes, extensions, temp tables, VACUUM INTO
        f"ATTACH DATABASE '{out}' AS x",
        f"SELECT 1; ATTACH DATABASE '{out}' AS x",
        "PRAGMA user_version = 7",
        "PRAGMA query_only = OFF",
        "PRAGMA writable_schema = ON",
        "PRAGMA journal_mode = DELETE",
        "SELECT load_extension('/nonexistent/evil.so')",
        "CREATE TEMP TABLE t AS SELECT * FROM users",
        "CREATE TEMP VIEW v AS SELECT 1",
        f"VACUUM INTO '{out}'",
        "VACUUM",
        "ANALYZE",
        "REINDEX",
        "BEGIN IMMEDIATE",
        "SAVEPOINT a",
        "CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM audit; END",
        "DROP TABLE audit",
    ]


# ------------------------------------------------------------- the database (first line)
@pytest.fixture
def sql_tool(db: Path) -> Any:
    return sqlite_query_tool(db, timeout=2.0)


async def test_every_attack_is_refused_by_the_read_only_connection(db: Path, sql_tool: Any,
                                                                   tmp_path: Path) -> None:
    before = _snapshot(db)
    for query in _attacks(tmp_path):
        result = await sql_tool.run({"query": query})
        assert not result.ok, f"ran: {query!r} -> {result.output!r}"
        assert result.error.type in ("execution_error", "invalid_arguments"), query
        assert _snapshot(db) == before, f"database changed by {query!r}"
    assert not (tmp_path / "stolen.db").exists()


async def test_the_tool_never_runs_a_script(db: Path, sql_tool: Any) -> None:
    """One statement per call: a stacked statement is refused, not run after the first."""
    before = _snapshot(db)
    for query in ("SELECT 1; DROP TABLE users", "SELECT 1;DROP TABLE users;",
                  "SELECT 1;\n-- a comment\nDROP TABLE users"):
        result = await sql_tool.run({"query": query})
        assert not result.ok
        assert "one statement" in result.error.message
    result = await sql_tool.run({"query": "SELECT 1 # ; DROP TABLE users"})
    assert not result.ok  # `#` is not a comment for SQLite: a syntax error, nothing ran
    assert _snapshot(db) == before


async def test_reads_still_work_and_the_refusal_says_why(db: Path, sql_tool: Any) -> None:
    ok = await sql_tool.run({"query": "SELECT name FROM users WHERE role = ? ORDER BY id",
                             "params": ["admin"]})
    assert ok.ok and ok.output["rows"] == [["user0"]] and ok.output["columns"] == ["name"]
    # a correctly escaped quote is one literal for SQLite: a harmless read
    quoted = await sql_tool.run({"query": "SELECT count(*) FROM users WHERE name = "
                                          "'a''; DELETE FROM users; --'"})
    assert quoted.ok and quoted.output["rows"] == [[0]]
    schema = await sql_tool.run({"query": "PRAGMA table_info(users)"})
    assert schema.ok and [r[1] for r in schema.output["rows"]] == ["id", "name", "role"]
    refused = await sql_tool.run({"query": "DELETE FROM users"})
    assert not refused.ok and "read-only" in refused.error.message
    assert "DELETE" in refused.error.message or "not authorized" in refused.error.message


async def test_huge_values_are_refused_not_allocated(db: Path, sql_tool: Any) -> None:
    for query in ("SELECT zeroblob(2000000000)", "SELECT randomblob(500000000)",
                  "SELECT hex(zeroblob(100000000))"):
        result = await sql_tool.run({"query": query})
        assert not result.ok and "too big" in result.error.message.lower(), query


# ------------------------------------------------------------- the policy (second line)
@pytest.mark.parametrize("index", range(len(_attacks(Path("/tmp")))))
def test_the_policy_judges_no_attack_read_only(index: int, tmp_path: Path) -> None:
    query = _attacks(tmp_path)[index]
    ok, _ = sql_read_only(query)
    assert not ok, f"judged read-only: {query!r}"


def test_sqlite_is_the_oracle_for_the_policy(db: Path, tmp_path: Path) -> None:
    """Whatever the policy calls read-only must change nothing even when SQLite runs it as a
    script on a writable connection (what a naive tool does): the split must be SQLite's."""
    candidates = [
        *_attacks(tmp_path),
        "SELECT 'C:\\dir\\' AS p",  # legal in SQLite, but a backslash escape elsewhere: refused
        "SELECT count(*) FROM users WHERE name = 'a''; DELETE FROM users; --'",
        "SELECT '#'; SELECT 1",
        "SELECT name FROM users -- ; DELETE FROM users",
        "SELECT name FROM users /* ; DELETE FROM users */",
    ]
    judged_read_only = []
    for query in candidates:
        if not sql_read_only(query)[0]:
            continue
        judged_read_only.append(query)
        (tmp_path / "oracle").mkdir(exist_ok=True)
        copy = tmp_path / "oracle" / "oracle.db"
        shutil.copy(db, copy)
        before = _snapshot(copy)
        conn = sqlite3.connect(copy)
        try:
            conn.executescript(query)
        except sqlite3.Error:
            pass
        finally:
            conn.close()
        assert _snapshot(copy) == before, f"judged read-only but changed the db: {query!r}"
        copy.unlink()
    # the escaped quote and the two comments; not the backslash (another engine's escape) nor
    # the two statements
    assert judged_read_only == [candidates[-4], candidates[-2], candidates[-1]]


@pytest.mark.parametrize("query", [
    "SELECT count(*) FROM users WHERE name = 'a''; DELETE FROM users; --'",
    "SELECT name FROM users -- trailing comment",
    "SELECT 'a\\b' AS backslash_in_the_middle",
    "SELECT '#tag' FROM users",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5) SELECT x FROM c",
    "SELECT \"name\" FROM [users]",
])
def test_ordinary_reads_are_still_judged_read_only(query: str) -> None:
    ok, why = sql_read_only(query)
    assert ok, why


@pytest.mark.parametrize("query,fragment", [
    ("SELECT 1; DROP TABLE users", "2 statements"),
    ("SELECT 1 # ; DROP TABLE users", "2 statements"),
    ("SELECT 'x\\'; DROP TABLE users; --'", "statements"),
    ("SELECT 'unterminated", "unbalanced"),
    ("SELECT 1 /*! ; DROP TABLE users */", "executable comment"),
    ("WITH a AS (SELECT 'x\\') DELETE FROM users --'", "DELETE"),
])
def test_the_policy_says_why(query: str, fragment: str) -> None:
    ok, why = sql_read_only(query)
    assert not ok and fragment in why, why


# ------------------------------------------------------------- both, on the real runtime
STATE: dict[str, Any] = {}

POLICY = """
name: sql
rules:
  - id: sql-read
    tools: sql_query
    effect: allow
    args: {query: {sql: read_only}}
"""


async def run_queries(ctx: Any, goal: dict[str, Any]) -> list[dict[str, Any]]:
    """What a ReAct loop does with each proposal: hand it to the guards."""
    guards: Guards = STATE["guards"]
    out = []
    for query in goal["queries"]:
        result = await guards.tool(ctx, "sql_query", {"query": query})
        out.append(result.model_dump(mode="json"))
    return out


async def test_hostile_queries_through_the_guards_change_nothing(db: Path, db_path: str,
                                                                 tmp_path: Path) -> None:
    registry = ToolRegistry([sqlite_query_tool(db, timeout=2.0)])
    guards = Guards(GuardConfig(policy=loads_policy(POLICY, "sql.yaml")), tools=registry)
    STATE["guards"] = guards
    before = _snapshot(db)
    attacks = _attacks(tmp_path)
    t = Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)
    try:
        run = await t.run(run_queries, {"queries": [*attacks, "SELECT count(*) FROM users"]})
    finally:
        t.close()
    assert run.status == "succeeded", run.error
    *refused, last = run.result
    assert all(not r["ok"] for r in refused)
    assert all(r["error"]["type"] == "policy_denied" for r in refused)  # the policy stops them
    assert last["ok"] and last["output"]["rows"] == [[ROWS]]
    assert _snapshot(db) == before

