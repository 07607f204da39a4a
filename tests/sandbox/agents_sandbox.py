"""Agents used by the journaled-exec tests (importable by a separate worker process)."""

from __future__ import annotations

import os
import time
from typing import Any

WRITE_CSV = """
import pandas as pd
pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "temp": [4, 19, 31]}).to_csv(
    "temps.csv", index=False)
print("wrote", len(open("temps.csv").read()), "bytes")
"""
APPEND_ROW = """
import csv
with open("temps.csv", "a", newline="") as fh:
    csv.writer(fh).writerow(["Nome", -12])
print(open("temps.csv").read().count("\\n"), "lines")
"""
SUMMARISE = """
import pandas as pd
df = pd.read_csv("temps.csv")
print(df.temp.sum(), len(df), ",".join(df.city))
"""


async def three_backends(ctx: Any, _input: Any) -> dict[str, Any]:
    """Step 1 (bwrap) writes a CSV, step 2 (gVisor) appends, step 3 (bwrap) reads it."""
    r1 = await ctx.exec(WRITE_CSV, backend="bwrap")
    r2 = await ctx.exec(APPEND_ROW, backend="gvisor")
    r3 = await ctx.exec(SUMMARISE, backend="bwrap")
    return {"outs": [r1["stdout"], r2["stdout"], r3["stdout"]], "manifest": r3["manifest"]}


def hang_if_asked(_x: Any) -> str:
    # the first worker process is killed while it sits here
    if os.environ.get("TETHER_TEST_HANG") == "1":
        time.sleep(120)
    return "continued"


async def crashes_between_execs(ctx: Any, _input: Any) -> dict[str, Any]:
    r1 = await ctx.exec(WRITE_CSV, backend="bwrap")
    mid = await ctx.step("hang", hang_if_asked, None, idempotent=True)
    r2 = await ctx.exec(APPEND_ROW, backend="gvisor")
    r3 = await ctx.exec(SUMMARISE, backend="bwrap")
    return {"outs": [r1["stdout"], mid, r2["stdout"], r3["stdout"]]}


SEEN_MANIFESTS: list[dict[str, str]] = []


async def random_file(ctx: Any, _input: Any) -> str:
    from tether.sandbox.effect import MANIFEST_KEY, read_workspace_file

    r = await ctx.exec("open('n.txt', 'w').write(str(__import__('random').random()))")
    SEEN_MANIFESTS.append(dict(ctx.scratch[MANIFEST_KEY]))
    assert read_workspace_file(ctx, "n.txt")
    return str(r["manifest"]["n.txt"])


async def command_then_bad_backend(ctx: Any, _input: Any) -> Any:
    from tether.sandbox.effect import exec_effect

    r = await exec_effect(ctx, ["wc", "-l", "in.txt"], files={"in.txt": "a\nb\n"})
    try:
        await ctx.exec("print(1)", backend="no-such-backend")
    except Exception as e:
        return [r["stdout"], type(e).__name__, str(e)]
    return [r["stdout"], None, None]


TOOL_CALLS: list[str] = []


async def uses_code_tools(ctx: Any, _input: Any) -> Any:
    """python tool writes a CSV; the run suspends (new Context on resume); bash reads it."""
    from tether.sandbox.tools import code_tools
    from tether.tools import ToolRegistry

    registry = ToolRegistry(code_tools(ctx))
    first = await ctx.tool(registry, "python", {"code": WRITE_CSV})
    TOOL_CALLS.append("python")
    await ctx.sleep(1.2)  # longer than an inline sleep: the run suspends and is replayed
    second = await ctx.tool(registry, "bash", {"script": "wc -l < temps.csv; ls"})
    third = await ctx.exec(SUMMARISE)
    return [first.ok, first.output["stdout"], second.output["stdout"],
            third["stdout"], second.output["workspace_files"]]


async def input_file_then_read(ctx: Any, _input: Any) -> Any:
    """A file handed to one exec and left untouched must be there for the next exec."""
    await ctx.exec(["true"], files={"in.txt": b"hello"})
    r = await ctx.exec(["cat", "in.txt"])
    return r["stdout"]
