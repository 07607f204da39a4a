"""Every code block of README.md and docs/*.md runs as printed, or says visibly why it does not
(issue 17): python blocks run in order in one namespace per document, in a temporary directory
holding the document's `<!-- file: NAME -->` blocks; console blocks' `$ tether ...` commands run
against a temporary database. See tests/docs/markdown_blocks.py for the conventions."""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import os
import shlex
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests.docs.markdown_blocks import ROOT, Block, all_blocks, blocks, documents

# Blocks in sections other engineers own (they cannot carry a marker from this test's author);
# keyed by document and the block's first line. Counted with the marked ones.
ELSEWHERE = {
    ("README.md", "tether run MODULE:AGENT --input JSON [--detach]   # run here (prints the "
     "timeline) or just queue"): "a synopsis of the core commands; docs/cli.md runs each one",
    ("docs/architecture.md", "tether/demo           the packaged demo (`python -m tether.demo`; "
     "nothing imports it)"): "a directory layout, not code",
}


def benchmark_command(block: Block) -> bool:
    """A reproduce command in the generated docs/benchmarks.md: benchmarks run for minutes to
    hours (`make bench`), so instead of running them the test checks that each names a real make
    target or script (test_benchmark_commands_name_real_targets)."""
    lines = [ln for ln in block.code.splitlines() if ln.strip()]
    return block.doc == "docs/benchmarks.md" and bool(lines) and all(
        ln.startswith(("make bench", ".venv/bin/python benchmarks/")) for ln in lines)

# Raise it only with a reason in the marker: every block that is not run is a promise untested.
MOST_NOT_RUN = 11


def first_line(block: Block) -> str:
    return block.code.splitlines()[0] if block.code else ""


def elsewhere(block: Block) -> str | None:
    return ELSEWHERE.get((block.doc, first_line(block)))


def test_every_block_is_run_or_visibly_marked() -> None:
    unclassified = [b.where for b in all_blocks()
                    if b.kind == "unclassified" and elsewhere(b) is None
                    and not benchmark_command(b)]
    assert unclassified == [], (
        f"code blocks neither run nor marked: {unclassified}. Make each a ```python block or a "
        "```console block of `$ tether ...` commands (both run by tests/docs), or put "
        "`<!-- not run: REASON -->` or `<!-- file: NAME -->` on the line above it")


def test_blocks_not_run_are_few_and_each_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    skipped = [(b.where, b.not_run or elsewhere(b) or "") for b in all_blocks()
               if b.kind == "not run" or (b.kind == "unclassified" and elsewhere(b))]
    with capsys.disabled():
        print(f"\n{len(skipped)} documentation block(s) not run:")
        for where, reason in skipped:
            print(f"  {where}: {reason}")
    assert all(len(reason.split()) >= 3 for _, reason in skipped), skipped
    assert len(skipped) <= MOST_NOT_RUN, skipped
    used = {key for key in ELSEWHERE
            if any((b.doc, first_line(b)) == key for b in all_blocks())}
    assert used == set(ELSEWHERE), f"stale ELSEWHERE entries: {set(ELSEWHERE) - used}"


def test_benchmark_commands_name_real_targets() -> None:
    commands = [b for b in all_blocks() if benchmark_command(b)]
    assert commands, "docs/benchmarks.md has no reproduce commands"
    makefiles = [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]
    targets = {line.split(":", 1)[0] for f in makefiles for line in f.read_text().splitlines()
               if line and not line[0].isspace() and ":" in line and "=" not in line}
    for block in commands:
        for line in block.code.splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] == ["make"]:
                assert words[1] in targets, f"{block.where}: no make target {words[1]!r}"
            script = next((w for w in line.split() if w.startswith("benchmarks/")), None)
            if script:
                assert (ROOT / script).is_file(), f"{block.where}: no script {script}"


def test_a_new_unmarked_block_fails(tmp_path: Path) -> None:
    """The check above can fail: an unmarked block of another language is caught."""
    doc = tmp_path / "probe.md"
    doc.write_text("# probe\n\n```\nsomething new\n```\n\n<!-- not run: a probe block "
                   "here -->\n```\nskipped\n```\n\n```console\n$ tether runs\n```\n"
                   "\n<!-- output -->\n```\nprinted\n```\n")
    found = blocks(doc)
    assert [b.kind for b in found] == ["unclassified", "not run", "console", "output"]
    assert found[1].not_run == "a probe block here"


def documents_with(kind: str) -> list[str]:
    return [p.relative_to(ROOT).as_posix() for p in documents()
            if any(b.kind == kind for b in blocks(p))]


def write_files(doc: Path, where: Path) -> None:
    for block in blocks(doc):
        if block.file is not None:
            target = where / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)


