"""Limits shared by every instance through Redis: rpm / tpm per minute, calls in flight, and the
spend budgets are checked against.

Admission is one Lua script (atomic): for each entity of a call (key, team, user, customer) it checks
the budget against the shared spend, the minute's requests and tokens, and the calls in flight; only
when all pass does it count the request and add the call to the in-flight set. The calls that arrive
while a script is in flight wait and go together in the next one (each still judged in turn, as if
sent alone): under load one round trip admits many calls, since redis-py's per-command work, not
Redis, is what a round trip costs this process. Calls in flight are a sorted set of call ids scored by
start time, so a slot whose release was lost (an instance died, Redis blinked) frees itself after
`slot_ttl` seconds instead of leaking.

What ends a call (release the slot, add tokens, add spend) is summed in memory per Redis key and
written by one background task in pipelined batches: the request path never waits for Redis after
admission, and a busy key costs a few commands per batch, not per call. Spend for a period is seeded
from the caller's own view the first time it is added, so a budget survives Redis restarts as well as
the database's last flush allows.

Any Redis failure switches to this instance's local counters for `retry_interval` seconds, with
one warning (and one when Redis is back): limits then hold per instance, requests never fail for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .records import Entity

log = logging.getLogger("respgate.keys")
_WINDOW_TTL = 120  # seconds a minute's counter lives: a little longer than its minute
_SPEND_TTL = 7 * 86400  # a spend without a budget period is re-seeded from the database after this
_ADMIT_BATCH = 256  # calls per admission script at most

# ARGV: window ttl, slot ttl, the number of entities, then per entity its rpm, tpm, parallel and budget
# limits (-1: none) and the caller's view of its spend, then per call its entity count, now, its id and
# its entities' indexes (from 0). KEYS: per entity its rpm, tpm, in-flight set and spend. Each entity
# appears once however many calls of the batch it is in. Returns per call {0} (admitted) or
# {which of its entities, the limit, its value}.
_ADMIT = """
local out, c = {}, 0
local age = tonumber(ARGV[2])
local a = 3 + tonumber(ARGV[3]) * 5
while a < #ARGV do
  local n, now, member = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  local refusal = nil
  for i = 1, n do
    local e = tonumber(ARGV[a + 3 + i])
    local ki, ai = e * 4, 3 + e * 5
    local budget = tonumber(ARGV[ai + 4])
    if budget >= 0 then
      local spent = tonumber(redis.call('GET', KEYS[ki + 4]) or ARGV[ai + 5])
      if spent >= budget then refusal = {i, 'budget', tostring(spent)} break end
    end
    local rpm = tonumber(ARGV[ai + 1])
    if rpm >= 0 then
      local used = tonumber(redis.call('GET', KEYS[ki + 1]) or '0')
      if used >= rpm then refusal = {i, 'rpm', tostring(used)} break end
    end
    local tpm = tonumber(ARGV[ai + 2])
    if tpm >= 0 then
      local used = tonumber(redis.call('GET', KEYS[ki + 2]) or '0')
      if used >= tpm then refusal = {i, 'tpm', tostring(used)} break end
    end
    local par = tonumber(ARGV[ai + 3])
    if par >= 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[ki + 3], '-inf', now - age)
      local used = redis.call('ZCARD', KEYS[ki + 3])
      if used >= par then refusal = {i, 'parallel', tostring(used)} break end
    end
  end
  if refusal == nil then
    for i = 1, n do
      local e = tonumber(ARGV[a + 3 + i])
      local ki, ai = e * 4, 3 + e * 5
      if tonumber(ARGV[ai + 1]) >= 0 then
        redis.call('INCR', KEYS[ki + 1])
        redis.call('EXPIRE', KEYS[ki + 1], ARGV[1])
      end
      if tonumber(ARGV[ai + 3]) >= 0 then
        redis.call('ZADD', KEYS[ki + 3], now, member)
        redis.call('EXPIRE', KEYS[ki + 3], ARGV[2])
      end
    end
    refusal = {0}
  end
  c = c + 1
  out[c] = refusal
  a = a + 3 + n
