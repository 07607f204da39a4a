"""The fenced code blocks of README.md and docs/*.md, and how the docs tests treat each one.

A block is run unless the line right above it says otherwise, visibly, in the Markdown source:

* `<!-- not run: REASON -->` — shown to readers of the source, counted and listed by the tests;
* `<!-- file: NAME -->` — the block is a file (a policy, a spec) written under NAME into the
  directory the document's python blocks run in, which then read it;
* `<!-- output -->` — the block is what the python block above it prints; the test compares.

Everything else must be a ```python block (run, in order, in one namespace per document) or a
```console block of `$ tether ...` commands (run against a temporary database). A block that is
none of these fails the tests, so a new example cannot slip in untested.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>.+?)\s*-->")
FILE = re.compile(r"<!--\s*file:\s*(?P<name>[\w./-]+)\s*-->")
OUTPUT = re.compile(r"<!--\s*output\s*-->")
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<code>.*?)^```[ \t]*$", re.S | re.M)

# docs/cli.md is written and tested by its own test (tests/docs/test_cli_docs.py)
EXCLUDED = {"docs/cli.md"}


@dataclass(frozen=True)
class Block:
    doc: str  # path relative to the repository, e.g. "docs/guards.md"
    line: int  # line of the opening fence
    lang: str
    code: str
    not_run: str | None = None  # the reason given in a `<!-- not run: ... -->` marker
    file: str | None = None  # the name given in a `<!-- file: ... -->` marker
    output: bool = False  # `<!-- output -->`: what the python block above prints

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def kind(self) -> str:
        if self.not_run is not None:
            return "not run"
        if self.file is not None:
            return "file"
        if self.output:
            return "output"
        if self.lang == "python":
            return "python"
        if self.lang == "console" and self.commands():
            return "console"
        return "unclassified"

    def commands(self) -> list[str]:
        """The `$ ...` lines of a console block (other lines are their expected output)."""
        return [line[2:] for line in self.code.splitlines() if line.startswith("$ ")]


def documents() -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [p for p in docs if p.relative_to(ROOT).as_posix() not in EXCLUDED]


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    doc = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        not_run = NOT_RUN.search(before)
        file = FILE.search(before)
        found.append(Block(
            doc=doc, line=text.count("\n", 0, match.start()) + 1,
            lang=match.group("lang").strip(), code=match.group("code"),
            not_run=not_run.group("reason") if not_run else None,
            file=file.group("name") if file else None, output=bool(OUTPUT.search(before))))
    return found


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks(path)]
