"""Tether: a durable, sandboxed, governed and observable runtime for LLM agents."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what `_LAZY` resolves to, so type checkers see the real types
    from tether.agents import MaxStepsExceeded, ReActAgent, react
    from tether.guards import GuardConfig, Guards, load_policy
    from tether.models import (
        AnthropicModel,
        FallbackModel,
        LocalModel,
        Message,
        ModelResponse,
        OpenAIChatModel,
        RetryModel,
        ScriptedModel,
    )
    from tether.runtime import (
        ActivityError,
        BaseInterceptor,
        ChildFailed,
        ChildHandle,
        Context,
        Deleted,
        DepthLimitExceeded,
        Effect,
        InDoubt,
        Interceptor,
        InvalidInput,
        NonDeterminismError,
        RayExecutor,
        Resources,
        RunHalted,
        RunNotDeletable,
        RunNotFound,
        SignalTimeout,
        StepRetry,
        Tether,
        TetherError,
        Worker,
        WorkerHealth,
        WorkerQueue,
        grow_memory,
    )
    from tether.runtime.activity import activity
    from tether.sandbox import Sandbox, SandboxUnavailable
    from tether.server.mcp import TetherMCPServer
    from tether.store import RunRecord, open_store
    from tether.tools import ToolArgumentError, ToolRegistry, ToolResult, openapi_tools, tool
    from tether.tools.mcp import MCPServerConfig, MCPTools

__version__ = "0.1.0"

# Everything is imported on first use, so `import tether` (and every CLI call: `tether.cli` is
# a subpackage) does not pay for the runtime, httpx, jsonschema, numpy and cryptography it may
# not need (`tether --help` imports none of them).
_RUNTIME = ("ActivityError", "BaseInterceptor", "ChildFailed", "ChildHandle", "Context",
            "DepthLimitExceeded", "Effect", "InDoubt", "Interceptor", "InvalidInput",
            "NonDeterminismError", "RunHalted", "RunNotDeletable", "RunNotFound",
            "SignalTimeout", "Tether", "Deleted",
            "TetherError", "Worker", "WorkerHealth", "WorkerQueue", "Resources", "StepRetry",
            "grow_memory", "RayExecutor")
_LAZY = {
    **dict.fromkeys(_RUNTIME, "tether.runtime"),
    "activity": "tether.runtime.activity",
    "RunRecord": "tether.store", "open_store": "tether.store",
    "ScriptedModel": "tether.models", "OpenAIChatModel": "tether.models",
    "AnthropicModel": "tether.models", "LocalModel": "tether.models",
    "RetryModel": "tether.models", "FallbackModel": "tether.models",
    "Message": "tether.models", "ModelResponse": "tether.models",
    "tool": "tether.tools", "ToolRegistry": "tether.tools", "ToolResult": "tether.tools",
    "Sandbox": "tether.sandbox", "SandboxUnavailable": "tether.sandbox",
    "ToolArgumentError": "tether.tools", "openapi_tools": "tether.tools",
    "MCPServerConfig": "tether.tools.mcp", "MCPTools": "tether.tools.mcp",
    "TetherMCPServer": "tether.server.mcp",
    "Guards": "tether.guards", "GuardConfig": "tether.guards", "load_policy": "tether.guards",
    "react": "tether.agents", "ReActAgent": "tether.agents", "MaxStepsExceeded": "tether.agents",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tether' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ActivityError",
    "AnthropicModel",
    "BaseInterceptor",
    "ChildFailed",
    "ChildHandle",
    "Context",
    "Deleted",
    "DepthLimitExceeded",
    "Effect",
    "FallbackModel",
    "GuardConfig",
    "Guards",
    "InDoubt",
    "Interceptor",
    "InvalidInput",
    "LocalModel",
    "MCPServerConfig",
    "MCPTools",
    "MaxStepsExceeded",
    "Message",
    "ModelResponse",
    "NonDeterminismError",
    "OpenAIChatModel",
    "RayExecutor",
    "ReActAgent",
    "Resources",
    "RetryModel",
    "RunHalted",
    "RunNotDeletable",
    "RunNotFound",
    "RunRecord",
    "Sandbox",
    "SandboxUnavailable",
    "ScriptedModel",
    "SignalTimeout",
    "StepRetry",
    "Tether",
    "TetherError",
    "TetherMCPServer",
    "ToolArgumentError",
    "ToolRegistry",
    "ToolResult",
    "Worker",
    "WorkerHealth",
    "WorkerQueue",
    "__version__",
    "activity",
    "grow_memory",
    "load_policy",
    "open_store",
    "openapi_tools",
    "react",
    "tool",
]
