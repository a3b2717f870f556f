"""The cost of a call equals genai-prices' own number for every usage field, and model_info overrides it."""

from __future__ import annotations

from typing import Any

import pytest
from genai_prices import Usage, calc_price

from respgate.calls import Call, Principal, Tokens
from respgate.deployments import Deployment
from respgate.spend import TokenPrices, cost_of, price_usage, token_prices

# (our provider, upstream model, genai-prices provider id, model ref)
TABLE_MODELS = [
    ("openai", "gpt-4o-2024-08-06", "openai", "gpt-4o-2024-08-06"),
    ("openai", "o3-mini", "openai", "o3-mini"),
    ("azure", "gpt-4o", "azure", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),  # cache writes, long-context tier
    ("anthropic", "claude-opus-4-1-20250805", "anthropic", "claude-opus-4-1-20250805"),
    ("gemini", "gemini-2.5-pro", "google", "gemini-2.5-pro"),  # tiered above 200k input tokens
    ("vertex_ai", "gemini-2.0-flash", "google", "gemini-2.0-flash"),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("bedrock", "converse/amazon.nova-pro-v1:0", "aws", "amazon.nova-pro-v1:0"),
    ("deepseek", "deepseek-chat", "deepseek", "deepseek-chat"),  # off-peak prices by time of day
    ("perplexity", "sonar", "perplexity", "sonar"),  # a per-request fee
    ("perplexity", "sonar-deep-research", "perplexity", "sonar-deep-research"),  # a distinct reasoning price
    ("groq", "llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile"),
    ("xai", "grok-3", "x-ai", "grok-3"),
]

# (input, cached, cache writes, output, reasoning): each field alone, then together, then a long context
USAGES = [
    (1000, 0, 0, 0, 0),
    (1000, 400, 0, 0, 0),
    (1000, 0, 300, 0, 0),
    (0, 0, 0, 500, 0),
    (0, 0, 0, 500, 200),
    (1234, 400, 300, 567, 89),
    (250_000, 10_000, 0, 2000, 1000),
    (200_000, 0, 0, 10, 0),  # exactly at a threshold: still the base price
]


def usage(inp: int, cached: int, written: int, out: int, reasoning: int) -> dict[str, Any]:
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": inp + out}


def table_price(provider_id: str, ref: str, inp: int, cached: int, written: int, out: int, reasoning: int) -> float:
    u = Usage(input_tokens=inp, cache_read_tokens=cached, cache_write_tokens=written, output_tokens=out,
              output_reasoning_tokens=reasoning)
    return float(calc_price(u, ref, provider_id=provider_id).total_price)


@pytest.mark.parametrize(("provider", "upstream", "provider_id", "ref"), TABLE_MODELS)
@pytest.mark.parametrize("fields", USAGES)
def test_cost_equals_the_price_table(provider: str, upstream: str, provider_id: str, ref: str,
                                     fields: tuple[int, int, int, int, int]) -> None:
    d = Deployment("group", provider, upstream)
    expected = table_price(provider_id, ref, *fields)
    assert cost_of(d, usage(*fields)) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_each_field_has_its_own_price() -> None:
    """A check that the table test is not vacuous: each field moves the cost by the table's own rate."""
    d = Deployment("g", "anthropic", "claude-sonnet-4-5")
    p = token_prices(d)
    assert p is not None and p.source == "genai-prices"
    assert p.cached_input is not None and p.cache_write is not None
    assert p.cached_input < p.input < p.cache_write < p.output
    base = cost_of(d, usage(1000, 0, 0, 100, 0))
    assert base == pytest.approx(1000 * p.input + 100 * p.output)
    out = 100 * p.output
    assert cost_of(d, usage(1000, 400, 0, 100, 0)) == pytest.approx(600 * p.input + 400 * p.cached_input + out)
    assert cost_of(d, usage(1000, 0, 300, 100, 0)) == pytest.approx(700 * p.input + 300 * p.cache_write + out)
    # reasoning is part of output_tokens and has no distinct price here: counted once, at the output rate
    assert cost_of(d, usage(1000, 0, 0, 100, 60)) == pytest.approx(base)


def test_reasoning_uses_its_own_price_only_when_the_model_has_one() -> None:
    d = Deployment("g", "perplexity", "sonar-deep-research")
    p = token_prices(d)
    assert p is not None and p.reasoning is not None and p.reasoning != p.output
    assert cost_of(d, usage(0, 0, 0, 100, 40)) == pytest.approx(p.request + 60 * p.output + 40 * p.reasoning)


def test_long_context_tier_applies_to_every_token() -> None:
    d = Deployment("g", "gemini", "gemini-2.5-pro")
    p = token_prices(d)
    assert p is not None and p.tiers
    threshold, tier = p.tiers[0]
    assert tier.input > p.input
    expected = (threshold + 1) * tier.input + 10 * tier.output
    assert cost_of(d, usage(threshold + 1, 0, 0, 10, 0)) == pytest.approx(expected)


def test_azure_deployment_name_priced_by_base_model() -> None:
    d = Deployment("g", "azure", "my-prod-deployment", model_info={"base_model": "azure/gpt-4o-mini"})
    expected = table_price("azure", "gpt-4o-mini", 1000, 0, 0, 100, 0)
    assert cost_of(d, usage(1000, 0, 0, 100, 0)) == pytest.approx(expected)


