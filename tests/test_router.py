"""The Router on its own: strategies, retries, Retry-After, cooldowns, fallbacks, limits, session
continuity. Attempts are plain functions that fail on command; time is a fake clock; sleeps are recorded."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from respgate.deployments import Deployment, ModelRegistry
from respgate.errors import (
    BadGatewayError,
    GatewayTimeoutError,
    InvalidRequestError,
    RespgateError,
    UpstreamError,
)
from respgate.events import Event
from respgate.ids import encode_response_id
from respgate.router import Router, RouterSettings, parse_router_settings
from respgate.router.policy import error_kind


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def dep(name: str, model: str = "g", **kw: Any) -> Deployment:
    extra = kw.pop("extra", {})
    return Deployment(model, "mock", name, id=name, extra=extra, **kw)


def make_router(deployments: list[Deployment], clock: FakeClock | None = None, seed: int = 7,
                **settings: Any) -> tuple[Router, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    router = Router(ModelRegistry(deployments), parse_router_settings(settings), clock=clock or FakeClock(),
                    sleep=sleep, rng=random.Random(seed))
    return router, sleeps


class Script:
    """An attempt function: per deployment id, a queue of errors to raise before answering."""

    def __init__(self, failures: dict[str, list[RespgateError]] | None = None) -> None:
        self.failures = failures or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, d: Deployment | None, body: dict[str, Any]) -> str:
        assert d is not None
        self.calls.append((d.id, body))
        queue = self.failures.get(d.id) or self.failures.get("*")
        if queue:
            raise queue.pop(0)
        return d.id


def err(status: int, message: str = "upstream failure", code: str | None = None,
        retry_after: str | None = None) -> UpstreamError:
    return UpstreamError(message, status=status, code=code,
                         headers={"retry-after": retry_after} if retry_after is not None else None)


# -- strategies ----------------------------------------------------------------------------------------

async def test_simple_shuffle_follows_weights() -> None:
    router, _ = make_router([dep("a", extra={"weight": 1}), dep("b", extra={"weight": 3})])
    picks = Counter()
    for _ in range(4000):
        d = await router.choose("g")
        router._release(d)
        picks[d.id] += 1
    assert 0.2 < picks["a"] / 4000 < 0.3


async def test_simple_shuffle_falls_back_to_rpm_as_weight() -> None:
    router, _ = make_router([dep("a", rpm=100_000), dep("b", rpm=900_000)])
    picks = Counter()
    for _ in range(2000):
        d = await router.choose("g")
        router._release(d)
        picks[d.id] += 1
    assert picks["a"] < picks["b"] / 4


async def test_least_busy_avoids_the_deployment_with_requests_in_flight() -> None:
    router, _ = make_router([dep("a"), dep("b")], routing_strategy="least-busy")
    first = await router.choose("g")
    for _ in range(20):
        d = await router.choose("g")
        assert d.id != first.id
        router._release(d)


async def test_latency_based_routing_prefers_the_faster_deployment() -> None:
    router, _ = make_router([dep("a"), dep("b"), dep("c")], routing_strategy="latency-based-routing")
    for id_, seconds in (("a", 2.0), ("b", 0.1), ("c", 1.0)):
        await router.state.add_latency(id_, seconds)
    assert {(await router.choose("g")).id for _ in range(10)} == {"b"}


async def test_usage_based_routing_prefers_the_least_used_deployment_this_minute() -> None:
    router, _ = make_router([dep("a"), dep("b")], routing_strategy="usage-based-routing")
    await router.state.add_usage("a", 0, 5000)
    await router.state.add_usage("b", 0, 10)
    assert (await router.choose("g")).id == "b"


# -- retries -------------------------------------------------------------------------------------------

async def test_retry_moves_to_another_deployment_at_once() -> None:
    router, sleeps = make_router([dep("a"), dep("b")], num_retries=2, allowed_fails=5)
    script = Script({"*": [err(500)]})
    result = await router.run({"model": "g", "input": "x"}, script)
    assert len(script.calls) == 2 and script.calls[0][0] != script.calls[1][0] and result == script.calls[1][0]
    assert sleeps == []


async def test_retry_on_the_only_deployment_waits_for_retry_after_up_to_the_cap() -> None:
    router, sleeps = make_router([dep("a")], num_retries=2)
    script = Script({"a": [err(429, retry_after="7"), err(429, retry_after="3600")]})
    assert await router.run({"model": "g"}, script) == "a"
    assert sleeps == [7.0, 60.0]


async def test_backoff_grows_without_retry_after() -> None:
    router, sleeps = make_router([dep("a")], num_retries=3)
    script = Script({"a": [err(503), err(503), err(503)]})
    await router.run({"model": "g"}, script)
    assert len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2] <= 8.0


@pytest.mark.parametrize("failure", [
    InvalidRequestError("bad", param="input"), err(404), err(422), err(400, "Unsupported parameter")])
async def test_client_errors_are_never_retried(failure: RespgateError) -> None:
    router, _ = make_router([dep("a"), dep("b")], num_retries=3,
                            retry_policy={"BadRequestErrorRetries": 3})
    script = Script({"*": [failure]})
    with pytest.raises(RespgateError) as caught:
        await router.run({"model": "g"}, script)
    assert caught.value is failure and len(script.calls) == 1


async def test_retry_policy_sets_retries_per_error_kind() -> None:
    router, _ = make_router([dep("a")], num_retries=3,
                            retry_policy={"RateLimitErrorRetries": 0, "TimeoutErrorRetries": 1})
    script = Script({"a": [err(429)]})
    with pytest.raises(UpstreamError):
        await router.run({"model": "g"}, script)
    assert len(script.calls) == 1
    script = Script({"a": [GatewayTimeoutError("slow"), GatewayTimeoutError("slow")]})
    with pytest.raises(GatewayTimeoutError):
        await router.run({"model": "g"}, script)
    assert len(script.calls) == 2


async def test_timeout_ends_an_attempt_and_retries_elsewhere() -> None:
    router, _ = make_router([dep("a"), dep("b")], num_retries=1, timeout=0.01, allowed_fails=5)
    never = asyncio.Event()
    calls: list[str] = []

    async def attempt(d: Deployment | None, body: dict[str, Any]) -> str:
        assert d is not None
        calls.append(d.id)
        if len(calls) == 1:
            await never.wait()
        return d.id

    assert await router.run({"model": "g"}, attempt) == calls[1] != calls[0]


def test_error_kinds() -> None:
    assert error_kind(err(429)) == "rate_limit"
    assert error_kind(BadGatewayError("unreachable")) == "server"
    assert error_kind(BadGatewayError("refused", code="upstream_auth_failed")) == "authentication"
    assert error_kind(GatewayTimeoutError("slow")) == "timeout"
    assert error_kind(err(400, "This model's maximum context length is 8192 tokens")) == "context_window"
    assert error_kind(err(400, "x", code="content_policy_violation")) == "content_policy"
    assert error_kind(err(400, "Invalid value")) == "bad_request"


# -- cooldowns -----------------------------------------------------------------------------------------

async def test_failures_past_allowed_fails_cool_a_deployment_down_until_cooldown_time() -> None:
    clock = FakeClock()
    router, _ = make_router([dep("a"), dep("b")], clock, allowed_fails=1, cooldown_time=30)
    script = Script({"a": [err(500), err(500)]})
    while len(script.failures["a"]) > 0:  # run until "a" was picked and failed twice
        with contextlib.suppress(UpstreamError):
            await router.run({"model": "g"}, script)
    assert {(await router.choose("g")).id for _ in range(20)} == {"b"}
    clock.now += 31
    assert "a" in {(await router.choose("g")).id for _ in range(40)}


async def test_failures_in_an_earlier_minute_do_not_count() -> None:
    clock = FakeClock(60_000.0)
    router, _ = make_router([dep("a"), dep("b")], clock, allowed_fails=1)
    assert not await router.state.record_failure("a", 1, 5)
    clock.now += 60
    assert not await router.state.record_failure("a", 1, 5)
    assert await router.state.record_failure("a", 1, 5)


async def test_every_deployment_cooling_down_is_a_503_in_openai_shape() -> None:
    router, _ = make_router([dep("a"), dep("b")], num_retries=0, allowed_fails=0, cooldown_time=12)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await router.run({"model": "g"}, Script({"*": [err(500)]}))
    with pytest.raises(RespgateError) as caught:
        await router.run({"model": "g"}, Script())
    e = caught.value
    assert e.status == 503 and e.headers["Retry-After"] == "12"
    assert "all 2 are cooling down" in e.message and e.to_dict()["error"]["code"] == "no_healthy_deployments"


async def test_a_groups_only_deployment_is_never_cooled_down() -> None:
    router, _ = make_router([dep("a")], allowed_fails=0)
    with pytest.raises(UpstreamError):
        await router.run({"model": "g"}, Script({"a": [err(500)]}))
    assert await router.run({"model": "g"}, Script()) == "a"


# -- fallbacks -----------------------------------------------------------------------------------------

def fallback_router(**settings: Any) -> Router:
    deployments = [dep("a1", "a"), dep("b1", "b"), dep("cw1", "long"), dep("cp1", "lenient"), dep("d1", "dflt")]
    return make_router(deployments, **settings)[0]


async def test_general_fallbacks_after_retries() -> None:
    router = fallback_router(fallbacks=[{"a": ["b"]}], num_retries=1)
    script = Script({"a1": [err(500), err(500)]})
    assert await router.run({"model": "a", "input": "x"}, script) == "b1"
    assert [c[0] for c in script.calls] == ["a1", "a1", "b1"]
    assert script.calls[-1][1] == {"model": "b", "input": "x"}


async def test_context_window_and_content_policy_fallbacks_are_chosen_by_error() -> None:
    router = fallback_router(fallbacks=[{"a": ["b"]}], context_window_fallbacks=[{"a": ["long"]}],
                             content_policy_fallbacks=[{"a": ["lenient"]}])
    too_long = err(400, "This model's maximum context length is 10 tokens", code="context_length_exceeded")
    assert await router.run({"model": "a"}, Script({"a1": [too_long]})) == "cw1"
    refused = err(400, "Your request was rejected by our content policy", code="content_policy_violation")
    assert await router.run({"model": "a"}, Script({"a1": [refused]})) == "cp1"


async def test_default_fallbacks_apply_to_groups_without_their_own() -> None:
    router = fallback_router(default_fallbacks=["dflt"])
    assert await router.run({"model": "b"}, Script({"b1": [err(503)]})) == "d1"


async def test_a_client_error_does_not_fall_back() -> None:
    router = fallback_router(fallbacks=[{"a": ["b"]}], default_fallbacks=["dflt"])
    with pytest.raises(UpstreamError):
        await router.run({"model": "a"}, Script({"a1": [err(400, "Invalid value for 'temperature'")]}))


async def test_per_request_fallbacks_override_and_are_stripped_from_the_body() -> None:
    router = fallback_router(fallbacks=[{"a": ["b"]}])
    script = Script({"a1": [err(500)]})
    assert await router.run({"model": "a", "fallbacks": ["dflt"]}, script) == "d1"
    assert all("fallbacks" not in body for _, body in script.calls)
    with pytest.raises(InvalidRequestError) as caught:
        await router.run({"model": "a", "fallbacks": "b"}, Script())
    assert caught.value.param == "fallbacks"


async def test_when_every_fallback_fails_the_first_error_is_raised() -> None:
    router = fallback_router(fallbacks=[{"a": ["b", "dflt"]}])
    first = err(500, "first")
    script = Script({"a1": [first], "b1": [err(502)], "d1": [err(503)]})
    with pytest.raises(UpstreamError) as caught:
        await router.run({"model": "a"}, script)
    assert caught.value is first and [c[0] for c in script.calls] == ["a1", "b1", "d1"]


# -- session continuity --------------------------------------------------------------------------------

async def test_previous_response_goes_back_to_its_deployment_unless_it_is_cooling_down() -> None:
    clock = FakeClock()
    router, _ = make_router([dep("a"), dep("b"), dep("c")], clock, allowed_fails=0, cooldown_time=10)
    prev = encode_response_id("b", "resp_upstream1")
    for _ in range(30):
        d = await router.choose("g", prev)
        router._release(d)
        assert d.id == "b"
    await router.state.record_failure("b", 0, 10)
    others = {(await router.choose("g", prev)).id for _ in range(30)}
    assert others <= {"a", "c"} and others
    clock.now += 11
    assert (await router.choose("g", prev)).id == "b"


async def test_a_previous_response_from_another_group_is_routed_normally() -> None:
    router, _ = make_router([dep("a"), dep("b")])
    prev = encode_response_id("elsewhere", "resp_1")
    assert {(await router.choose("g", prev)).id for _ in range(30)} == {"a", "b"}


# -- limits --------------------------------------------------------------------------------------------

async def test_rpm_is_enforced_per_minute_with_retry_after() -> None:
    clock = FakeClock(6000.0 + 45)  # 15 s before the next minute
    router, _ = make_router([dep("a", rpm=2), dep("b", rpm=1)], clock)
    seen = Counter()
    for _ in range(3):
        d = await router.choose("g")
        router._release(d)
        seen[d.id] += 1
    assert seen == {"a": 2, "b": 1}
    with pytest.raises(RespgateError) as caught:
        await router.choose("g")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "15"
    clock.now += 15
    assert (await router.choose("g")).id in ("a", "b")


async def test_tpm_counts_the_tokens_of_responses() -> None:
    router, _ = make_router([dep("a", tpm=100)])

    async def attempt(d: Deployment | None, body: dict[str, Any]) -> int:
        return 150

    assert await router.run({"model": "g"}, attempt, tokens_of=lambda n: n) == 150
    with pytest.raises(RespgateError) as caught:
        await router.run({"model": "g"}, attempt, tokens_of=lambda n: n)
    assert caught.value.status == 429


async def test_max_parallel_requests_counts_requests_in_flight() -> None:
    router, _ = make_router([dep("a", extra={"max_parallel_requests": 1})])
    held = await router.choose("g")
    with pytest.raises(RespgateError) as caught:
        await router.choose("g")
    assert caught.value.status == 429
    router._release(held)
    await router.choose("g")


async def test_a_stream_holds_its_deployment_until_it_ends() -> None:
    router, _ = make_router([dep("a", extra={"max_parallel_requests": 1})])

    async def events() -> AsyncIterator[Event]:
        yield Event.of({"type": "response.created", "response": {}})
        yield Event.of({"type": "response.completed", "response": {"usage": {"total_tokens": 3}}})

    async def attempt(d: Deployment | None, body: dict[str, Any]) -> AsyncIterator[Event]:
        return events()

    stream = await router.run({"model": "g"}, attempt, stream=True)
    with pytest.raises(RespgateError):
        await router.choose("g")
    assert [e.type async for e in stream] == ["response.created", "response.completed"]
    router._release(await router.choose("g"))
    closed = await router.run({"model": "g"}, attempt, stream=True)
    await closed.aclose()  # type: ignore[attr-defined]  # a client that leaves before reading
    router._release(await router.choose("g"))


# -- engagement and settings ---------------------------------------------------------------------------

def test_a_plain_config_leaves_the_router_off() -> None:
    plain = Router(ModelRegistry([dep("a")]), RouterSettings())
    assert not plain.engaged and not plain.takes({"model": "g"}) and plain.takes({"model": "g", "fallbacks": []})
    assert Router(ModelRegistry([dep("a"), dep("b")]), RouterSettings()).engaged
    assert Router(ModelRegistry([dep("a", rpm=5)]), RouterSettings()).engaged


@pytest.mark.parametrize(("raw", "key"), [
    ({"routing_strategy": "fastest"}, "router_settings.routing_strategy"),
    ({"retry_policy": {"NotAField": 1}}, "router_settings.retry_policy.NotAField"),
    ({"fallbacks": [{"a": [1]}]}, "router_settings.fallbacks[0].a"),
    ({"cooldown_time": -1}, "router_settings.cooldown_time"),
])
def test_bad_router_settings_name_the_key(raw: dict[str, Any], key: str) -> None:
    from respgate.errors import ConfigError
    with pytest.raises(ConfigError) as caught:
        parse_router_settings(raw)
    assert caught.value.key == key


def test_litellm_settings_supply_defaults_router_settings_override() -> None:
    s = parse_router_settings({"num_retries": 4}, {"num_retries": 1, "fallbacks": [{"a": ["b"]}]})
    assert s.num_retries == 4 and dict(s.fallbacks) == {"a": ("b",)} and s.configured



def test_sdk_router_routes_a_group_with_fallbacks() -> None:
    import respgate

    router = respgate.Router(
        model_list=[{"model_name": "flaky", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-x",
                                                     "api_base": "http://127.0.0.1:1/v1"}},  # refused
                    {"model_name": "steady", "litellm_params": {"model": "mock/echo"}}],
        routing_strategy="least-busy", num_retries=1, fallbacks=[{"flaky": ["steady"]}])
    try:
        assert router._gateway.router.engaged
        answer = router.responses(model="steady", input="hello")
        assert answer.output_text and answer.model == "steady"
        rescued = router.responses(model="flaky", input="hello")
        assert rescued.model == "steady"
    finally:
        router.close()
