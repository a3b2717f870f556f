"""The router's narrowing of a group before a strategy picks: tag filtering, context-window pre-call
checks, cost-based routing, per-group retry policies, the request's own routing fields, and big groups
(cached weights; a few deployments at their limit do not bias the shuffle)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from respgate.deployments import Deployment
from respgate.errors import ConfigError, InvalidRequestError, RespgateError, UpstreamError
from respgate.router import lift_options, parse_router_settings, split_options
from respgate.router.options import estimate_tokens
from test_router import FakeClock, Script, dep, err, make_router


async def picks(router: Any, n: int = 200, model: str = "g", **kw: Any) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(n):
        d = await router.choose(model, **kw)
        router._release(d)
        seen[d.id] += 1
    return seen


def tagged(name: str, *tags: str, **kw: Any) -> Deployment:
    return dep(name, extra={"tags": list(tags), **kw.pop("extra", {})}, **kw)


# -- tags ----------------------------------------------------------------------------------------------

async def test_a_tagged_request_goes_to_the_deployments_with_its_tag() -> None:
    router, _ = make_router([tagged("free1", "free"), tagged("free2", "free"), tagged("paid", "paid")],
                            enable_tag_filtering=True)
    assert set(await picks(router, tags=("free",))) == {"free1", "free2"}
    assert set(await picks(router, tags=("paid",))) == {"paid"}


async def test_match_any_is_the_default_and_match_all_is_a_setting() -> None:
    group = [tagged("a", "eu"), tagged("b", "eu", "gpu"), tagged("c", "us", "gpu")]
    router, _ = make_router(group, enable_tag_filtering=True)
    assert set(await picks(router, tags=("eu", "gpu"))) == {"a", "b", "c"}
    strict, _ = make_router(group, enable_tag_filtering=True, tag_filtering_match_any=False)
    assert set(await picks(strict, tags=("eu", "gpu"))) == {"b"}


async def test_default_deployments_take_untagged_requests_and_unmatched_tags() -> None:
    router, _ = make_router([tagged("free", "free"), tagged("std", "default"), dep("plain")],
                            enable_tag_filtering=True)
    assert set(await picks(router)) == {"std"}
    assert set(await picks(router, tags=("nobody-has-this",))) == {"std"}
    assert set(await picks(router, tags=("free",))) == {"free"}


async def test_without_default_deployments_an_untagged_request_may_go_anywhere() -> None:
    router, _ = make_router([tagged("free", "free"), dep("plain")], enable_tag_filtering=True)
    assert set(await picks(router)) == {"free", "plain"}


async def test_tags_that_no_deployment_serves_are_a_400_naming_tags() -> None:
    router, _ = make_router([tagged("free", "free"), dep("plain")], enable_tag_filtering=True)
    with pytest.raises(InvalidRequestError) as caught:
        await router.run({"model": "g", "input": "x", "tags": ["gold"]}, Script())
    assert caught.value.param == "tags" and "gold" in caught.value.message


async def test_without_tag_filtering_tags_are_taken_out_but_route_nothing() -> None:
    router, _ = make_router([tagged("free", "free"), tagged("paid", "paid")])
    script = Script()
    for _ in range(40):
        await router.run({"model": "g", "input": "x", "tags": ["free"], "metadata": {"tags": ["x"], "k": "v"}},
                         script)
    assert {c[0] for c in script.calls} == {"free", "paid"}
    assert all("tags" not in body and body["metadata"] == {"k": "v"} for _, body in script.calls)


async def test_tag_filtering_reads_top_level_and_metadata_tags() -> None:
    router, _ = make_router([tagged("free", "free"), tagged("paid", "paid")], enable_tag_filtering=True)
    script = Script()
    await router.run({"model": "g", "input": "x", "metadata": {"tags": ["paid"]}}, script)
    await router.run({"model": "g", "input": "x", "tags": ["free"]}, script)
    await router.run({"model": "g", "input": "x", "metadata": {"tags": "paid"}}, script)  # a string: kept
    assert [c[0] for c in script.calls] == ["paid", "free", "paid"]
    assert script.calls[0][1]["metadata"] == {} and script.calls[2][1]["metadata"] == {"tags": "paid"}


async def test_retries_stay_within_the_tagged_deployments() -> None:
    router, sleeps = make_router([tagged("p1", "paid"), tagged("p2", "paid"), tagged("free", "free")],
                                 enable_tag_filtering=True, num_retries=3, allowed_fails=10)
    script = Script({"p1": [err(500), err(500)], "p2": [err(500)]})
    assert await router.run({"model": "g", "tags": ["paid"]}, script) in ("p1", "p2")
    assert "free" not in {c[0] for c in script.calls}
    assert len(sleeps) == 1  # after both paid deployments failed once, not after each failure


# -- context window pre-call checks ---------------------------------------------------------------------

def windowed(name: str, window: int) -> Deployment:
    return dep(name, model_info={"max_input_tokens": window})


async def test_pre_call_checks_skip_deployments_whose_window_the_input_exceeds() -> None:
    router, _ = make_router([windowed("small", 10), windowed("large", 1000), dep("unknown")],
                            enable_pre_call_checks=True)
    script = Script()
    for _ in range(30):
        await router.run({"model": "g", "input": "word " * 20}, script)  # 100 characters: 25 tokens
    assert {c[0] for c in script.calls} == {"large", "unknown"}
    assert set(await picks(router, tokens=5)) == {"small", "large", "unknown"}


async def test_input_too_long_for_every_deployment_takes_the_context_window_fallback() -> None:
    router, _ = make_router([windowed("small", 10), dep("big", "long")], enable_pre_call_checks=True,
                            context_window_fallbacks=[{"g": ["long"]}])
    script = Script()
    assert await router.run({"model": "g", "input": "x" * 200}, script) == "big"
    assert [c[0] for c in script.calls] == ["big"]
    alone, _ = make_router([windowed("small", 10)], enable_pre_call_checks=True)
    with pytest.raises(InvalidRequestError) as caught:
        await alone.run({"model": "g", "input": "x" * 200}, Script())
    assert caught.value.code == "context_length_exceeded" and caught.value.param == "input"


async def test_without_pre_call_checks_windows_are_left_to_the_deployment() -> None:
    router, _ = make_router([windowed("small", 10), windowed("large", 1000)])
    script = Script()
    for _ in range(30):
        await router.run({"model": "g", "input": "x" * 200}, script)
    assert {c[0] for c in script.calls} == {"small", "large"}


def test_token_estimate_counts_text_and_instructions() -> None:
    assert estimate_tokens({"input": "abcd" * 10}) == 10
    items = [{"role": "user", "content": "abcd" * 5}, {"role": "user", "content": [{"type": "input_text",
                                                                                   "text": "abcd" * 5}]}]
    assert estimate_tokens({"input": items, "instructions": "abcd" * 2}) == 12


# -- cost-based routing ---------------------------------------------------------------------------------

def priced(table: dict[str, float | None]) -> Any:
    return lambda d: table.get(d.id)


async def test_cost_based_routing_picks_the_cheapest_healthy_deployment() -> None:
    clock = FakeClock()
    router, _ = make_router([dep("cheap"), dep("mid"), dep("dear"), dep("unpriced")], clock,
                            routing_strategy="cost-based-routing", allowed_fails=0, cooldown_time=30)
    router._prices = priced({"cheap": 1e-7, "mid": 5e-7, "dear": 3e-6})
    assert set(await picks(router, 20)) == {"cheap"}
    await router.state.record_failure("cheap", 0, 30)
    assert set(await picks(router, 20)) == {"mid"}
    clock.now += 31
    assert set(await picks(router, 20)) == {"cheap"}


async def test_cost_based_routing_skips_deployments_at_their_limit_and_shares_ties() -> None:
    router, _ = make_router([dep("a", rpm=2), dep("b"), dep("c"), dep("dear")],
                            routing_strategy="cost-based-routing")
    router._prices = priced({"a": 1e-7, "b": 2e-7, "c": 2e-7, "dear": 1e-5})
    seen = await picks(router, 40)
    assert seen["a"] == 2 and set(seen) == {"a", "b", "c"} and seen["b"] > 5 and seen["c"] > 5


async def test_cost_based_routing_reads_prices_from_the_price_table() -> None:
    from respgate.spend.prices import token_prices

    router, _ = make_router([dep("paid", extra={"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}),
                             Deployment("g", "mock", "echo", id="free")], routing_strategy="cost-based-routing")
    assert token_prices(router.registry.by_id("free")) is not None  # type: ignore[arg-type]
    assert set(await picks(router, 20)) == {"free"}


def test_cost_based_routing_is_a_known_strategy() -> None:
    assert parse_router_settings({"routing_strategy": "cost-based-routing"}).routing_strategy == "cost-based-routing"


# -- model_group_retry_policy ---------------------------------------------------------------------------

async def test_a_groups_retry_policy_replaces_the_global_one_for_that_group() -> None:
    deployments = [dep("s1", "strict"), dep("l1", "lenient")]
    router, _ = make_router(deployments, num_retries=1, retry_policy={"InternalServerErrorRetries": 0},
                            model_group_retry_policy={"lenient": {"InternalServerErrorRetries": 3},
                                                      "strict": {"RateLimitErrorRetries": 2}})
    script = Script({"l1": [err(500)] * 3})
    assert await router.run({"model": "lenient"}, script) == "l1" and len(script.calls) == 4
    script = Script({"s1": [err(500), err(500)]})
    with pytest.raises(UpstreamError):  # strict's policy leaves server errors at num_retries (1)
        await router.run({"model": "strict"}, script)
    assert len(script.calls) == 2
    script = Script({"s1": [err(429), err(429)]})
    assert await router.run({"model": "strict"}, script) == "s1" and len(script.calls) == 3


def test_model_group_retry_policy_mistakes_name_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_router_settings({"model_group_retry_policy": {"g": {"Nope": 1}}})
    assert caught.value.key == "router_settings.model_group_retry_policy.g.Nope"
    with pytest.raises(ConfigError) as caught:
        parse_router_settings({"model_group_retry_policy": ["g"]})
    assert caught.value.key == "router_settings.model_group_retry_policy"


# -- the request's routing fields -----------------------------------------------------------------------

def test_split_options_leaves_the_callers_body_alone() -> None:
    body = {"model": "g", "tags": ["b", "a"], "fallbacks": ["x"], "metadata": {"tags": ["c", "a"], "k": "v"}}
    clean, options = split_options(body)
    assert clean == {"model": "g", "metadata": {"k": "v"}}
    assert options.tags == ("a", "b", "c") and options.fallbacks == ("x",)
    assert body["tags"] == ["b", "a"] and body["metadata"]["tags"] == ["c", "a"]
    plain = {"model": "g", "input": "x"}
    assert split_options(plain)[0] is plain


@pytest.mark.parametrize(("body", "param"), [
    ({"tags": 3}, "tags"), ({"tags": ["a", 1]}, "tags"), ({"metadata": {"tags": [{"a": 1}]}}, "metadata.tags"),
    ({"fallbacks": "b"}, "fallbacks")])
def test_malformed_routing_fields_are_400s_naming_them(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        split_options({"model": "g", **body})
    assert caught.value.param == param and caught.value.status == 400


def test_lift_options_moves_routing_fields_for_a_translated_body() -> None:
    body, fields = lift_options({"model": "g", "messages": [], "tags": ["t"], "fallbacks": ["b"]})
    assert body == {"model": "g", "messages": []} and fields == {"fallbacks": ["b"], "tags": ["t"]}
    assert lift_options({"model": "g"})[1] == {}


async def test_a_plain_config_strips_tags_without_routing() -> None:
    router, _ = make_router([dep("a")])
    assert not router.engaged and router.takes({"model": "g", "metadata": {"tags": ["x"]}})
    assert not router.takes({"model": "g", "metadata": {"k": "v"}})
    seen: list[Any] = []

    async def attempt(d: Deployment | None, body: dict[str, Any]) -> str:
        seen.append((d, body))
        return "ok"

    assert await router.run({"model": "g", "tags": ["x"]}, attempt) == "ok"
    assert seen == [(None, {"model": "g"})]


# -- big groups -----------------------------------------------------------------------------------------

async def test_a_big_group_with_some_at_their_limit_keeps_the_weights_among_the_rest() -> None:
    group = [dep(f"d{i}", extra={"weight": 3 if i == 0 else 1}) for i in range(50)]
    group += [dep("capped", extra={"weight": 1000, "max_parallel_requests": 1})]
    router, _ = make_router(group)
    held = None
    while held is None:  # the heavy one takes almost everything until it is busy
        d = await router.choose("g")
        if d.id == "capped":
            held = d
        else:
            router._release(d)
    seen = await picks(router, 5200)
    assert "capped" not in seen
    share = seen["d0"] / 5200  # 3 of 52 weight units among the rest
    assert 0.035 < share < 0.08


async def test_a_fully_busy_big_group_is_a_429() -> None:
    router, _ = make_router([dep(f"d{i}", extra={"max_parallel_requests": 1}) for i in range(20)])
    for _ in range(20):
        await router.choose("g")
    with pytest.raises(RespgateError) as caught:
        await router.choose("g")
    assert caught.value.status == 429
