"""The demo's tools: figures from a bundled CSV file, and a safe calculator."""

from __future__ import annotations

import ast
import csv
import math
import operator
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from tether.tools import ToolRegistry, tool

DATA_FILE = Path(__file__).parent / "data" / "countries.csv"


@cache
def _countries() -> dict[str, dict[str, Any]]:
    with DATA_FILE.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {
        row["country"].lower(): {
            "country": row["country"],
            "capital": row["capital"],
            "population": int(row["population"]),
            "area_km2": int(row["area_km2"]),
            "gdp_usd_billion": int(row["gdp_usd_billion"]),
        }
        for row in rows
    }


@tool(version="1", side_effect="read", timeout=5)
def lookup_country(country: Annotated[str, Field(max_length=60)]) -> dict[str, Any]:
    """Look up a country's capital, population, area (km2) and GDP (billion USD).

    Args:
        country: The country's English name, e.g. "Norway".
    """
    found = _countries().get(country.strip().lower())
    if found is None:
        known = ", ".join(sorted(c["country"] for c in _countries().values()))
        raise LookupError(f"no data for {country!r}; the data file covers: {known}")
    return found


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS = {"round": round, "abs": abs, "min": min, "max": max, "sqrt": math.sqrt}


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError("exponent too large (limit 100)")
        op: Any = _BINARY[type(node.op)]
        return op(left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        unary: Any = _UNARY[type(node.op)]
        return unary(_eval(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and not node.keywords
    ):
        fn: Any = _FUNCS[node.func.id]
        return fn(*(_eval(a) for a in node.args))
    raise ValueError(
        f"unsupported expression element {ast.dump(node)[:60]}; use numbers, + - * / // % ** "
        "and parentheses, round(), abs(), min(), max(), sqrt()"
    )


@tool(version="1", side_effect="read", timeout=5)
def calculate(expression: Annotated[str, Field(max_length=200)]) -> float:
    """Evaluate an arithmetic expression, e.g. "124500000 / 377975".

    Args:
        expression: Numbers with + - * / // % ** and parentheses; round(), abs(), min(), max(),
            sqrt() are available. No variables: write the numbers themselves.
    """
    # thousands separators ("124,500,000") are common in model output; function commas stay
    text = re.sub(r"(?<=\d)[,_](?=\d{3}(?!\d))", "", expression).strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not an arithmetic expression: {expression!r} ({e.msg})") from None
    try:
        value = _eval(tree)
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    return round(float(value), 4)


def demo_tools() -> ToolRegistry:
    return ToolRegistry([lookup_country, calculate])
