"""A plain aligned table for listings that must start fast (`tether runs`).

rich's `Table` measures, pads and wraps every cell through its renderables: about 2-4 ms a row,
so a listing of 50 runs cost more than the rest of the command (benchmarks/bench_cli.py). A
listing needs less: columns as wide as their widest cell, the first columns never cut (ids are
what people copy), the others wrapped at spaces to fit the terminal. Styles are applied after
the layout, so markup never counts toward a width.

A word is never cut in two to make a column fit (`billing.py` shown as `b` / `illing.py` reads
as two names): when the columns cannot all be as wide as their longest word, the listing turns
into one block per row, the short columns on its first line and each long column (an agent
reference, an error) on an indented line of its own, as wide as the terminal.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

GAP = "  "
MIN_FOLDED = 6
#: the narrowest a column of text is wrapped to in the table layout: an error in a column of 13
#: characters is a word a line (then the stacked layout reads better)
READABLE = 20
#: how a long column's line is set off from the row it belongs to, in the stacked layout
INDENT = "    "
#: where a word longer than a whole line may be broken: after a path's, a module's or a
#: reference's separator (`/tmp/w/`, `billing.`, `py:`), before a cut at an arbitrary letter
_SOFT_BREAK = re.compile(r"[^/.:,=]*[/.:,=]+|[^/.:,=]+")


@dataclass(frozen=True)
class Cell:
    """A cell's plain text (what is measured) and the rich style it is shown in."""

    text: str
    style: str = ""


def grid_lines(headers: Sequence[str], rows: Sequence[Sequence[Cell]], width: int,
               keep: int = 1, stack: Sequence[int] | None = None) -> list[str]:
    """Rich markup lines: a bold header, then each row folded at spaces onto as many lines as
    its tallest cell needs. The first `keep` columns are never cut, even past `width`. When a
    word would have to be cut, one block per row instead: the columns not in `stack` (default:
    every column after the kept ones) on a first line, each column of `stack` on an indented
    line below it. A cell's text is shown with control characters as escapes (`_safe`), and
    measured so: a newline in an agent's error must not forge another run's row."""
    from ._safe import safe_text

    shown = [[Cell(safe_text(c.text, one_line=True), c.style) for c in r] for r in rows]
    head = [Cell(h, "bold") for h in headers]
    widths = _widths([head, *shown], width, keep, cut=False)
    if widths is not None:
        return [line for row in [head, *shown] for line in _row_lines(row, widths, keep)]
    stacked = [i for i in (range(keep, len(headers)) if stack is None else stack) if i >= keep]
    first = [i for i in range(len(headers)) if i not in stacked]
    table = [[row[i] for i in first] for row in [head, *shown]]
    widths = (_widths(table, width, keep, cut=False) or _widths(table, width, keep, cut=True)
              or [])
    lines: list[str] = []
    for whole, short in zip([head, *shown], table, strict=True):
        lines += _row_lines(short, widths, keep)
        for i in stacked:  # an empty cell (a run with no error) takes no line
            lines += [INDENT + _styled(whole[i], text)
                      for text in _wrap(whole[i].text, width - len(INDENT)) if text]
    return lines


def _widths(rows: list[list[Cell]], width: int, keep: int, *, cut: bool) -> list[int] | None:
    """Each column as wide as its widest cell, the widest foldable one narrowed a character at
    a time until the row fits `width`, but never below its longest word nor `READABLE` (`cut`:
    down to `MIN_FOLDED`, words cut). None if the row cannot fit so."""
    widths = [max(len(r[i].text) for r in rows) for i in range(len(rows[0]))]
    floors = [w if i < keep else min(w, MIN_FOLDED) if cut else
              max([min(w, READABLE), *(len(word) for r in rows for word in r[i].text.split())])
              for i, w in enumerate(widths)]
    room = width - len(GAP) * (len(widths) - 1)
    while sum(widths) > room:
        foldable = [i for i in range(keep, len(widths)) if widths[i] > floors[i]]
        if not foldable:
            return widths if cut else None  # cut: the terminal wraps what still overflows
        widest = max(foldable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _row_lines(row: list[Cell], widths: list[int], keep: int) -> list[str]:
    folded = [[cell.text] if i < keep else _fold(cell.text, widths[i])
              for i, cell in enumerate(row)]
    lines = []
    for n in range(max(len(f) for f in folded)):
        parts = []
        for cell, lines_of, w in zip(row, folded, widths, strict=True):
            text = lines_of[n] if n < len(lines_of) else ""
            parts.append(_styled(cell, text) + " " * (w - len(text)))
        lines.append(GAP.join(parts).rstrip())
    return lines


def _fold(text: str, width: int) -> list[str]:
    """`text` wrapped at spaces; a word longer than `width` (only when `_widths` was told to
    `cut`) is cut."""
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def _wrap(text: str, room: int) -> list[str]:
    """`text` on lines of at most `room` characters, broken at spaces; a word longer than a
    line after its separators (`_SOFT_BREAK`), and cut only where a piece is longer still."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        pieces = [word] if len(word) <= room else [
            part[k:k + room] for part in _SOFT_BREAK.findall(word)
            for k in range(0, len(part), max(room, 1))]
        for n, piece in enumerate(pieces):
            joined = line + ("" if n else " ") + piece if line else piece
            if len(joined) <= room:
                line = joined
            else:
                lines.append(line)
                line = piece
    return [*lines, line] if line or not lines else lines


def _styled(cell: Cell, text: str) -> str:
    escaped = text.replace("[", "\\[")
    return f"[{cell.style}]{escaped}[/]" if cell.style and text else escaped
