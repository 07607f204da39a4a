"""Tether's model layer: one protocol, one module per provider, wrappers for the rest.

    from tether.models import OpenAIChatModel, RetryModel, Message
    model = RetryModel(OpenAIChatModel("gpt-4o-mini"))
    response = await model.complete([Message.user("hi")])

Providers with optional dependencies are imported lazily: `AnthropicModel` needs
`tether[anthropic]`, `LocalModel` needs `tether[local]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.models._cpu import CpuCheck, check_cpu, local_model_report
from tether.models._protocol import Model, ToolChoice
from tether.models.errors import (
    ModelClientError,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelOutputError,
    ModelRateLimitError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
    ModelUnavailableError,
    WeightsError,
    WeightsHashMismatchError,
)
from tether.models.messages import (
    Message,
    ModelAttempt,
    ModelResponse,
    StreamEvent,
    ToolCall,
    ToolDefinition,
    Usage,
    request_hash,
)
from tether.models.openai import OpenAIChatModel
from tether.models.pricing import DEFAULT_PRICING, ModelPrice, PricingTable
from tether.models.scripted import ScriptedCall, ScriptedModel, tool_call
from tether.models.validation import (
    ValidatingModel,
    check_response,
    complete_validated,
    parse_json,
    schema_errors,
)
from tether.models.weights import (
    DEFAULT_WEIGHTS,
    QWEN25_CODER_0_5B,
    QWEN25_CODER_1_5B,
    SMALL_WEIGHTS,
    WeightsSpec,
    resolve_weights,
)
from tether.models.wrappers import (
    AllModelsFailedError,
    BudgetExceededError,
    CostModel,
    FallbackModel,
    RetryModel,
    UsageTracker,
)

if TYPE_CHECKING:
    from tether.models.anthropic import AnthropicModel
    from tether.models.local import LocalModel


def __getattr__(name: str) -> Any:
    if name == "AnthropicModel":
        from tether.models.anthropic import AnthropicModel

        return AnthropicModel
    if name == "LocalModel":
        from tether.models.local import LocalModel

        return LocalModel
    raise AttributeError(f"module 'tether.models' has no attribute {name!r}")


__all__ = [
    "DEFAULT_PRICING",
    "DEFAULT_WEIGHTS",
    "QWEN25_CODER_0_5B",
    "QWEN25_CODER_1_5B",
    "SMALL_WEIGHTS",
    "AllModelsFailedError",
    "AnthropicModel",
    "BudgetExceededError",
    "CostModel",
    "CpuCheck",
    "FallbackModel",
    "LocalModel",
    "Message",
    "Model",
    "ModelAttempt",
    "ModelClientError",
    "ModelConnectionError",
    "ModelError",
    "ModelHTTPError",
    "ModelOutputError",
    "ModelPrice",
    "ModelRateLimitError",
    "ModelResponse",
    "ModelResponseError",
    "ModelServerError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "OpenAIChatModel",
    "PricingTable",
    "RetryModel",
    "ScriptedCall",
    "ScriptedModel",
    "StreamEvent",
    "ToolCall",
    "ToolChoice",
    "ToolDefinition",
    "Usage",
    "UsageTracker",
    "ValidatingModel",
    "WeightsError",
    "WeightsHashMismatchError",
    "WeightsSpec",
    "check_cpu",
    "check_response",
    "complete_validated",
    "local_model_report",
    "parse_json",
    "request_hash",
    "resolve_weights",
    "schema_errors",
    "tool_call",
]
