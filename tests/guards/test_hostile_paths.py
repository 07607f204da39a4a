"""Issue 13 §5: `path_under` judges the file the tool will open, and the tool opens that file.

Real directories, files and symlinks in a tmp dir: a workspace the policy allows, a directory
outside it holding a secret, and the worker's working directory. The tools really open files;
the tests look at what they read and wrote.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.guards import GuardConfig, Guards, inbox, loads_policy, sign_decision
from tether.tools import ToolRegistry, tool

from . import agents_guarded as A
from .e2e_support import run_proposals as run_calls

SECRET = "the outside secret"
opened: list[str] = []


@tool(side_effect="read")
def read_file(path: str) -> str:
    """Read a text file."""
    opened.append(path)
    with open(path, encoding="utf-8") as fh:
        return fh.read()


@tool(side_effect="write")
def write_file(path: str, content: str) -> str:
    """Write a text file."""
    opened.append(path)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(content)
    return "written"


@tool(side_effect="read")
def read_pair(paths: list[str]) -> list[str]:
    """Read two files (paths checked by a dotted rule `paths.0`, `paths.1`)."""
    out = []
    for p in paths:
        opened.append(p)
        with open(p, encoding="utf-8") as fh:
            out.append(fh.read())
    return out


REGISTRY = ToolRegistry([read_file, write_file, read_pair])


class Tree:
    """tmp/ws (the workspace), tmp/outside/secret.txt, tmp/cwd (the worker's cwd)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ws = root / "ws"
        self.outside = root / "outside"
        self.cwd = root / "cwd"
        for d in (self.ws, self.outside, self.cwd, self.ws / "sub"):
            d.mkdir()
        (self.outside / "secret.txt").write_text(SECRET)
        (self.cwd / "secret.txt").write_text(SECRET)
        (self.ws / "good.txt").write_text("good")
        (self.ws / "sub" / "notes.txt").write_text("notes")

    def policy(self, prefix: Path | None = None, approve: bool = False) -> str:
        effect = "approve" if approve else "allow"
        where = prefix or self.ws
        return f"""
name: files
rules:
  - id: workspace
    tools: [read_file, write_file]
    effect: {effect}
    args: {{path: {{path_under: "{where}"}}}}
  - id: pairs
    tools: read_pair
    effect: allow
    args: {{paths.0: {{path_under: "{where}"}}, paths.1: {{path_under: "{where}"}}}}
"""


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    tree = Tree(tmp_path)
    monkeypatch.chdir(tree.cwd)  # the worker's working directory, where relative paths land
    opened.clear()
    return tree


def make_guards(policy: str, approvers: Any = None) -> Guards:
    cfg = GuardConfig(policy=loads_policy(policy, "files.yaml"), pii=False,
                      **({"approvers": approvers} if approvers is not None else {}))
    return Guards(cfg, tools=REGISTRY)


def assert_refused(result: dict[str, Any]) -> None:
    assert not result["ok"], result
    assert result["error"]["type"] == "policy_denied", result
    assert SECRET not in str(result)


# ------------------------------------------------------------------------ symlinks out
def _symlink_attacks(tree: Tree) -> dict[str, str]:
    """name -> path inside the workspace (lexically) that leads outside."""
    ws, out = tree.ws, tree.outside
    os.symlink(out / "secret.txt", ws / "link.txt")                  # file link, absolute
    os.symlink(out, ws / "door")                                     # directory link
    os.symlink("../outside/secret.txt", ws / "rel.txt")              # relative link
    os.symlink(ws / "hop2", ws / "hop1")                             # a chain of links
    os.symlink("door/secret.txt", ws / "hop2")
    os.symlink(out, ws / "sub" / "up")                               # deeper, then `..`
    return {
        "file-link": str(ws / "link.txt"),
        "dir-link": str(ws / "door" / "secret.txt"),
        "relative-link": str(ws / "rel.txt"),
        "chain": str(ws / "hop1"),
        "link-then-dotdot": str(ws / "sub" / "up" / ".." / "outside" / "secret.txt"),
        "dotdot": str(ws / "sub" / ".." / ".." / "outside" / "secret.txt"),
        "double-slash-dotdot": str(ws) + "//sub/../../outside/secret.txt",
    }


@pytest.mark.parametrize("attack", ["file-link", "dir-link", "relative-link", "chain",
                                    "link-then-dotdot", "dotdot", "double-slash-dotdot"])
async def test_a_path_that_leads_outside_the_workspace_is_refused(db_path, tree, attack):
    path = _symlink_attacks(tree)[attack]
    run = await run_calls(db_path, make_guards(tree.policy()), [["read_file", {"path": path}]])
    assert run.status == "succeeded", run.error
    assert_refused(run.result[0])
    assert opened == []


async def test_every_link_attack_is_refused_to_a_direct_call_too(db_path, tree):
    guards = make_guards(tree.policy())
    for path in _symlink_attacks(tree).values():
        run = await run_calls(db_path, guards, ["read_file", {"path": path}], A.direct_call)
        assert run.status == "failed" and "workspace" in (run.error or ""), (path, run)
    assert opened == []


async def test_writing_through_a_dangling_link_cannot_create_a_file_outside(db_path, tree):
    os.symlink(tree.outside / "created.txt", tree.ws / "new.txt")  # target does not exist yet
    run = await run_calls(db_path, make_guards(tree.policy()),
                          [["write_file", {"path": str(tree.ws / "new.txt"), "content": "x"}]])
    assert_refused(run.result[0])
    assert not (tree.outside / "created.txt").exists()


async def test_a_symlink_loop_is_refused_not_followed(db_path, tree):
    os.symlink(tree.ws / "loop2", tree.ws / "loop1")
    os.symlink(tree.ws / "loop1", tree.ws / "loop2")
    run = await run_calls(db_path, make_guards(tree.policy()),
                          [["read_file", {"path": str(tree.ws / "loop1" / "x")}]])
    assert_refused(run.result[0])
    assert "symbolic links" in run.result[0]["error"]["message"]
    assert opened == []


async def test_a_nul_byte_is_refused(db_path, tree):
    run = await run_calls(db_path, make_guards(tree.policy()),
                          [["read_file", {"path": f"{tree.ws}/good.txt\x00/../../x"}]])
    assert_refused(run.result[0])


async def test_dotted_path_arguments_are_resolved_too(db_path, tree):
    _symlink_attacks(tree)
    run = await run_calls(db_path, make_guards(tree.policy()), [
        ["read_pair", {"paths": [str(tree.ws / "good.txt"), str(tree.ws / "link.txt")]}],
        ["read_pair", {"paths": [str(tree.ws / "good.txt"), str(tree.ws / "sub/notes.txt")]}],
    ])
    assert_refused(run.result[0])
    assert run.result[1]["ok"] and run.result[1]["output"] == ["good", "notes"]


# ------------------------------------------------------------------- relative paths
@pytest.mark.parametrize("path", ["secret.txt", "./secret.txt", "sub/../secret.txt"])
async def test_a_relative_path_is_judged_where_the_tool_opens_it(db_path, tree, path):
    """The worker's cwd holds a secret: a relative path is the cwd's file, not the workspace's."""
    run = await run_calls(db_path, make_guards(tree.policy()), [["read_file", {"path": path}]])
    assert_refused(run.result[0])
    assert opened == []


async def test_a_relative_path_inside_the_workspace_reaches_the_tool_resolved(
        db_path, tree, monkeypatch):
    monkeypatch.chdir(tree.ws)
    os.symlink(tree.ws / "good.txt", tree.ws / "sub" / "alias.txt")  # a link that stays inside
    run = await run_calls(db_path, make_guards(tree.policy()), [
        ["read_file", {"path": "sub/notes.txt"}],
        ["read_file", {"path": "sub/alias.txt"}],
        ["read_file", {"path": "sub/../good.txt"}],
    ])
    assert [r["output"] for r in run.result] == ["notes", "good", "good"], run.result
    # the tool got the absolute, resolved path the policy judged: no link, no `..`
    assert opened == [str(tree.ws / "sub" / "notes.txt"), str(tree.ws / "good.txt"),
                      str(tree.ws / "good.txt")]


async def test_a_workspace_reached_through_a_symlinked_prefix_is_allowed(db_path, tree):
    os.symlink(tree.ws, tree.root / "ws-link")
    run = await run_calls(db_path, make_guards(tree.policy(prefix=tree.root / "ws-link")), [
        ["read_file", {"path": str(tree.root / "ws-link" / "good.txt")}],
        ["read_file", {"path": str(tree.outside / "secret.txt")}],
    ])
    assert run.result[0]["ok"] and run.result[0]["output"] == "good"
    assert_refused(run.result[1])


# ----------------------------------------------------- the path handed to the tool
async def test_a_link_swapped_after_the_decision_cannot_redirect_the_tool(db_path, tree, people):
    """The decision is made at the proposal; the tool runs after a human approved it. Meanwhile
    the link is re-pointed outside: the tool still opens the file that was judged (and
    approved), because it was handed the resolved path, not the link."""
    keys, reg = people
    os.symlink(tree.ws / "good.txt", tree.ws / "swap.txt")
    guards = make_guards(tree.policy(approve=True), approvers=reg)
    run = await run_calls(db_path, guards, [["read_file", {"path": str(tree.ws / "swap.txt")}]])
    assert run.status == "waiting"
    t = Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)
    [pending] = inbox.list_pending(t.store, reg)
    assert pending.request.args == {"path": str(tree.ws / "good.txt")}  # what the human sees
    os.remove(tree.ws / "swap.txt")
    os.symlink(tree.outside / "secret.txt", tree.ws / "swap.txt")  # the attacker's swap
    req = pending.request
    inbox.decide(t, sign_decision(keys["alice"], req.id, "approve", "alice", req.digest), reg)
    done = await t.drive(run.id)
    t.close()
    assert done.status == "succeeded", done.error
    assert done.result[0]["output"] == "good"
    assert opened == [str(tree.ws / "good.txt")]


