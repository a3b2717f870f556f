"""Router state in Redis (127.0.0.1:6379, which CI starts): two routers share cooldowns and
counters; an outage degrades to local state with one warning and keeps serving."""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from respgate.config import load_config
from respgate.deployments import Deployment, ModelRegistry
from respgate.errors import RespgateError
from respgate.gateway import Gateway
from respgate.router import RedisSettings, RedisState, Router, parse_router_settings, redis_client
from respgate.store.memory import MemoryStore

REDIS = RedisSettings(host="127.0.0.1", port=6379)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    client = redis_client(REDIS)
    try:
        await client.ping()
    except Exception as e:  # any failure here means the same thing
        pytest.fail(f"these tests need Redis on 127.0.0.1:6379 (CI starts it): {type(e).__name__}: {e}")
    name = f"respgate-test:{secrets.token_hex(6)}:"
    yield name
    keys = [k async for k in client.scan_iter(match=name + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def group(**kw: Any) -> list[Deployment]:
    return [Deployment("g", "mock", n, id=n, **kw) for n in ("a", "b", "c")]


def router_on(prefix: str, clock: FakeClock, deployments: list[Deployment], **settings: Any) -> Router:
    state = RedisState(redis_client(REDIS), clock, prefix=prefix)
    return Router(ModelRegistry(deployments), parse_router_settings(settings), state=state, clock=clock,
                  rng=random.Random(1))


async def test_two_routers_see_each_others_cooldowns(prefix: str) -> None:
    clock = FakeClock(1_700_000_000.0)
    one = router_on(prefix, clock, group(), allowed_fails=0, cooldown_time=30)
    two = router_on(prefix, clock, group(), allowed_fails=0, cooldown_time=30)
    assert await one.state.record_failure("a", 0, 30)
    picks = set()
    for _ in range(30):
        d = await two.choose("g")
        two._release(d)
        picks.add(d.id)
    assert picks == {"b", "c"}
    snap = await two.state.snapshot(["a"], usage=False, latency=False)
    assert 29 < snap.cooling["a"] <= 30
    await one.close()
    await two.close()


async def test_two_routers_share_rpm_counters(prefix: str) -> None:
    clock = FakeClock(1_700_000_000.0)
    one = router_on(prefix, clock, [Deployment("g", "mock", "a", id="a", rpm=3)])
    two = router_on(prefix, clock, [Deployment("g", "mock", "a", id="a", rpm=3)])
    for r in (one, two, one):
        r._release(await r.choose("g"))
    with pytest.raises(RespgateError) as caught:
        await two.choose("g")
    assert caught.value.status == 429
    clock.now += 60  # a new minute
    two._release(await two.choose("g"))
    await one.close()
    await two.close()


async def test_latency_and_tokens_are_shared(prefix: str) -> None:
    clock = FakeClock(1_700_000_000.0)
    one = router_on(prefix, clock, group(), routing_strategy="latency-based-routing")
    two = router_on(prefix, clock, group(), routing_strategy="latency-based-routing")
    for id_, s in (("a", 3.0), ("b", 0.2), ("c", 1.0)):
        await one.state.add_latency(id_, s)
    await one.state.add_usage("c", 0, 42)
    snap = await two.state.snapshot(["a", "b", "c"], usage=True, latency=True)
    assert snap.latency == {"a": 3.0, "b": 0.2, "c": 1.0} and snap.usage["c"].tokens == 42
    assert (await two.choose("g")).id == "b"
    await one.close()
    await two.close()


async def test_a_redis_outage_keeps_serving_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1_700_000_000.0)
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    state = RedisState(dead, clock, prefix="unused:")
    router = Router(ModelRegistry(group(rpm=100)), parse_router_settings({"allowed_fails": 0}), state=state,
                    clock=clock)

    async def attempt(d: Deployment | None, body: dict[str, Any]) -> str:
        assert d is not None
        return d.id

    with caplog.at_level(logging.WARNING, logger="respgate.router"):
        for _ in range(5):
            assert await router.run({"model": "g"}, attempt) in ("a", "b", "c")
        assert await state.record_failure("a", 0, 10)  # cooldowns still work, locally
        for _ in range(10):
            assert await router.run({"model": "g"}, attempt) in ("b", "c")
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1 and state.degraded
    await router.close()


async def test_redis_comes_back_after_the_retry_interval(prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1_700_000_000.0)
    state = RedisState(redis_client(REDIS), clock, prefix=prefix, retry_interval=10)
    state._down_until = clock.now + 10  # as after a failure
    await state.add_usage("a", 1, 0)  # still local
    clock.now += 11
    with caplog.at_level(logging.WARNING, logger="respgate.router"):
        await state.add_usage("a", 1, 0)
    assert not state.degraded and any("reachable again" in r.getMessage() for r in caplog.records)
    await state.close()


def test_router_settings_with_redis_select_the_redis_state(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("""
model_list:
  - model_name: g
    litellm_params: {model: mock/echo}
router_settings:
  redis_url: redis://127.0.0.1:6379/0
""")
    assert isinstance(Gateway(load_config(str(path)), MemoryStore()).router.state, RedisState)
    path.write_text("model_list: [{model_name: g, litellm_params: {model: mock/echo}}]\n")
    assert not isinstance(Gateway(load_config(str(path)), MemoryStore()).router.state, RedisState)


async def test_cache_kwargs_namespace_prefixes_the_keys() -> None:
    from respgate.errors import ConfigError
    from respgate.router import make_state

    settings = parse_router_settings({"redis_host": "127.0.0.1", "cache_kwargs": {"namespace": "team-x"}})
    state = make_state(settings, FakeClock(0.0))
    assert isinstance(state, RedisState) and state._key("cd", "a") == "team-x:respgate:router:cd:a"
    await state.close()
    with pytest.raises(ConfigError) as caught:
        parse_router_settings({"redis_host": "127.0.0.1", "cache_kwargs": {"namespace": 3}})
    assert caught.value.key == "router_settings.cache_kwargs.namespace"


async def test_cooldowns_alone_are_read_from_redis_at_most_once_a_second(prefix: str) -> None:
    clock = FakeClock(1_700_000_000.0)
    one = RedisState(redis_client(REDIS), clock, prefix=prefix)
    two = RedisState(redis_client(REDIS), clock, prefix=prefix)
    ids = ("a", "b")
    assert (await two.snapshot(ids, usage=False, latency=False)).cooling == {}
    assert await one.record_failure("a", 0, 30)
    assert (await two.snapshot(ids, usage=False, latency=False)).cooling == {}  # what two read 0 s ago
    assert "a" in (await two.snapshot(ids, usage=True, latency=False)).cooling  # limits always read Redis
    clock.now += 1.5
    assert 29 < (await two.snapshot(ids, usage=False, latency=False)).cooling["a"] <= 30  # Redis TTL: real time
    assert await one.record_failure("b", 0, 30)  # its own cooldown: seen at once
    assert set((await one.snapshot(ids, usage=False, latency=False)).cooling) == {"a", "b"}
    await one.close()
    await two.close()