end
return out
"""

Refusal = tuple[Entity, str, float]  # the entity, which limit ("budget" | "rpm" | "tpm" | "parallel"), its value


class SharedUnavailable(Exception):
    """Redis did not answer: use the local counters."""


def _limit(value: float | None) -> str:
    return "-1" if value is None else repr(value)


@dataclass
class _Admission:
    entities: Sequence[Entity]
    keys: list[tuple[str, str, str, str]]  # per entity: its rpm, tpm, in-flight and spend keys
    limits: list[tuple[str, str, str, str, str]]  # per entity: its limits and spend, as the script reads them
    now: str
    member: str
    future: asyncio.Future[Refusal | None]


@dataclass
class _Spend:
    seed: float  # the caller's view before the first amount, used if Redis has none
    amount: float = 0.0
    ttl: int = _SPEND_TTL


@dataclass
class _Pending:
    """What ends calls, summed per Redis key until the writer takes it."""
    released: dict[str, list[str]] = field(default_factory=dict)  # in-flight set -> call ids
    tokens: dict[str, int] = field(default_factory=dict)
    spend: dict[str, _Spend] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.released or self.tokens or self.spend or self.forgotten)


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
        self._admissions: list[_Admission] = []
        self._admitter: asyncio.Task[None] | None = None  # while running, new calls wait for its next script
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing pending and nothing being written
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return self._down_until is None or self._clock() >= self._down_until

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="respgate-keys-redis-writer")

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(TimeoutError):  # wait (a little) for what is pending to be written
                async with asyncio.timeout(2.0):
                    await self._idle.wait()
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
        suffix = f":{minute}"
        keys = [(self._k("rpm", e, suffix), self._k("tpm", e, suffix), self._k("par", e), self.spend_key(e))
                for e in entities]
        limits = [(_limit(e.rpm_limit), _limit(e.tpm_limit), _limit(e.max_parallel), _limit(e.max_budget),
                   repr(e.spend)) for e in entities]
        future: asyncio.Future[Refusal | None] = asyncio.get_running_loop().create_future()
        self._admissions.append(_Admission(entities, keys, limits, repr(now), member, future))
        if self._admitter is None or self._admitter.done():
            self._admitter = asyncio.get_running_loop().create_task(self._admit_waiting())
        return await future

    async def _admit_waiting(self) -> None:
        """Send the waiting calls' admissions, a script at a time, until none wait."""
        while self._admissions:
            batch = [call for call in self._admissions[:_ADMIT_BATCH] if not call.future.cancelled()]
            del self._admissions[:_ADMIT_BATCH]
            if batch:
                await self._admit_batch(batch)

    async def _admit_batch(self, batch: list[_Admission]) -> None:
        index: dict[tuple[str, str, str, str], str] = {}  # an entity's keys -> its index in the script
        keys: list[str] = []
        limits: list[str] = []
        calls: list[str] = []
        for call in batch:
            calls += (str(len(call.keys)), call.now, call.member)
            for names, values in zip(call.keys, call.limits, strict=True):
                i = index.get(names)
                if i is None:
                    i = index[names] = str(len(index))
                    keys += names
                    limits += values
                calls.append(i)
        args = [str(_WINDOW_TTL), str(self._slot_ttl), str(len(index)), *limits, *calls]
        try:
            replies = await self._admit(keys=keys, args=args)
            self._recovered()
            for call, reply in zip(batch, replies, strict=True):
                self._answer(call, reply)
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error)
        except Exception as error:  # a bug here must not leave calls waiting for ever
            log.error("keys: Redis admission failed: %s", type(error).__name__, exc_info=error)
        finally:
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(SharedUnavailable())

    def _answer(self, call: _Admission, reply: list[bytes | int | str]) -> None:
        index = int(reply[0])
        if index == 0:
            if call.future.cancelled():  # its caller is gone: give back the slots it would have held
                self.release([e for e in call.entities if e.max_parallel is not None], call.member)
            else:
                call.future.set_result(None)
            return
        if call.future.cancelled():
            return
        what = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
        call.future.set_result((call.entities[index - 1], what, float(reply[2])))

    # -- what ends a call (summed, written in the background) ----------------------------------------------

    def _changed(self) -> None:
        self._idle.clear()
        self._wake.set()

    def release(self, entities: Sequence[Entity], member: str) -> None:
        for e in entities:
            self._pending.released.setdefault(self._k("par", e), []).append(member)
        if entities:
            self._changed()

    def add_tokens(self, e: Entity, minute: int, tokens: int) -> None:
        key = self._k("tpm", e, f":{minute}")
        tokens_by_key = self._pending.tokens
        tokens_by_key[key] = tokens_by_key.get(key, 0) + tokens
        self._changed()

    def add_spend(self, e: Entity, seed: float, amount: float, ttl: float | None) -> None:
        """`seed` is the caller's view of the period's spend before `amount`, used if Redis has none."""
        key = self.spend_key(e)
        pending = self._pending.spend.get(key)
        if pending is None:
            pending = self._pending.spend[key] = _Spend(seed)
        pending.amount += amount
        pending.ttl = int(ttl or _SPEND_TTL)
        self._changed()

    def forget_spend(self, e: Entity) -> None:
        """An admin set the spend: the next addition re-seeds from the new value."""
        key = self.spend_key(e)
        self._pending.spend.pop(key, None)  # the admin's value replaces what was added before it
        self._pending.forgotten.add(key)
        self._changed()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, _Pending()
            if pending and self.available:  # else local counters took over; these belong to calls before the outage
                await self._write(pending)
            if not self._pending:
                self._idle.set()

    async def _write(self, pending: _Pending) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key, members in pending.released.items():
            pipe.zrem(key, *members)
        for key, tokens in pending.tokens.items():
            pipe.incrby(key, tokens)
            pipe.expire(key, _WINDOW_TTL)
        if pending.forgotten:
            pipe.delete(*pending.forgotten)
        for key, spend in pending.spend.items():
            pipe.set(key, repr(spend.seed), nx=True, ex=spend.ttl)
            pipe.incrbyfloat(key, spend.amount)
            pipe.expire(key, spend.ttl)
        try:
            await pipe.execute()
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error)
