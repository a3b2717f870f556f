"""What a deployment's tokens cost: USD per token, resolved once per deployment and kept as floats.

Sources, most specific first:
  1. the deployment's own pricing, LiteLLM's names, in `model_info` or `litellm_params`
     (`input_cost_per_token`, `output_cost_per_token`, `cache_read_input_token_cost`,
     `cache_creation_input_token_cost`, `output_cost_per_reasoning_token`, `input_cost_per_request`,
     and the `…_above_<N>k_tokens` tiers); each given field replaces the table's (see `_overlay`);
  2. the `genai-prices` table bundled with the package (never auto-updated from the network here),
     looked up by the provider and the upstream model (or `model_info.base_model`, as LiteLLM does
     for Azure deployment names);
  3. models we run ourselves (mock, ollama, vLLM, LM Studio) are free; anything else is unknown (None).

Only what a Responses `usage` reports is priced: input, cached input (cache reads), cache writes,
output, reasoning output, and a flat per-request fee. Audio/image token prices and per-tool fees
(web search) are not, since the usage object does not count them.

A table entry's prices can change with the date (a new price from day X) or the time of day
(DeepSeek's off-peak hours): each cached entry remembers when it next may change and is re-resolved then.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..deployments import Deployment

log = logging.getLogger("respgate.spend")

__all__ = ["TokenPrices", "token_prices"]


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """USD per token (None: the model has no distinct price for that kind, so it costs as its parent:
    cached input as input, reasoning as output). `tiers`: the prices that apply instead once a call's
    input tokens exceed a threshold (ascending), as Anthropic's and Gemini's long-context prices do."""

    input: float
    output: float
    cached_input: float | None
    reasoning: float | None
    cache_write: float | None = None
    request: float = 0.0  # per call
    tiers: tuple[tuple[int, TokenPrices], ...] = ()
    source: str = ""  # "config" | "genai-prices" | "free"

    def for_input(self, input_tokens: int) -> TokenPrices:
        """The prices that apply to a call with `input_tokens` input tokens (its tier, if any)."""
        for threshold, tier in reversed(self.tiers):
            if input_tokens > threshold:
                return tier
        return self


FREE = TokenPrices(0.0, 0.0, None, None, source="free")

# respgate provider (litellm_params.model prefix) -> genai-prices provider id
_TABLE_PROVIDER: dict[str, str] = {
    "openai": "openai", "azure": "azure", "azure_ai": "azure",
    "anthropic": "anthropic",
    "gemini": "google", "vertex_ai": "google",
    "bedrock": "aws", "bedrock_converse": "aws",
    "groq": "groq", "deepseek": "deepseek", "mistral": "mistral", "together_ai": "together",
    "openrouter": "openrouter", "fireworks_ai": "fireworks", "xai": "x-ai", "perplexity": "perplexity",
    "cerebras": "cerebras",
}
# Servers the operator runs: no per-token bill.
_FREE_PROVIDERS = frozenset({"mock", "ollama", "ollama_chat", "lm_studio", "vllm", "hosted_vllm"})

# our field -> (LiteLLM's per-token name, genai-prices price key, the key's unit size)
_FIELDS: dict[str, tuple[str, str, int]] = {
    "input": ("input_cost_per_token", "input_mtok", 1_000_000),
    "output": ("output_cost_per_token", "output_mtok", 1_000_000),
    "cached_input": ("cache_read_input_token_cost", "cache_read_mtok", 1_000_000),
    "reasoning": ("output_cost_per_reasoning_token", "output_reasoning_mtok", 1_000_000),
    "cache_write": ("cache_creation_input_token_cost", "cache_write_mtok", 1_000_000),
    "request": ("input_cost_per_request", "requests_kcount", 1_000),
}
_TIER_KEY = re.compile(r"^(?P<name>[a-z_]+?)_above_(?P<k>\d+)k_tokens$")
_SERVICE_TIERS = frozenset({"auto", "default", "flex", "priority", "scale", "fast"})


@dataclass(slots=True)
class _Field:
    base: float | None = None
    tiers: dict[int, float] = field(default_factory=dict)


_Fields = dict[str, _Field]

# id(deployment) -> (deployment, service tier, prices, re-resolve after (time.time())); the entry holds
# the deployment so its id cannot be reused by another object while cached.
_cache: dict[tuple[int, str | None], tuple[Deployment, TokenPrices | None, float]] = {}
_CACHE_LIMIT = 10_000


def token_prices(deployment: Deployment, service_tier: str | None = None) -> TokenPrices | None:
    """The deployment's prices (for the Response's `service_tier` when the table has variants), or None
    when no price is known. Fast after the first call for a deployment."""
    tier = service_tier if service_tier in _SERVICE_TIERS else None
    key = (id(deployment), tier)
    hit = _cache.get(key)
    if hit is not None and hit[0] is deployment and time.time() < hit[2]:
        return hit[1]
    prices, valid_until = _resolve(deployment, tier)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[key] = (deployment, prices, valid_until)
    return prices


def _resolve(d: Deployment, service_tier: str | None) -> tuple[TokenPrices | None, float]:
    configured = _configured_fields(d)
    fields: _Fields | None
    valid_until = math.inf
    if d.provider in _FREE_PROVIDERS:
        fields, source = {}, "free"
    else:
        fields, valid_until = _table_fields(d, service_tier)
        source = "genai-prices"
    if configured:
        fields = _overlay(fields or {}, configured)
        source = "config"
    if fields is None:
        return None, valid_until
    if source != "free" and fields.get("input") is None and fields.get("output") is None:
        if source == "config":
            log.warning("deployment %s: model_info gives no input/output price; those tokens cost 0", d.id)
        else:
            return None, valid_until
    return _compose(fields, source), valid_until


def _configured_fields(d: Deployment) -> _Fields:
    """LiteLLM's per-token names from model_info, then litellm_params (the more specific) over them."""
    out: _Fields = {}
    by_name = {names[0]: ours for ours, names in _FIELDS.items()}
    for source in (d.model_info, d.extra):
        for key, value in source.items():
            number = _number(value)
            if number is None:
                continue
            if key in by_name:
                out.setdefault(by_name[key], _Field()).base = number
            elif (m := _TIER_KEY.match(key)) and m["name"] in by_name:
                out.setdefault(by_name[m["name"]], _Field()).tiers[int(m["k"]) * 1000] = number
    return out


