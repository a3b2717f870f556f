"""Limits shared by every instance through Redis: rpm / tpm per minute, calls in flight, and the
spend budgets are checked against.

Admission is one Lua script (one round trip, atomic): for each entity of the call (key, team, user,
customer) it checks the budget against the shared spend, the minute's requests and tokens, and the
calls in flight; only when all pass does it count the request and add the call to the in-flight set.
Calls in flight are a sorted set of call ids scored by start time, so a slot whose release was lost
(an instance died, Redis blinked) frees itself after `slot_ttl` seconds instead of leaking.

What ends a call (release the slot, add tokens, add spend) is queued and written by one background
task in pipelined batches: the request path never waits for Redis after admission. Spend for a
period is seeded from the caller's own view the first time it is added, so a budget survives Redis
restarts as well as the database's last flush allows.

Any Redis failure switches to this instance's local counters for `retry_interval` seconds, with
one warning (and one when Redis is back): limits then hold per instance, requests never fail for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .records import Entity

log = logging.getLogger("respgate.keys")
_WINDOW_TTL = 120  # seconds a minute's counter lives: a little longer than its minute
_SPEND_TTL = 7 * 86400  # a spend without a budget period is re-seeded from the database after this
_BATCH = 512

_ADMIT = """
local n = #KEYS / 4
local now = tonumber(ARGV[2])
local age = tonumber(ARGV[3])
for i = 0, n - 1 do
  local k, a = i * 4, 4 + i * 5
  local budget = tonumber(ARGV[a + 4])
  if budget >= 0 then
    local spent = tonumber(redis.call('GET', KEYS[k + 4]) or ARGV[a + 5])
    if spent >= budget then return {i + 1, 'budget', tostring(spent)} end
  end
  local rpm = tonumber(ARGV[a + 1])
  if rpm >= 0 then
    local used = tonumber(redis.call('GET', KEYS[k + 1]) or '0')
    if used >= rpm then return {i + 1, 'rpm', tostring(used)} end
  end
  local tpm = tonumber(ARGV[a + 2])
  if tpm >= 0 then
    local used = tonumber(redis.call('GET', KEYS[k + 2]) or '0')
    if used >= tpm then return {i + 1, 'tpm', tostring(used)} end
  end
  local par = tonumber(ARGV[a + 3])
  if par >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now - age)
    local used = redis.call('ZCARD', KEYS[k + 3])
    if used >= par then return {i + 1, 'parallel', tostring(used)} end
  end
end
for i = 0, n - 1 do
  local k, a = i * 4, 4 + i * 5
  if tonumber(ARGV[a + 1]) >= 0 then
    redis.call('INCR', KEYS[k + 1])
    redis.call('EXPIRE', KEYS[k + 1], ARGV[1])
  end
  if tonumber(ARGV[a + 3]) >= 0 then
    redis.call('ZADD', KEYS[k + 3], now, ARGV[4])
    redis.call('EXPIRE', KEYS[k + 3], ARGV[3])
  end
end
return {0}
"""

Refusal = tuple[Entity, str, float]  # the entity, which limit ("budget" | "rpm" | "tpm" | "parallel"), its value


class SharedUnavailable(Exception):
    """Redis did not answer: use the local counters."""


def _limit(value: float | None) -> str:
    return "-1" if value is None else repr(value)


class SharedLimits:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "respgate:keys:", slot_ttl: float = 900.0,
                 retry_interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._redis = client
        self._prefix = prefix
        self._slot_ttl = int(slot_ttl)
        self._retry_interval = retry_interval
        self._clock = clock
        self._down_until: float | None = None
        self._admit = client.register_script(_ADMIT)
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return self._down_until is None or self._clock() >= self._down_until

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="respgate-keys-redis-writer")

    async def close(self) -> None:
        if self._writer is not None:
            await self._drain()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    def _failed(self, error: BaseException) -> None:
        if self._down_until is None:
            log.warning("keys: Redis is unreachable (%s); rate limits and budgets use this instance's "
                        "counters until it is back", type(error).__name__)
        self._down_until = self._clock() + self._retry_interval

    def _recovered(self) -> None:
        if self._down_until is not None:
            log.warning("keys: Redis is reachable again; limits are shared once more")
            self._down_until = None

    # -- key names -------------------------------------------------------------------------------------

    def _k(self, what: str, e: Entity, suffix: str = "") -> str:
        return f"{self._prefix}{what}:{e.kind}:{e.id}{suffix}"

    def spend_key(self, e: Entity) -> str:
        return self._k("spend", e, f":{int(e.marker * 1000)}")

    # -- admission -------------------------------------------------------------------------------------

    async def admit(self, entities: Sequence[Entity], minute: int, now: float, member: str) -> Refusal | None:
        """Check and count one call; raises SharedUnavailable when Redis does not answer."""
        keys: list[str] = []
        args: list[str] = [str(_WINDOW_TTL), repr(now), str(self._slot_ttl), member]
        suffix = f":{minute}"
        for e in entities:
            keys += [self._k("rpm", e, suffix), self._k("tpm", e, suffix), self._k("par", e), self.spend_key(e)]
            args += [_limit(e.rpm_limit), _limit(e.tpm_limit), _limit(e.max_parallel), _limit(e.max_budget),
                     repr(e.spend)]
        try:
            reply = await self._admit(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error)
            raise SharedUnavailable from None
        self._recovered()
        index = int(reply[0])
        if index == 0:
            return None
        what = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
        return entities[index - 1], what, float(reply[2])

    # -- what ends a call (queued) -----------------------------------------------------------------------

    def release(self, entities: Sequence[Entity], member: str) -> None:
        for e in entities:
            self._queue.put_nowait(("zrem", self._k("par", e), member))

    def add_tokens(self, e: Entity, minute: int, tokens: int) -> None:
        self._queue.put_nowait(("tokens", self._k("tpm", e, f":{minute}"), tokens))

    def add_spend(self, e: Entity, seed: float, amount: float, ttl: float | None) -> None:
        """`seed` is the caller's view of the period's spend before `amount`, used if Redis has none."""
        self._queue.put_nowait(("spend", self.spend_key(e), seed, amount, int(ttl or _SPEND_TTL)))

    def forget_spend(self, e: Entity) -> None:
        """An admin set the spend: the next addition re-seeds from the new value."""
        self._queue.put_nowait(("del", self.spend_key(e)))

    async def _drain(self) -> None:
        """Wait (a little) for what is queued to be written."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self._queue.join()

    async def _write_loop(self) -> None:
        while True:
            ops = [await self._queue.get()]
            while len(ops) < _BATCH and not self._queue.empty():
                ops.append(self._queue.get_nowait())
            try:
                if self.available:  # else local counters took over; these belong to calls before the outage
                    await self._write(ops)
            finally:
                for _ in ops:
                    self._queue.task_done()

    async def _write(self, ops: list[tuple[Any, ...]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for op in ops:
            if op[0] == "zrem":
                pipe.zrem(op[1], op[2])
            elif op[0] == "tokens":
                pipe.incrby(op[1], op[2])
                pipe.expire(op[1], _WINDOW_TTL)
            elif op[0] == "spend":
                pipe.set(op[1], repr(op[2]), nx=True, ex=op[4])
                pipe.incrbyfloat(op[1], op[3])
                pipe.expire(op[1], op[4])
            else:
                pipe.delete(op[1])
        try:
            await pipe.execute()
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error)
