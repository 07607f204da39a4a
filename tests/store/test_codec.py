"""The journal's JSON codec: what it writes for values JSON cannot hold as they are."""

from __future__ import annotations

import dataclasses

import pytest

from tether.store import dumps, loads


@dataclasses.dataclass
class Named:
    name: str


def test_lone_surrogates_become_valid_text_everywhere_in_a_value() -> None:
    value = {"k\udcff": ["caf\udcc3\udca9", ("\ud800",)], 3: Named("x\udc80"), "ok": "héllo"}
    assert loads(dumps(value)) == {"k\\xff": ["café", ["\\xed\\xa0\\x80"]],
                                   "3": {"name": "x\\x80"}, "ok": "héllo"}


def test_values_without_surrogates_are_written_as_before() -> None:
    value = {"a": [1, 2.5, None, True], "b": "héllo", 7: "seven"}
    assert dumps(value) == b'{"a":[1,2.5,null,true],"b":"h\xc3\xa9llo","7":"seven"}'


def test_other_encoding_errors_still_raise() -> None:
    with pytest.raises(TypeError, match="64-bit"):
        dumps({"n": 2**70, "s": "x\udcff"})
    with pytest.raises(TypeError, match=r"not JSON.serializable"):
        dumps(["x\udcff", object()])


def test_a_value_nested_too_deep_is_a_clear_error() -> None:
    deep: list[object] = []
    inner = deep
    for _ in range(253):  # 254 lists, one in the other
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    assert loads(dumps(deep)) == deep  # the deepest the journal writes
    inner.append([])
    with pytest.raises(TypeError, match=r"nested deeper than 254 levels.*put_artifact"):
        dumps(deep)


def test_a_value_over_the_journal_limit_is_a_clear_error(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from tether.store import _codec

    monkeypatch.setattr(_codec, "MAX_VALUE_BYTES", 1000)
    assert len(dumps("x" * 990)) == 992  # up to the limit
    with pytest.raises(TypeError, match=r"it is 1,203 bytes as JSON, over the journal's "
                       r"1,000 bytes per value; store it as an artifact"):
        dumps({"report": "x" * 1190})


def test_errors_of_the_default_hook_keep_their_explanation() -> None:
    with pytest.raises(TypeError, match=r"bytes are not JSON; store them with ctx\.store"):
        dumps({"blob": b"raw"})
    assert loads(dumps({1, "a", 2.5})) == ["a", 1, 2.5]  # members that do not compare
