"""The plain table of `tether runs`: ids whole, other columns folded to the width, markup in a
cell shown as written (a reason may contain brackets)."""

from __future__ import annotations

import io

from rich.console import Console

from tether.cli._grid import Cell, grid_lines

HEADERS = ("run", "agent", "reason / error")
ROWS = [[Cell("r0123456789abcdef"), Cell("billing.agents:refund_customer_order"),
         Cell("waiting for signal 'approved' [from the finance team]", "yellow")],
        [Cell("r0123456789abcdef.child_1"), Cell("a:b"), Cell("")]]


def shown(lines: list[str], width: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)
    return out.getvalue().splitlines()


def test_fits_the_width_by_folding_every_column_but_the_ids() -> None:
    for width in (120, 80, 60, 50):
        lines = shown(grid_lines(HEADERS, ROWS, width), width)
        assert all(len(line) <= width for line in lines), (width, lines)
        text = "\n".join(lines)
        assert "r0123456789abcdef" in text and "r0123456789abcdef.child_1" in text
        # folded at spaces only: every word whole on a line (the reason may take two)
        assert all(word in text.split() for word in (
            "billing.agents:refund_customer_order", "'approved'", "[from", "finance", "team]"))


def test_one_line_per_row_when_it_fits() -> None:
    lines = shown(grid_lines(HEADERS, ROWS, 200), 200)
    assert len(lines) == 3 and lines[0].split() == ["run", "agent", "reason", "/", "error"]
    assert lines[1].startswith("r0123456789abcdef  ") and lines[1].endswith(
        "waiting for signal 'approved' [from the finance team]")


def test_ids_are_never_cut_even_when_nothing_else_fits() -> None:
    lines = shown(grid_lines(HEADERS, ROWS, 20), 20)
    assert any("r0123456789abcdef.child_1" in line for line in lines)


def test_a_bracket_in_a_cell_is_text_not_markup() -> None:
    rows = [[Cell("r1"), Cell("[bold]x[/bold]"), Cell("[red]not red[/]", "green")]]
    lines = shown(grid_lines(HEADERS, rows, 200), 200)
    assert "[bold]x[/bold]" in lines[1] and "[red]not red[/]" in lines[1]
