"""`sql: read_only`, the policy's judgement of a SQL statement: the second line of defence.

The first line is the database (`tether.tools.sqlite_query_tool` opens a read-only connection that
SQLite itself enforces). This check decides before the call, on text, and can be fooled by any
difference between how it splits SQL and how the engine does: issue 13 found that treating `\\'`
as an escape and `#` as a comment let `WITH a AS (SELECT 'x\\') DELETE FROM users --'` through to
SQLite, which has neither. A policy does not know which engine a tool talks to, so a statement is
judged read-only only if it is read-only as SQLite, MySQL *and* PostgreSQL would read it, and
SQLite's own tokenizer (`sqlite3.complete_statement`) agrees that it is a single statement.
Everything it cannot classify is refused: a false "not read-only" costs an allow rule, a false
"read-only" lets a write through.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

# Statements/keywords that can change state. Conservative on purpose.
_WRITE_WORDS = frozenset({
    "insert", "update", "delete", "drop", "alter", "create", "replace", "truncate", "grant",
    "revoke", "attach", "detach", "pragma", "vacuum", "into", "merge", "copy", "call", "exec",
    "execute", "lock", "set", "reindex", "comment", "load", "upsert", "rename", "analyze",
    "begin", "commit", "rollback", "savepoint", "release", "prepare", "deallocate", "listen",
    "notify", "refresh", "cluster", "do", "import", "install", "handler",
})
# Functions that reach outside the database (load code, read or write host files).
_FORBIDDEN_FUNCTIONS = frozenset({
    "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "lo_import",
    "lo_export", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "dblink", "dblink_exec",
    "load_file",
})
_READ_STARTS = frozenset({"select", "with", "values", "explain", "show", "describe", "table"})
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_MAX_SEMICOLONS = 256  # bounds the SQLite cross-check (one tokenizer pass per ';')


@dataclass(frozen=True)
class Dialect:
    """How one engine splits SQL text into code, literals and comments."""

    name: str
    #: quote characters inside which a backslash escapes the next character
    backslash_quotes: str = ""
    #: `#` starts a comment to the end of the line
    hash_comment: bool = False
    #: `--` is a comment only when followed by whitespace (MySQL: `1--1` is arithmetic)
    dash_comment_needs_space: bool = False
    #: `/* /* */ */` nests
    nested_comments: bool = False
    #: `$tag$ ... $tag$` quotes, and `E'...'` strings with backslash escapes
    postgres_strings: bool = False
    #: `[identifier]`
    brackets: bool = False


SQLITE = Dialect("SQLite", brackets=True)
MYSQL = Dialect("MySQL", backslash_quotes="'\"", hash_comment=True, dash_comment_needs_space=True)
POSTGRES = Dialect("PostgreSQL", nested_comments=True, postgres_strings=True)
DIALECTS = (SQLITE, MYSQL, POSTGRES)


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def _quote_end(sql: str, j: int, close: str, doubled: bool, backslash: bool) -> int:
    """Index just past the quote that closes a literal opened before `j`; -1 if none does."""
    n = len(sql)
    while j < n:
        ch = sql[j]
        if backslash and ch == "\\":
            j += 2
            continue
        if ch == close:
            if doubled and j + 1 < n and sql[j + 1] == close:
                j += 2
                continue
            return j + 1
        j += 1
    return -1


def _comment_end(sql: str, i: int, nested: bool) -> int:
    """Index just past the `*/` closing the comment opened at `i`; -1 if it is unterminated."""
    if not nested:
        k = sql.find("*/", i + 2)
        return -1 if k < 0 else k + 2
    depth, j, n = 0, i, len(sql)
    while j < n:
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return -1


def strip_sql(sql: str, dialect: Dialect = SQLITE) -> str | None:
    """The code of `sql` as `dialect` reads it: comments become a space, string literals
    ` lit `, quoted identifiers ` ident `. None when a quote or comment is left open."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        dash = c == "-" and sql.startswith("--", i) and (
            not dialect.dash_comment_needs_space or i + 2 >= n or sql[i + 2].isspace())
        if dash or (c == "#" and dialect.hash_comment):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            out.append(" ")
        elif c == "/" and sql.startswith("/*", i):
            i = _comment_end(sql, i, dialect.nested_comments)
            if i < 0:
                return None
            out.append(" ")
        elif c in "'\"`" or (c == "[" and dialect.brackets):
            close = "]" if c == "[" else c
            e_string = (dialect.postgres_strings and c == "'" and i > 0 and sql[i - 1] in "eE"
                        and (i < 2 or not _is_ident_char(sql[i - 2])))
            backslash = c in dialect.backslash_quotes or e_string
            k = _quote_end(sql, i + 1, close, doubled=c != "[", backslash=backslash)
            if k < 0:
                return None
            out.append(" lit " if c == "'" else " ident ")
            i = k
        elif (c == "$" and dialect.postgres_strings and (i == 0 or not _is_ident_char(sql[i - 1]))
              and (m := _DOLLAR_TAG.match(sql, i))):
            tag = m.group(0)
            k = sql.find(tag, m.end())
            if k < 0:
                return None
            out.append(" lit ")
            i = k + len(tag)
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _read_only_as(sql: str, dialect: Dialect) -> tuple[bool, str]:
    stripped = strip_sql(sql, dialect)
    if stripped is None:
        return False, "unbalanced quotes or comment"
    statements = [s for s in stripped.split(";") if s.strip()]
    if len(statements) != 1:
        return False, f"{len(statements)} statements (exactly one read-only statement allowed)"
    words = [w.lower() for w in _TOKEN.findall(statements[0])]
    if not words or words[0] not in _READ_STARTS:
        first = words[0] if words else "<empty>"
        return False, f"statement starts with '{first}', not a query"
    bad = sorted({w for w in words if w in _WRITE_WORDS})
    if bad:
        return False, f"contains write keyword(s) {', '.join(w.upper() for w in bad)}"
    calls = sorted({w for w in words if w in _FORBIDDEN_FUNCTIONS})
    if calls:
        return False, f"calls {', '.join(calls)}, which reaches outside the database"
    return True, "read-only query"


def _sqlite_single_statement(sql: str) -> tuple[bool, str]:
    """SQLite's own tokenizer: no complete statement may end before the text does."""
    semicolons = [i for i, ch in enumerate(sql) if ch == ";"]
    if len(semicolons) > _MAX_SEMICOLONS:
        return False, f"more than {_MAX_SEMICOLONS} ';' (too many to judge; split the query)"
    for i in semicolons:
        if sqlite3.complete_statement(sql[: i + 1]):
            rest = strip_sql(sql[i + 1:], SQLITE)
            if rest is None or rest.strip():
                return False, (f"SQLite ends a statement at character {i + 1} and more text "
                               "follows (exactly one read-only statement allowed)")
            break
    return True, "one statement"


def sql_read_only(sql: str) -> tuple[bool, str]:
    """True only for one statement that every dialect reads as a query with no write keyword."""
    if "/*!" in sql:
        return False, "contains a MySQL executable comment (/*! ... */), which MySQL runs as SQL"
    for dialect in DIALECTS:
        ok, why = _read_only_as(sql, dialect)
        if not ok:
            return False, why if dialect is SQLITE else f"{why} (as {dialect.name} reads it)"
    ok, why = _sqlite_single_statement(sql)
    if not ok:
        return False, why
    return True, "read-only query"
