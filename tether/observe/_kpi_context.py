"""How large a model's context window is, for the context-window pressure KPI.

The journal records the model each call asked (`openai:gpt-4o-mini`, `local:qwen…`, `scripted`)
and its prompt tokens, not the window: providers do not return it and `Model` has no such field
(only `LocalModel.n_ctx` knows one, and it is not journaled). So the window comes from, in order:
the caller's own table (`context_windows=`, `tether stats --context-window NAME=TOKENS`), then the
published windows of the families below, matched like prices in `tether.models.pricing` (exact
name, else the longest registered prefix, with and without the provider prefix). A model found
nowhere has no pressure figure ("n/a"), and the report names it, rather than a guessed one.
"""

from __future__ import annotations

from collections.abc import Mapping

# Published context windows (tokens) at the time of writing.
KNOWN_WINDOWS: dict[str, int] = {
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "o3-mini": 200_000,
    "claude-3-5-haiku": 200_000,
    "claude-3-5-sonnet": 200_000,
    "claude-3-7-sonnet": 200_000,
    "claude-sonnet-4": 200_000,
    "claude-opus-4": 200_000,
    "claude-haiku-4": 200_000,
    # LocalModel's default n_ctx (the demo uses it too); pass your own when you change it
    "local:": 4096,
}


def context_window(model: str, overrides: Mapping[str, int] | None = None) -> int | None:
    """The window of `model` (a journaled model name), or None when nobody knows it."""
    for table in (overrides or {}, KNOWN_WINDOWS):
        for name in (model, _bare(model)):
            found = _lookup(table, name)
            if found is not None:
                return found
    return None


def _bare(model: str) -> str:
    """`openai:gpt-4o` -> `gpt-4o`: the provider prefix Tether's model classes add."""
    provider, sep, rest = model.partition(":")
    return rest if sep and provider in _PROVIDERS else model


def _lookup(table: Mapping[str, int], name: str) -> int | None:
    if name in table:
        return table[name]
    best = max((k for k in table if name.startswith(k)), key=len, default="")
    return table[best] if best else None


#: `gen_ai.provider.name` for the prefix of a journaled model name (custom values where the
#: conventions list none: Tether's in-process llama.cpp model and its scripted test model)
_PROVIDERS: dict[str, str] = {"openai": "openai", "anthropic": "anthropic",
                              "local": "tether.local", "fallback": "tether.fallback"}


def provider_name(model: str) -> str:
    """The `gen_ai.provider.name` of a journaled model name."""
    prefix, sep, _ = model.partition(":")
    if sep and prefix in _PROVIDERS:
        return _PROVIDERS[prefix]
    return "tether.scripted" if model.startswith("scripted") else "tether"
