"""Limits shared by two instances through one Redis (rpm, tpm, calls in flight, budgets), and a Redis
outage that falls back to each instance's own counters with one warning."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from respgate.errors import InvalidRequestError, RateLimitError
from respgate.keys.manager import KeyManager
from respgate.keys.shared import SharedLimits
from respgate.keys.storage import MemoryStorage
from respgate.router import RedisSettings, redis_client
from test_keys_helpers import Clock, admin, call, finish, manager, new_key

REDIS = RedisSettings(host="127.0.0.1", port=6379)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[KeyManager, KeyManager]]:
    """Two instances: one key store, one Redis (a prefix of their own), one clock."""
    prefix = f"respgate:test-keys:{uuid.uuid4().hex}:"
    storage, clock = MemoryStorage(), Clock()
    managers = [manager(storage, clock, shared=SharedLimits(redis_client(REDIS), prefix=prefix)) for _ in range(2)]
    for m in managers:
        await m.start()
    yield managers[0], managers[1]
    for m in managers:
        await m.close()
    client = redis_client(REDIS)
    async for name in client.scan_iter(match=prefix + "*"):
        await client.delete(name)
    await client.aclose()


async def admitted(m: KeyManager, key: str) -> bool:
    """A call as `key` on `m` passes its limits (and is finished at once)."""
    try:
        c = await call(m, key)
    except RateLimitError:
        return False
    await finish(m, c)
    return True


async def refused(m: KeyManager, key: str) -> bool:
    try:
        await finish(m, await call(m, key))
    except (RateLimitError, InvalidRequestError):
        return True
    return False


async def test_rpm_is_counted_once_across_instances(pair: tuple[KeyManager, KeyManager]) -> None:
    one, two = pair
    key = await new_key(one, rpm_limit=3)
    await finish(one, await call(one, key))
    await finish(two, await call(two, key))
    await finish(one, await call(one, key))
    with pytest.raises(RateLimitError) as err:
        await call(two, key)
    assert "Limit type: requests" in err.value.message and int(err.value.headers["retry-after"]) >= 1


async def test_a_call_in_flight_on_one_instance_holds_the_slot_on_the_other(
        pair: tuple[KeyManager, KeyManager]) -> None:
    one, two = pair
    key = await new_key(one, max_parallel_requests=1)
    held = await call(one, key)
    with pytest.raises(RateLimitError, match="max_parallel_requests"):
        await call(two, key)
    await finish(one, held)  # the release reaches Redis from the background writer

    await eventually(lambda: admitted(two, key))


async def test_budget_and_tpm_are_shared(pair: tuple[KeyManager, KeyManager]) -> None:
    one, two = pair
    budget_key = await new_key(one, max_budget=1.0)
    await finish(one, await call(one, budget_key), cost=0.6)
    await finish(two, await call(two, budget_key), cost=0.6)
    # Each instance alone has seen 0.6: only the shared spend is over the budget.
    await eventually(lambda: refused(one, budget_key))
    with pytest.raises(InvalidRequestError) as err:
        await call(two, budget_key)
    assert err.value.type == "budget_exceeded" and "Max budget: 1.0" in err.value.message
    tpm_key = await new_key(one, tpm_limit=100)
    await finish(one, await call(one, tpm_key), tokens=60)
    await finish(two, await call(two, tpm_key), tokens=60)
    await eventually(lambda: refused(two, tpm_key))


async def test_a_redis_outage_falls_back_to_local_counters_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    m = manager(shared=SharedLimits(dead, prefix="respgate:test-keys:dead:"))
    await m.start()
    try:
        key = await new_key(m, rpm_limit=3, max_parallel_requests=2)
        with caplog.at_level(logging.WARNING, logger="respgate.keys"):
            for _ in range(3):
                await finish(m, await call(m, key))
            with pytest.raises(RateLimitError):
                await call(m, key)  # the local counter still holds the limit
        warnings = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await m.close()


async def test_concurrent_admissions_share_round_trips_and_count_exactly(
        pair: tuple[KeyManager, KeyManager]) -> None:
    one, two = pair
    key = await new_key(one, rpm_limit=25)
    assert one.shared is not None and two.shared is not None
    scripts = 0
    real = one.shared._admit

    async def counted(**kwargs: list[str]) -> object:
        nonlocal scripts
        scripts += 1
        return await real(**kwargs)

    one.shared._admit = counted  # type: ignore[assignment]
    results = await asyncio.gather(*(call(m, key) for m in (one, two) for _ in range(20)), return_exceptions=True)
    passed = [r for r in results if not isinstance(r, BaseException)]
    turned_away = [r for r in results if isinstance(r, RateLimitError)]
    assert len(passed) == 25 and len(turned_away) == 15  # judged one by one inside each batch
    assert scripts < 20  # the instance's 20 calls went in fewer scripts than calls


async def test_a_call_cancelled_while_its_admission_is_in_flight_gives_its_slot_back(
        pair: tuple[KeyManager, KeyManager]) -> None:
    one, two = pair
    key = await new_key(one, max_parallel_requests=1)
    assert one.shared is not None
    sent = asyncio.Event()
    go_on = asyncio.Event()
    real = one.shared._admit

    async def held_up(**kwargs: list[str]) -> object:
        sent.set()
        await go_on.wait()
        return await real(**kwargs)

    one.shared._admit = held_up  # type: ignore[assignment]
    pending = asyncio.create_task(call(one, key))
    await sent.wait()
    pending.cancel()  # the client went away; Redis still admits the call
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await pending

    await eventually(lambda: admitted(two, key), timeout=3.0)  # not after the 900 s a lost slot takes to expire


async def test_tokens_and_spend_written_in_sums_lose_nothing(pair: tuple[KeyManager, KeyManager]) -> None:
    one, two = pair
    key = await new_key(one, tpm_limit=1_000_000, max_budget=1000.0)
    calls = await asyncio.gather(*(call(m, key) for m in (one, two) for _ in range(30)))
    await asyncio.gather(*(finish(m, c, cost=0.25, tokens=10)
                           for m, c in zip([one] * 30 + [two] * 30, calls, strict=True)))
    assert one.shared is not None
    for m in (one, two):
        assert m.shared is not None
        await asyncio.wait_for(m.shared._idle.wait(), 5)
    client = redis_client(REDIS)
    try:
        names = [name async for name in client.scan_iter(match=one.shared._prefix + "*")]
        tpm = [n for n in names if b":tpm:" in n]
        spend = [n for n in names if b":spend:" in n]
        assert len(tpm) == 1 and int(await client.get(tpm[0])) == 600
        assert len(spend) == 1 and float(await client.get(spend[0])) == pytest.approx(15.0)
    finally:
        await client.aclose()


async def test_a_batch_of_calls_from_two_keys_of_one_team_holds_every_limit(
        pair: tuple[KeyManager, KeyManager]) -> None:
    one, two = pair
    team = await admin(one).new_team({"rpm_limit": 10})
    first = await new_key(one, team_id=team["team_id"], rpm_limit=4)
    second = await new_key(one, team_id=team["team_id"], rpm_limit=8)
    results = await asyncio.gather(*(call(m, k) for m in (one, two) for k in (first, second) for _ in range(6)),
                                   return_exceptions=True)
    passed = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, RateLimitError) for r in results if isinstance(r, BaseException))
    tokens = [(await one.verify(k)).token for k in (first, second)]
    by_key = [sum(1 for c in passed if c.principal.token == token) for token in tokens]
    assert len(passed) == 10 and by_key == [4, 6]  # the team's 10 are shared, each key within its own
