"""Policy gateway: loading with line numbers, deny by default, hostile arguments."""

from __future__ import annotations

import pytest

from tether.guards.errors import PolicyLoadError
from tether.guards.policy import PolicySet, ToolInfo, loads_policy

POLICY = """\
version: 1
name: support
honeypots: [shutdown, delete_all]
http:
  allow_domains: [api.example.com, "*.github.com"]
rules:
  - id: search
    tools: "search_*"
    effect: allow
  - id: sql-read-only
    tools: sql_query
    effect: allow
    args:
      query: {sql: read_only}
  - id: workspace-files
    tools: [read_file, write_file]
    effect: allow
    args:
      path: {path_under: /workspace}
  - id: small-refunds
    tools: refund
    effect: allow
    args:
      amount: {max: 100}
  - id: big-refunds
    tools: refund
    effect: approve
    args:
      amount: {min: 100.01}
  - id: transfer
    tools: transfer
    effect: approve
    critical: true
  - id: no-write-to-secrets
    tools: write_file
    effect: deny
    args:
      path: {regex: ".*secret.*"}
  - id: fetch
    tools: fetch
    effect: allow
"""


@pytest.fixture
def policy():
    return loads_policy(POLICY, "support.yaml")


def test_unknown_tool_is_denied_by_default(policy):
    d = policy.decide("rm_rf", {"path": "/"})
    assert (d.action, d.rule) == ("deny", "default")


def test_allow_by_glob_records_rule_and_line(policy):
    d = policy.decide("search_web", {"q": "x"})
    assert (d.action, d.rule, d.line) == ("allow", "search", 7)
    assert d.to_json()["rule"] == "search"


@pytest.mark.parametrize("sql", [
    "SELECT * FROM users",
    "with t as (select 1) select * from t",
    "select 'drop table x' as s",  # keyword inside a literal is data
    "SELECT 1;",
])
def test_read_only_sql_allowed(policy, sql):
    assert policy.decide("sql_query", {"query": sql}).action == "allow"


@pytest.mark.parametrize("sql", [
    "DELETE FROM users",
    "SELECT 1; DROP TABLE users",
    "select 1 /* */; delete from t",
    "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
    "SELECT * INTO backup FROM users",
    "PRAGMA writable_schema=1",
    "select 'unterminated",
    "ATTACH DATABASE 'x.db' AS x",
    "/* select */ update t set a=1",
    "select $$x$$; update t set a=1",
    "",
])
def test_writing_sql_denied_with_reason(policy, sql):
    d = policy.decide("sql_query", {"query": sql})
    assert d.action == "deny"
    assert "sql-read-only" in d.reason


@pytest.mark.parametrize("path,ok", [
    ("/workspace/a.txt", True),
    # relative: the file the tool opens, from the working directory (not from the prefix)
    ("notes/a.txt", False),
    ("/workspace/../etc/passwd", False),
    ("../../etc/passwd", False),
    ("/workspacex/a", False),
    ("//etc/passwd", False),
    ("/workspace/a\x00/../../etc", False),
])
def test_path_prefix(policy, path, ok):
    assert (policy.decide("read_file", {"path": path}).action == "allow") is ok


def test_wrong_type_or_missing_argument_fails_closed(policy):
    assert policy.decide("read_file", {"path": ["/workspace/a"]}).action == "deny"
    assert policy.decide("read_file", {}).action == "deny"
    # `min`/`max` cannot be evaluated on a string or a bool: that matches the `approve` rule
    # (fail closed: a person decides) and never the `allow` rule (issue 13)
    for amount in ("5", True):
        d = policy.decide("refund", {"amount": amount})
        assert (d.action, d.rule) == ("approve", "big-refunds"), amount


def test_deny_beats_allow(policy):
    d = policy.decide("write_file", {"path": "/workspace/secret.txt"})
    assert (d.action, d.rule) == ("deny", "no-write-to-secrets")


def test_approval_and_critical(policy):
    assert policy.decide("refund", {"amount": 50}).action == "allow"
    d = policy.decide("refund", {"amount": 500})
    assert (d.action, d.rule, d.critical) == ("approve", "big-refunds", False)
    d = policy.decide("transfer", {"to": "x"})
    assert (d.action, d.critical) == ("approve", True)


def test_tool_metadata_requiring_approval(policy):
    d = policy.decide(ToolInfo("search_web", side_effect="read", requires_approval=True), {})
    assert d.action == "approve" and d.rule == "tool:search_web"