async def run_python_blocks(doc: Path, where: Path) -> types.ModuleType:
    """Execute the document's python blocks in order, as one module (agents defined in a block
    are importable by name, as a worker needs them to be); top-level `await` allowed."""
    name = "tether_docs_" + doc.stem.replace("-", "_").lower()
    module = types.ModuleType(name)
    module.__file__ = str(where / f"{name}.py")
    sys.modules[name] = module
    printed = ""  # what the last python block printed
    try:
        for block in blocks(doc):
            if block.kind == "output":
                assert block.code.strip() in printed, (
                    f"{block.where}: the block above does not print this; it printed:\n{printed}")
            if block.kind != "python":
                continue
            code = compile(block.code, block.where, "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    result = eval(code, module.__dict__)
                    if inspect.iscoroutine(result):
                        await result
            except Exception as exc:
                raise AssertionError(f"{block.where}: the block fails as printed: "
                                     f"{type(exc).__name__}: {exc}") from exc
            printed = out.getvalue()
    finally:
        sys.modules.pop(name, None)
    return module


@pytest.mark.parametrize("doc", documents_with("python"))
async def test_python_blocks_run_as_printed(doc: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_files(ROOT / doc, tmp_path)
    await run_python_blocks(ROOT / doc, tmp_path)


@pytest.mark.parametrize("doc", documents_with("console"))
def test_console_blocks_run_as_printed(doc: str, tmp_path: Path) -> None:
    write_files(ROOT / doc, tmp_path)
    env = {**os.environ, "TETHER_DB": str(tmp_path / "docs.db"), "COLUMNS": "200",
           "PYTHONPATH": str(ROOT)}
    for block in blocks(ROOT / doc):
        if block.kind != "console":
            continue
        for command in block.commands():
            argv = shlex.split(command)
            assert argv[0] == "tether", f"{block.where}: only `tether` commands are run: {command}"
            proc = subprocess.run([sys.executable, "-m", "tether", *argv[1:]], cwd=tmp_path,
                                  env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"{block.where}: `{command}` failed: {proc.stderr}"
            for expected in expected_output(block, command):
                assert expected in proc.stdout, (
                    f"{block.where}: `{command}` did not print {expected!r}:\n{proc.stdout}")


def expected_output(block: Block, command: str) -> list[str]:
    """The lines printed under a command in the block, up to the next `$` line."""
    lines = block.code.splitlines()
    start = lines.index(f"$ {command}") + 1
    shown = []
    for line in lines[start:]:
        if line.startswith("$ "):
            break
        if line.strip():
            shown.append(line.strip())
    return shown


# What the documents say their examples give (the comment after the expression in the block).
DOCUMENTED = {
    "docs/agents.md": ('record.result["answer"]', "About 329 people per km²."),
    "docs/guards.md": ("record.result", "A-7 has shipped."),
    "docs/tools.md": ("record.result", {"city": "Oslo", "unit": "C", "highs": [12]}),
    "docs/models.md": ("reply.text", "hello"),
    "docs/sandbox.md": ("record.result[:2]", [0, "2 a.csv\n"]),  # bwrap, then gVisor
}


@pytest.mark.parametrize("doc", sorted(DOCUMENTED))
async def test_examples_give_what_the_docs_say(doc: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_files(ROOT / doc, tmp_path)
    module = await run_python_blocks(ROOT / doc, tmp_path)
    expression, documented = DOCUMENTED[doc]
    assert eval(expression, module.__dict__) == documented
    if "record" in module.__dict__:
        assert module.__dict__["record"].status == "succeeded"


async def test_the_guards_loop_passes_the_tools_and_the_policy_judges_the_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17 §2: the loop as first printed called the model with no tools, so the model's
    tool call failed validation; the printed loop passes them and the call goes through policy."""
    from tether.models import ModelOutputError, ScriptedModel, tool_call

    monkeypatch.chdir(tmp_path)
    write_files(ROOT / "docs/guards.md", tmp_path)
    ns = (await run_python_blocks(ROOT / "docs/guards.md", tmp_path)).__dict__
    record = ns["record"]
    steps = [e.name for e in ns["tether"].events(record.id) if e.kind == "step_completed"]
    assert "tool:lookup_order" in steps
    (started,) = [e.data for e in ns["tether"].events(record.id)
                  if e.kind == "step_started" and e.name == "tool:lookup_order"]
    policy = started["meta"]["policy"]
    assert (policy["action"], policy["rule"]) == ("allow", "lookups")  # the printed policy's rule

    _PROBE.update(ns, script=ScriptedModel([tool_call("lookup_order", {"order_id": "A-7"})] * 3))
    failed = await ns["tether"].run(loop_without_tools, "Where is order A-7?")
    assert failed.status == "failed"
    assert "available tools: (none)" in (failed.error or ""), failed.error
    assert ModelOutputError.__name__ in (failed.error or "")


_PROBE: dict[str, Any] = {}


async def loop_without_tools(ctx: Any, goal: str) -> Any:
    """The guards.md loop as first printed: the model is called without `tools=`."""
    governed = _PROBE["Governed"](ctx, _PROBE["guards"])
    from tether.models import Message
    return await governed.model(_PROBE["script"], [Message.user(goal)])
