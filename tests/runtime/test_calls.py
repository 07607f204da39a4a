"""`accepts_idempotency_key` decides whether a step's function gets the run's idempotency key,
and so whether an in-doubt step may be re-run: it must agree with `inspect.signature`, which it
avoids on every step for cost (every tool call's function is a `functools.partial`)."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from tether.runtime.calls import accepts_idempotency_key


def _by_signature(fn: Any) -> bool:
    try:
        return "idempotency_key" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def takes_key(tool: object, arguments: object, idempotency_key: str | None = None) -> None: ...
def no_key(tool: object, arguments: object) -> None: ...
def key_first(idempotency_key: str, other: int) -> None: ...
def key_only(*, idempotency_key: str | None = None) -> None: ...


class Holder:
    def method(self, x: int, idempotency_key: str | None = None) -> None: ...
    def key_method(self, idempotency_key: str) -> None: ...
    async def __call__(self, idempotency_key: str | None = None) -> None: ...


HOLDER = Holder()
CASES = [
    takes_key, no_key, key_first, key_only,
    functools.partial(takes_key, 1), functools.partial(takes_key, 1, 2),
    functools.partial(takes_key, 1, 2, "bound"),  # bound positionally: no longer a parameter
    functools.partial(key_first, "bound"),
    functools.partial(functools.partial(takes_key, 1), 2),
    functools.partial(takes_key, idempotency_key="default"),
    functools.partial(no_key, 1),
    HOLDER.method, HOLDER.key_method, functools.partial(HOLDER.method, 1),
    functools.partial(HOLDER.key_method, "bound"), HOLDER, len,
]


@pytest.mark.parametrize("fn", CASES, ids=repr)
def test_agrees_with_the_signature(fn: Any) -> None:
    assert accepts_idempotency_key(fn) is _by_signature(fn)


def test_the_cases_cover_both_answers() -> None:
    answers = {_by_signature(fn) for fn in CASES}
    assert answers == {True, False}