def test_honeypot_wins_over_everything(policy):
    d = policy.decide("delete_all", {})
    assert d.action == "honeypot" and d.rule == "honeypot:delete_all"


@pytest.mark.parametrize("url,ok", [
    ("https://api.example.com/v1/x", True),
    ("https://raw.github.com/a", True),
    ("https://github.com/a", False),  # *.github.com does not match the apex
    ("https://api.example.com@evil.com/", False),
    ("https://evil.com/?u=https://api.example.com", False),
    ("https://api.example.com.evil.com/", False),
    ("file:///etc/passwd", False),
    ("gopher://api.example.com/", False),
    ("HTTPS://API.EXAMPLE.COM./x", True),
])
def test_http_domain_allow_list(policy, url, ok):
    d = policy.decide(ToolInfo("fetch", side_effect="read", kind="http"), {"url": url})
    assert (d.action == "allow") is ok, d.explain()


def test_http_nested_url_arguments_are_checked(policy):
    d = policy.decide(ToolInfo("fetch", side_effect="read", kind="http"),
                      {"url": "https://api.example.com", "extra": {"next": "http://10.0.0.1/"}})
    assert d.action == "deny" and d.rule == "http.allow_domains"


def test_read_only_mode_blocks_write_and_unknown():
    p = loads_policy("read_only: true\nrules:\n  - {id: all, tools: '*', effect: allow}\n")
    assert p.decide(ToolInfo("get", side_effect="read"), {}).action == "allow"
    for effect in ("write", "destructive", None):
        d = p.decide(ToolInfo("x", side_effect=effect), {})
        assert (d.action, d.rule) == ("deny", "read_only")


def test_policy_set_most_restrictive_wins(policy):
    tenant = loads_policy("rules:\n  - {id: t-all, tools: '*', effect: allow}\n", "tenant.yaml")
    both = PolicySet(tenant, policy)
    assert both.decide("rm_rf", {}).action == "deny"
    assert both.decide("search_web", {}).action == "allow"
    assert both.decide("transfer", {}).critical is True


def test_explain_names_near_misses(policy):
    text = policy.decide("read_file", {"path": "/etc/passwd"}).explain()
    assert "workspace-files" in text and "outside /workspace" in text and "line 15" in text


@pytest.mark.parametrize("text,line,fragment", [
    ("rules:\n  - id: a\n    tools: x\n    effect: allw\n", 4, "effect must be"),
    ("rules:\n  - id: a\n    tools: x\n", 2, "missing required key 'effect'"),
    ("version: 1\nrulez: []\n", 2, "unknown top-level key 'rulez'"),
    ("rules:\n  - id: a\n    tools: x\n    effect: allow\n    args:\n      q: {regex: '('}\n",
     6, "invalid regular expression"),
    ("rules:\n  - id: a\n    tools: x\n    effect: allow\n    args:\n      q: {likes: 1}\n",
     6, "unknown condition 'likes'"),
    ("rules:\n  - {id: a, tools: x, effect: allow}\n  - {id: a, tools: y, effect: deny}\n",
     3, "duplicate rule id 'a'"),
    ("default: allow\n", 1, "deny by default"),
    ("rules:\n  - {id: a, tools: x, effect: allow, critical: true}\n", 2, "critical only"),
    ("name: a\nname: b\n", 2, "duplicate key 'name'"),
    ("rules: [\n", 2, "invalid YAML"),
    ("http:\n  allow_domains: ['https://x.com/']\n", 2, "not a URL"),
    ("rules:\n  - id: a\n    tools: x\n    effect: allow\n    args:\n      p: {path_under: rel}\n",
     6, "absolute path"),
    ("read_only: yes please\n", 1, "true or false"),
    ("", 1, "empty policy"),
    ("version: 1\nname: !!python/object:os.system x\n", 2, "could not determine a constructor"),
    ("rules:\n  - {id: a, tools: x, effect: allow, args: {q: {in: !!python/tuple [1]}}}\n", 2,
     "could not determine a constructor"),
    ("- a\n", 1, "policy must be a mapping"),
    ("rules: 5\n", 1, "rules must be a list"),
])
def test_invalid_policy_rejected_with_line(text, line, fragment):
    with pytest.raises(PolicyLoadError) as exc:
        loads_policy(text, "bad.yaml")
    assert exc.value.line == line, str(exc.value)
    assert fragment in exc.value.reason
    assert str(exc.value).startswith(f"bad.yaml:{line}:")
