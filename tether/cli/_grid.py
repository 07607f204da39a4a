"""A plain aligned table for listings that must start fast (`tether runs`).

rich's `Table` measures, pads and wraps every cell through its renderables: about 2-4 ms a row,
so a listing of 50 runs cost more than the rest of the command (benchmarks/bench_cli.py). A
listing needs less: columns as wide as their widest cell, the first columns never cut (ids are
what people copy), the others folded to fit the terminal. Styles are applied after the layout,
so markup never counts toward a width.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

GAP = "  "
MIN_FOLDED = 6


@dataclass(frozen=True)
class Cell:
    """A cell's plain text (what is measured) and the rich style it is shown in."""

    text: str
    style: str = ""


def grid_lines(headers: Sequence[str], rows: Sequence[Sequence[Cell]], width: int,
               keep: int = 1) -> list[str]:
    """Rich markup lines: a bold header, then each row folded onto as many lines as its tallest
    cell needs. The first `keep` columns are never cut, even past `width`. A cell's text is
    shown on its line with control characters as escapes (`_safe`), and measured so: a newline
    in an agent's error must not forge another run's row."""
    from ._safe import safe_text

    rows = [[Cell(safe_text(c.text, one_line=True), c.style) for c in r] for r in rows]
    widths = [max([len(h), *(len(r[i].text) for r in rows)]) for i, h in enumerate(headers)]
    _fit(widths, width - len(GAP) * (len(headers) - 1), keep)
    lines: list[str] = []
    for row in [[Cell(h, "bold") for h in headers], *rows]:
        folded = [[cell.text] if i < keep else _fold(cell.text, widths[i])
                  for i, cell in enumerate(row)]
        for n in range(max(len(f) for f in folded)):
            parts = []
            for cell, lines_of, w in zip(row, folded, widths, strict=True):
                text = lines_of[n] if n < len(lines_of) else ""
                pad = " " * (w - len(text))
                styled = f"[{cell.style}]{_escape(text)}[/]" if cell.style and text else _escape(
                    text)
                parts.append(styled + pad)
            lines.append(GAP.join(parts).rstrip())
    return lines


def _fit(widths: list[int], room: int, keep: int) -> None:
    """Narrow the widest foldable column, one character at a time, until the row fits (or
    every foldable column is at its minimum: then the terminal wraps the line)."""
    while sum(widths) > room:
        foldable = [i for i in range(keep, len(widths)) if widths[i] > MIN_FOLDED]
        if not foldable:
            return
        widest = max(foldable, key=lambda i: widths[i])
        widths[widest] -= 1


def _fold(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def _escape(text: str) -> str:
    return text.replace("[", "\\[")
