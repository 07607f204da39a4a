"""Strings JSON cannot hold (lone surrogates: a file name that is not UTF-8, half of an emoji
pair from a model) are journaled as valid text, so the step that produced them succeeds, and
live and replayed values agree. Before, the step failed after its tool had run (and a model
asked to try again would repeat the tool's side effect)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tether import Tether, ToolRegistry, tool
from tether.models import ScriptedModel
from tether.store import dumps, loads

CALLS: list[str] = []
TOOLS = ToolRegistry()


@TOOLS.register
@tool(side_effect="write")
def archive_dir(path: str) -> list[str]:
    """List a directory's files (and, as far as the journal knows, move them away)."""
    CALLS.append(path)
    return sorted(os.listdir(path))


async def lists_and_echoes(ctx: Any, inp: dict[str, Any]) -> dict[str, Any]:
    listed = await ctx.tool(TOOLS, "archive_dir", {"path": inp["path"]})
    echoed = await ctx.step("echo", lambda: {"name\udcff": ["x\ud800y", ("caf\udcc3\udca9",)]})
    reply = await ctx.model(ScriptedModel(["half an emoji: \ud83d"]), [
        {"role": "user", "content": "hi"}])
    return {"listed": listed, "echoed": echoed, "reply": reply.text}


def _dir_with_a_non_utf8_name(tmp_path: Path) -> str:
    d = tmp_path / "inbox"
    d.mkdir()
    with open(os.path.join(os.fsencode(d), b"caf\xe9.txt"), "wb"):
        pass
    (d / "plain.txt").write_text("")
    return str(d)


async def test_lone_surrogates_are_journaled_as_valid_text(tether: Tether,
                                                          tmp_path: Path) -> None:
    CALLS.clear()
    rec = await tether.run(lists_and_echoes, {"path": _dir_with_a_non_utf8_name(tmp_path)})
    assert rec.status == "succeeded", rec.error
    assert len(CALLS) == 1
    result = rec.result
    assert result["listed"]["ok"] is True
    assert result["listed"]["output"] == ["caf\\xe9.txt", "plain.txt"]  # the byte, readable
    # a surrogate that stood for bytes that were UTF-8 reads as the text they were
    assert result["echoed"] == {"name\\xff": ["x\\xed\\xa0\\x80y", ["café"]]}
    assert result["reply"] == "half an emoji: \\xed\\xa0\\xbd"
    replayed = await tether.replay(rec.id, lists_and_echoes)
    assert loads(dumps(replayed)) == result  # live == replayed
    assert len(CALLS) == 1
