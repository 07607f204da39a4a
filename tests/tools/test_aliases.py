"""A tool parameter with a pydantic alias (`Field(alias="userId")`): the schema, the model's
proposal, the policy and the function all agree.

Before: a tool's validated arguments were written by field name (`user_id`) while its schema
and its own validation want the alias (`userId`), so validating them a second time — what every
call through the guards does (the gateway validates, the tool step validates again) — failed
with "userId: Field required": such a tool could not be called under guards at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from tether import Tether
from tether.guards import GuardConfig, Guards, loads_policy
from tether.tools import ToolRegistry

ALIASED = ToolRegistry()


@ALIASED.tool(side_effect="read")
def whois(user_id: Annotated[str, Field(alias="userId")], verbose: bool = False) -> str:
    """Who a user is."""
    return f"user {user_id}" + (" (verbose)" if verbose else "")


GUARDS = Guards(GuardConfig(policy=loads_policy(
    "name: aliases\nrules:\n  - id: lookups\n    tools: [whois]\n    effect: allow\n"
    "    args: {userId: {in: [u1]}}\n")), tools=ALIASED)


async def look_up(ctx: Any, who: str) -> dict[str, Any]:
    result = await GUARDS.tool(ctx, "whois", {"userId": who}, ALIASED)
    return result.model_dump(mode="json")


def test_validated_arguments_validate_again_by_their_alias() -> None:
    tool = ALIASED.get("whois")
    assert list(tool.parameters["properties"]) == ["userId", "verbose"]
    normal = tool.validate({"userId": "u1"})
    assert normal == {"userId": "u1", "verbose": False}
    assert tool.validate(dict(normal)) == normal


async def test_an_aliased_tool_runs_under_the_guards_and_is_judged_by_its_alias(
        tmp_path: Path) -> None:
    t = Tether(tmp_path / "t.db", interceptors=GUARDS.interceptors())
    try:
        allowed = await t.run(look_up, "u1")
        refused = await t.run(look_up, "u2")  # the policy's condition reads `userId`
    finally:
        t.close()
    assert allowed.status == "succeeded" and allowed.result["ok"], allowed.result
    assert allowed.result["output"] == "user u1"
    assert refused.result["ok"] is False
    assert refused.result["error"]["type"] == "policy_denied"
