"""What validation decided about each model reply, journaled with the reply itself.

A reply the validation refuses is sent back to the model with the errors (`complete_validated`),
and that feedback round is a model call of its own. Without the verdict in the journal, a run
shows four model calls and a trajectory of three steps and nobody can tell why: so each model
step's result records `rejected` (the errors the model was told) or `repaired` (accepted after a
safe repair), read back by `tether.store.vocabulary.model_call`. The accepted reply also carries
the refused ones (`ValidatedResponse`), so a strategy can put them in its trajectory.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tether.models._protocol import ToolChoice
from tether.models.messages import ModelResponse, ToolDefinition
from tether.models.validation import JSONParseError, check_response, parse_json, raw_output


class ValidatedResponse(ModelResponse):
    """The accepted reply, with each reply refused before it: `{"reply", "errors"}` (the
    refused reply as text, and what the model was told was wrong with it)."""

    rejected_replies: list[dict[str, Any]] = Field(default_factory=list)


def verdict(response: ModelResponse, tools: list[ToolDefinition], schema: dict[str, Any] | None,
            choice: ToolChoice | None) -> dict[str, Any]:
    """The fields a model step's journaled result gets: `rejected` (the errors), or
    `repaired: True` when structured output was accepted only after a safe repair."""
    checked, errors = check_response(response, tools=tools, output_schema=schema,
                                     tool_choice=choice)
    if errors:
        return {"rejected": errors}
    if schema is not None and checked.output is not None and response.text:
        try:
            if parse_json(response.text, schema).repaired:
                return {"repaired": True}
        except JSONParseError:  # accepted, so it parsed; nothing to add
            pass
    return {}


def refused_entry(record: dict[str, Any], response: ModelResponse) -> dict[str, Any] | None:
    """A refused reply for `ValidatedResponse.rejected_replies`, from its journaled step."""
    errors = record.get("rejected")
    if not errors:
        return None
    return {"reply": raw_output(response), "errors": [str(e) for e in errors]}


def with_refused(accepted: ModelResponse, refused: list[dict[str, Any]]) -> ModelResponse:
    """The accepted reply, carrying the replies refused before it (unchanged when none were)."""
    if not refused:
        return accepted
    return ValidatedResponse(**dict(accepted), rejected_replies=list(refused))


def rejected_replies(response: ModelResponse) -> list[dict[str, Any]]:
    """The replies refused before `response` was accepted (empty for a plain response)."""
    return list(response.rejected_replies) if isinstance(response, ValidatedResponse) else []
