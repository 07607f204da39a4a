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
    return split_model(model)[1]


def _lookup(table: Mapping[str, int], name: str) -> int | None:
    if name in table:
        return table[name]
    best = max((k for k in table if name.startswith(k)), key=len, default="")
    return table[best] if best else None


def split_model(model: str) -> tuple[str, str]:
    """(`gen_ai.provider.name`, model) from a journaled model name: `openai:gpt-4o` ->
    (`openai`, `gpt-4o`); a name without a provider prefix (the scripted test model) ->
    (`tether`, name). The same rule as the spans' (`tether.observe.spans`), so a metric and the
    span of one call name the same provider and model."""
    provider, sep, name = model.partition(":")
    return (provider, name) if sep else ("tether", model)