def test_a_deny_rule_on_a_directory_sees_through_links(tree) -> None:
    os.symlink(tree.outside, tree.ws / "door")
    p = loads_policy(f"""
rules:
  - id: never-outside
    tools: read_file
    effect: deny
    args: {{path: {{path_under: "{tree.outside}"}}}}
  - {{id: anything-else, tools: read_file, effect: allow}}
""", "p.yaml")
    assert p.decide("read_file", {"path": str(tree.ws / "door" / "secret.txt")}).action == "deny"
    assert p.decide("read_file", {"path": "../outside/secret.txt"}).action == "deny"
    assert p.decide("read_file", {"path": str(tree.ws / "good.txt")}).action == "allow"
    # a path that cannot be resolved (a NUL byte) counts as matching the deny rule
    d = p.decide("read_file", {"path": str(tree.ws / "good.txt\x00")})
    assert (d.action, d.rule) == ("deny", "never-outside"), d.explain()


def test_the_resolved_path_is_the_file_the_kernel_opens(tree) -> None:
    """Against the kernel itself: the resolved path names the same file as the original, and
    none of its components is a link (nothing left to re-point)."""
    from tether.guards._argchecks import resolve_path

    paths = [*_symlink_attacks(tree).values(), "secret.txt", "../ws/good.txt",
             str(tree.ws / "sub" / ".." / "good.txt")]
    os.symlink("../good.txt", tree.ws / "sub" / "alias.txt")
    paths.append(str(tree.ws / "sub" / "alias.txt"))
    for path in paths:
        resolved = resolve_path(path)
        assert os.path.samefile(path, resolved), (path, resolved)
        parts = Path(resolved).parts
        assert not any(os.path.islink(os.path.join(*parts[:i])) for i in range(2, len(parts) + 1))
        assert ".." not in parts and resolved == os.path.realpath(path)


async def test_a_prefix_that_cannot_be_resolved_refuses_instead_of_crashing(db_path, tree):
    os.symlink(tree.root / "loopB", tree.root / "loopA")
    os.symlink(tree.root / "loopA", tree.root / "loopB")
    run = await run_calls(db_path, make_guards(tree.policy(prefix=tree.root / "loopA")),
                          [["read_file", {"path": str(tree.ws / "good.txt")}]])
    assert run.status == "succeeded", run.error
    assert_refused(run.result[0])
    assert opened == []


def test_a_relative_path_is_refused_when_the_working_directory_is_gone(tree, monkeypatch):
    """(Judged by the gate directly: a runtime cannot even import its agents without a cwd.)"""
    gone = tree.root / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    guards = make_guards(tree.policy())
    d = guards.gate.decide(guards.config.policy, "read_file", {"path": "x.txt"})
    assert d.action == "deny" and "working directory is gone" in d.reason, d.explain()
    d = guards.gate.decide(guards.config.policy, "read_file", {"path": str(tree.ws / "good.txt")})
    assert d.action == "allow", d.explain()
