"""The cost of one call from its Responses `usage`, with the deployment's prices (prices.py).

OpenAI's usage counts every input token in `input_tokens` (cached reads and cache writes included) and
every output token in `output_tokens` (reasoning included), so each detail is priced at its own rate
only when the model has a distinct one, and the rest at the plain rate: never counted twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..calls import Tokens, tokens_of
from .prices import TokenPrices, token_prices

if TYPE_CHECKING:
    from ..deployments import Deployment

__all__ = ["cost_of", "price_tokens", "price_usage"]


def cost_of(deployment: Deployment, usage: dict[str, Any] | Tokens, service_tier: str | None = None) -> float | None:
    """USD for `usage` (a Responses usage, or a call's `tokens`) on `deployment`; None when no price is
    known for it."""
    prices = token_prices(deployment, service_tier)
    if prices is None:
        return None
    return price_tokens(prices, usage if isinstance(usage, Tokens) else tokens_of(usage))


def price_usage(prices: TokenPrices, usage: dict[str, Any]) -> float:
    return price_tokens(prices, tokens_of(usage))


def price_tokens(prices: TokenPrices, tokens: Tokens) -> float:
    input_tokens, output_tokens, _, cached, written, reasoning = tokens
    p = prices.for_input(input_tokens) if prices.tiers else prices
    total = p.request
    plain_input = input_tokens
    if cached and p.cached_input is not None:
        cached = min(cached, plain_input)  # an upstream's odd report must not make a negative cost
        total += cached * p.cached_input
        plain_input -= cached
    if written and p.cache_write is not None:
        written = min(written, plain_input)
        total += written * p.cache_write
        plain_input -= written
    total += plain_input * p.input
    if reasoning and p.reasoning is not None:
        reasoning = min(reasoning, output_tokens)
        total += reasoning * p.reasoning + (output_tokens - reasoning) * p.output
    else:
        total += output_tokens * p.output
    return total