def _overlay(table: _Fields, configured: _Fields) -> _Fields:
    """A configured price replaces the table's for that field, tiers included (the configured price is
    the price: a negotiated rate has no table tier above it unless the config gives one); a configured
    tier alone keeps the table's base. Fields the config leaves out stay the table's."""
    out = {name: _Field(f.base, dict(f.tiers)) for name, f in table.items()}
    for name, f in configured.items():
        mine = out.setdefault(name, _Field())
        if f.base is not None:
            mine.base = f.base
            mine.tiers = dict(f.tiers)
        elif f.tiers:
            mine.tiers = dict(f.tiers)
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):  # config values from os.environ/... arrive as strings
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _model_ref(d: Deployment) -> str:
    base = d.model_info.get("base_model")
    ref = base if isinstance(base, str) and base else d.upstream_model
    provider, sep, rest = ref.partition("/")
    if sep and provider == d.provider:  # base_model: "azure/gpt-4o"
        ref = rest
    if d.provider in ("bedrock", "bedrock_converse"):
        ref = ref.removeprefix("converse/").removeprefix("invoke/")
    return ref


def _table_fields(d: Deployment, service_tier: str | None) -> tuple[_Fields | None, float]:
    """The table's prices for the deployment now, and until when they hold."""
    provider_id = _TABLE_PROVIDER.get(d.provider)
    if provider_id is None:
        return None, math.inf
    from genai_prices import data_snapshot, types

    try:
        provider, model = data_snapshot.get_snapshot().find_provider_model(_model_ref(d), None, provider_id, None)
    except LookupError:
        log.info("no price for %s/%s in genai-prices", d.provider, _model_ref(d))
        return None, math.inf
    now = datetime.now(tz=UTC)
    context: types.PriceContext | None = {"service_tier": service_tier} if service_tier else None
    if context and not any(model is m for m in provider.models):
        context = None  # as genai-prices does: variants only apply to the provider's own models
    price = model.get_prices(now, context)
    fields: _Fields = {}
    for ours, (_, price_key, per) in _FIELDS.items():
        value = getattr(price, price_key, None)
        if isinstance(value, Decimal):
            fields[ours] = _Field(float(value / per))
        elif isinstance(value, types.TieredPrices):
            fields[ours] = _Field(float(value.base / per), {t.start: float(t.price / per) for t in value.tiers})
    return fields, _next_change(model, now)


def _next_change(model: Any, now: datetime) -> float:
    """The first instant after `now` at which one of the model's price constraints may flip (time.time())."""
    from genai_prices import types

    constraints = [c.constraint for c in (model.prices if isinstance(model.prices, list) else ())]
    constraints += [v.constraint for v in (model.price_variants or ())]
    soonest = math.inf
    for c in constraints:
        if isinstance(c, types.StartDateConstraint) and c.start_date > now.date():
            soonest = min(soonest, _midnight(c.start_date))
        elif isinstance(c, types.TimeOfDateConstraint):
            for t in (c.start_time, c.end_time):
                at = datetime.combine(now.date(), t.replace(tzinfo=t.tzinfo or UTC)).astimezone(UTC)
                if at <= now:
                    at += timedelta(days=1)
                soonest = min(soonest, at.timestamp())
    return soonest


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _compose(fields: _Fields, source: str) -> TokenPrices:
    """Per-field bases and tiers -> one TokenPrices with a full TokenPrices per threshold."""

    def at(threshold: int | None) -> TokenPrices:
        values: dict[str, float | None] = {}
        for name in _FIELDS:
            f = fields.get(name)
            if f is None:
                values[name] = None
                continue
            value = f.base
            if threshold is not None:
                for start in sorted(f.tiers):
                    if start <= threshold:
                        value = f.tiers[start]
            values[name] = value
        return TokenPrices(
            input=values["input"] or 0.0, output=values["output"] or 0.0,
            cached_input=values["cached_input"], reasoning=values["reasoning"], cache_write=values["cache_write"],
            request=values["request"] or 0.0, source=source,
        )

    thresholds = sorted({start for f in fields.values() for start in f.tiers})
    base = at(None)
    if not thresholds:
        return base
    return TokenPrices(base.input, base.output, base.cached_input, base.reasoning, base.cache_write, base.request,
                       tiers=tuple((t, at(t)) for t in thresholds), source=source)