def test_service_tier_variant() -> None:
    d = Deployment("g", "openai", "gpt-5")
    standard, priority = token_prices(d), token_prices(d, "priority")
    assert standard is not None and priority is not None and priority.input > standard.input
    u = Usage(input_tokens=1000, output_tokens=100)
    context = {"service_tier": "priority"}
    expected = float(calc_price(u, "gpt-5", provider_id="openai", price_context=context).total_price)
    assert cost_of(d, usage(1000, 0, 0, 100, 0), "priority") == pytest.approx(expected)
    assert cost_of(d, usage(1000, 0, 0, 100, 0), "made-up-tier") == cost_of(d, usage(1000, 0, 0, 100, 0))


# -- custom pricing ---------------------------------------------------------------------------------

def test_model_info_prices_replace_the_table() -> None:
    info = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "cache_read_input_token_cost": 1e-7,
            "cache_creation_input_token_cost": 3e-6, "output_cost_per_reasoning_token": 5e-6}
    d = Deployment("g", "openai", "gpt-4o", model_info=info)
    p = token_prices(d)
    assert p == TokenPrices(1e-6, 2e-6, 1e-7, 5e-6, cache_write=3e-6, source="config")
    cost = cost_of(d, usage(1000, 100, 200, 50, 20))
    assert cost == pytest.approx(700 * 1e-6 + 100 * 1e-7 + 200 * 3e-6 + 30 * 2e-6 + 20 * 5e-6)


def test_litellm_params_pricing_and_partial_overrides() -> None:
    # litellm_params (Deployment.extra) win over model_info; fields left out keep the table's price
    d = Deployment("g", "openai", "gpt-4o", extra={"input_cost_per_token": 4e-6},
                   model_info={"input_cost_per_token": 9e-6})
    table = token_prices(Deployment("g", "openai", "gpt-4o"))
    p = token_prices(d)
    assert table is not None and p is not None
    assert p.input == 4e-6 and p.output == table.output and p.cached_input == table.cached_input


def test_custom_tier_above_n_k_tokens() -> None:
    d = Deployment("g", "mock", "echo", model_info={"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                                                    "input_cost_per_token_above_128k_tokens": 3e-6})
    assert cost_of(d, usage(128_000, 0, 0, 10, 0)) == pytest.approx(128_000 * 1e-6 + 10 * 2e-6)
    assert cost_of(d, usage(128_001, 0, 0, 10, 0)) == pytest.approx(128_001 * 3e-6 + 10 * 2e-6)


def test_configured_price_drops_the_tables_tier_for_that_field() -> None:
    d = Deployment("g", "gemini", "gemini-2.5-pro", model_info={"input_cost_per_token": 1e-6})
    p = token_prices(d)
    assert p is not None
    assert p.for_input(300_000).input == 1e-6  # the negotiated rate holds at any length
    assert p.for_input(300_000).output > p.output  # the output tier stays the table's


def test_string_prices_from_environment_are_numbers() -> None:
    info = {"input_cost_per_token": "0.000001", "output_cost_per_token": "2e-6"}
    d = Deployment("g", "mock", "echo", model_info=info)
    assert cost_of(d, usage(10, 0, 0, 10, 0)) == pytest.approx(10e-6 + 20e-6)


def test_mock_and_self_hosted_models_are_free_unless_priced() -> None:
    for provider in ("mock", "ollama", "hosted_vllm"):
        assert cost_of(Deployment("g", provider, "x"), usage(1000, 0, 0, 1000, 0)) == 0.0


def test_unknown_model_has_no_price() -> None:
    assert token_prices(Deployment("g", "openai", "no-such-model-anywhere")) is None
    assert cost_of(Deployment("g", "openai_like", "llama"), usage(1, 0, 0, 1, 0)) is None


def test_odd_usage_never_goes_negative() -> None:
    p = TokenPrices(1e-6, 2e-6, 5e-7, None)
    assert price_usage(p, usage(10, 50, 0, 5, 9)) == pytest.approx(10 * 5e-7 + 5 * 2e-6)
    assert price_usage(p, {"input_tokens": -3, "output_tokens": "7"}) == 0.0
    assert price_usage(p, {}) == 0.0


def test_prices_are_cached_per_deployment_object() -> None:
    a = Deployment("g", "mock", "echo", model_info={"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6})
    b = Deployment("g", "mock", "echo", model_info={"input_cost_per_token": 5e-6, "output_cost_per_token": 5e-6})
    assert a.id == b.id  # same config entry shape, different prices: each object keeps its own
    pa, pb = token_prices(a), token_prices(b)
    assert pa is not None and pb is not None and pa.input == 1e-6 and pb.input == 5e-6
    assert token_prices(a) is pa


def test_the_bundled_price_table_is_used_never_a_download() -> None:
    from genai_prices import data_snapshot

    token_prices(Deployment("g", "openai", "gpt-4o-mini"))
    snapshot = data_snapshot.get_snapshot()
    assert snapshot.from_auto_update is False and data_snapshot._custom_snapshot is None


def test_a_calls_tokens_are_read_once_from_either_usage_shape() -> None:
    call = Call(Principal(), {"model": "m"})
    assert call.tokens is None
    call.response = {"usage": {"input_tokens": 10, "output_tokens": 4, "total_tokens": 14,
                               "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 2},
                               "output_tokens_details": {"reasoning_tokens": 1}}}
    first = call.tokens
    assert first == Tokens(10, 4, 14, 3, 2, 1) and call.tokens is first  # read once
    call.response = {"usage": {"prompt_tokens": 7, "completion_tokens": True, "prompt_tokens_details":
                               {"cached_tokens": -1}}}  # a new Response is read again; odd counts are 0
    assert call.tokens == Tokens(7, 0, 7, 0, 0, 0)
