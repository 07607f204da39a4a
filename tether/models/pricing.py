"""Token prices per model, used to put a dollar figure on every response.

Prices are USD per million tokens. Names match exactly first, then by the longest registered
prefix, so dated snapshots ("gpt-4o-mini-2024-07-18") find their family's price. Users extend the
table with `DEFAULT_PRICING.register(...)` or pass their own `PricingTable` to `CostModel`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tether.models.messages import Usage


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input_per_mtok + usage.output_tokens * self.output_per_mtok
        ) / 1_000_000


# Public list prices at the time of writing; override for negotiated rates.
_DEFAULTS: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3-mini": (1.10, 4.40),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-haiku-4": (1.00, 5.00),
    # In-process and self-hosted models cost nothing per token.
    "local:": (0.0, 0.0),
    "scripted": (0.0, 0.0),
}


class PricingTable:
    def __init__(self, prices: Mapping[str, ModelPrice | tuple[float, float]] | None = None):
        self._prices: dict[str, ModelPrice] = {}
        for name, price in (prices or {}).items():
            self.register(name, price)

    @classmethod
    def defaults(cls) -> PricingTable:
        return cls(_DEFAULTS)

    def register(
        self,
        name: str,
        price: ModelPrice | tuple[float, float] | None = None,
        *,
        input_per_mtok: float | None = None,
        output_per_mtok: float | None = None,
    ) -> None:
        if price is None:
            if input_per_mtok is None or output_per_mtok is None:
                raise ValueError("give a price or both input_per_mtok and output_per_mtok")
            price = ModelPrice(input_per_mtok, output_per_mtok)
        elif isinstance(price, tuple):
            price = ModelPrice(*price)
        self._prices[name] = price

    def price_for(self, model: str) -> ModelPrice | None:
        if model in self._prices:
            return self._prices[model]
        best = ""
        for name in self._prices:
            if model.startswith(name) and len(name) > len(best):
                best = name
        return self._prices[best] if best else None

    def cost(self, model: str, usage: Usage) -> float | None:
        price = self.price_for(model)
        return None if price is None else price.cost(usage)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.price_for(model) is not None


DEFAULT_PRICING = PricingTable.defaults()
