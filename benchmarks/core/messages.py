"""The message every node appends in the benchmarks, on every side: Tether's agents
(`agents.py`) and the competitors' scripts, which run under their own venvs' python
(`dbos_side.py`, `lg_side.py`). So this module imports nothing of Tether: the same bytes on
every side.
"""

from __future__ import annotations

from typing import Any

_FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit "


def message(node: str, i: int, size: int) -> dict[str, Any]:
    """The message node `node` appends at step `i`, `size` characters of content at least (the
    label alone when larger)."""
    content = f"node {node}, step {i}"
    if size > len(content):
        content = (content + " " + _FILLER * (size // len(_FILLER) + 1))[:size]
    return {"role": "assistant", "content": content}
