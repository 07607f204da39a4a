"""Refusing, at the API's edge, JSON values the journal would not keep as sent.

Python's JSON parser accepts `NaN`, `Infinity`, `1e999` (an infinite float) and `"\\ud800"` (a
lone surrogate, which UTF-8 cannot encode); the journal's encoder then writes the floats as
null and the surrogate as the escape of its bytes. A request was answered 201 while the run it
made held another value than the one sent — a NaN budget limit even became no limit at all. An
integer beyond 64 bits the encoder refuses, but only after the route has started its work, and
the error named no place in the body. So the bodies' free-form values (a run's input, a
signal's payload, a resolved step's result) are walked here, before anything is done, and the
first such value is named by its path: `body.input[2].amount`.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationInfo

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what the journal's encoder (orjson) writes


def _problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return (f"is {shown}, which is not a JSON number (the journal would store null); "
                "send a finite number, or a string")
    if isinstance(value, int) and not isinstance(value, bool) and not (
            _INT_MIN <= value <= _INT_MAX):
        return (f"is an integer of {len(str(abs(value)))} digits, outside the 64-bit range "
                "the journal stores; send it as a string")
    if isinstance(value, str) and _has_surrogate(value):
        return ("holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without its pair), "
                "which is no character; send valid Unicode")
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def first_unstorable(value: Any, path: str) -> str | None:
    """A sentence naming the first value under `path` the journal would not keep as sent, or
    None. Iterative: a value nested as deep as the JSON parser allows cannot exhaust the
    stack."""
    todo: list[tuple[Any, str]] = [(value, path)]
    while todo:
        item, where = todo.pop()
        problem = _problem(item)
        if problem is not None:
            return f"{where} {problem}"
        if isinstance(item, dict):
            for key, sub in reversed(list(item.items())):
                if isinstance(key, str) and _has_surrogate(key):
                    return f"a key in {where} {_problem(key)}"
                todo.append((sub, f"{where}.{key}"))
        elif isinstance(item, (list, tuple)):
            todo.extend((sub, f"{where}[{i}]") for i, sub in reversed(list(enumerate(item))))
    return None


def storable(value: Any, info: ValidationInfo) -> Any:
    """A pydantic after-validator for a free-form JSON field of a request body."""
    problem = first_unstorable(value, f"body.{info.field_name}")
    if problem is not None:
        raise ValueError(problem)
    return value
