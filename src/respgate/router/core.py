"""The Router: which deployment serves a request, and what happens when it fails.

    choose   the deployments of the group the request may use (its tags, with tag filtering; with
             pre-call checks, a context window its input fits), minus those cooling down or at their
             rpm / tpm / max_parallel_requests limit; session continuity (the deployment named in
             `previous_response_id`) first, else the strategy
    run      an attempt per chosen deployment: retries (another deployment at once, the same one
             after backoff or its Retry-After), cooldowns, then fallback groups by error kind

The gateway hands `run` an attempt function (prepare + call; for a stream, up to its first event),
so the router never sees provider JSON, and a stream fails over only before a byte reached the client.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from ..deployments import Deployment, ModelRegistry
from ..errors import (
    GatewayTimeoutError,
    InvalidRequestError,
    RateLimitError,
    RespgateError,
    ServiceUnavailableError,
)
from ..ids import decode_response_id
from .held import HeldStream
from .options import estimate_tokens, has_options, split_options
from .plan import Plan, Pool, Prices, token_cost
from .policy import DEPLOYMENT_FAULTS, Verdict, backoff, judge
from .redis_state import RedisState, redis_client
from .settings import RouterSettings
from .state import Clock, MemoryState, RouterState, Snapshot
from .strategies import STRATEGY_TABLE

T = TypeVar("T")
_DRAWS = 3  # simple-shuffle: weighted draws tried before the usable deployments are listed
Attempt = Callable[[Deployment | None, dict[str, Any]], Awaitable[T]]
Sleep = Callable[[float], Awaitable[None]]


def make_state(settings: RouterSettings, clock: Clock) -> RouterState:
    if settings.redis is None:
        return MemoryState(clock)
    prefix = f"{settings.redis.namespace}:respgate:router:" if settings.redis.namespace else "respgate:router:"
    return RedisState(redis_client(settings.redis), clock, prefix=prefix)


class Router:
    def __init__(self, registry: ModelRegistry, settings: RouterSettings, *, state: RouterState | None = None,
                 clock: Clock = time.time, sleep: Sleep = asyncio.sleep, rng: random.Random | None = None,
                 prices: Prices = token_cost) -> None:
        self.registry = registry
        self.settings = settings
        self.state = state if state is not None else make_state(settings, clock)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._prices = prices
        self._strategy = STRATEGY_TABLE[settings.routing_strategy]
        self._wants_latency = settings.routing_strategy == "latency-based-routing"
        self._wants_usage = settings.routing_strategy.startswith("usage-based")
        self._wants_costs = settings.routing_strategy == "cost-based-routing"
        self._shuffles = settings.routing_strategy == "simple-shuffle"
        self._least_busy = settings.routing_strategy == "least-busy"
        self._inflight: dict[str, int] = {}
        self._plans: dict[str, Plan] = {}
        # Off: the gateway keeps its direct path (one registry lookup), so a plain config pays nothing.
        self.engaged = settings.configured or any(
            len(group) > 1 for group in registry.groups().values()) or any(
            d.rpm or d.tpm or d.extra.get("max_parallel_requests") for d in registry.deployments)

    def takes(self, body: Any) -> bool:
        """Whether a request goes through the router: always when engaged; else only to honour its own
        `fallbacks` or to take out its `tags`, which validation would refuse."""
        # Inline on purpose: a plain config asks this on every request.
        return self.engaged or (type(body) is dict and ("fallbacks" in body or "tags" in body or (
            "metadata" in body and has_options(body))))

    async def close(self) -> None:
        await self.state.close()

    # -- choosing ---------------------------------------------------------------------------------------

    def plan(self, model: str) -> Plan:
        """The group `model` as the router sees it (NotFoundError for an unknown group)."""
        plan = self._plans.get(model)
        if plan is None:
            plan = Plan(model, self.registry.group(model), wants_usage=self._wants_usage,
                        default_max_parallel=self.settings.default_max_parallel_requests)
            self._plans[model] = plan
        return plan

    async def choose(self, model: str, previous_response_id: str | None = None,
                     exclude: frozenset[str] | set[str] = frozenset(), *, tags: tuple[str, ...] = (),
                     tokens: int | None = None) -> Deployment:
        """A deployment of `model` to try now; reserves it (in-flight + this minute's request count).
        `tags` and `tokens` (the input's estimated size) narrow the group as `run` does."""
        plan = self.plan(model)
        d, _ = await self._pick(plan, self._pool(plan, tags, tokens), _made_by(previous_response_id), exclude)
        return d

    def _pool(self, plan: Plan, tags: tuple[str, ...], tokens: int | None) -> Pool:
        """The deployments this request may use at all, whatever their state."""
        pool = plan.everyone
        if self.settings.enable_tag_filtering:
            tagged = plan.tag_pool(tags, self.settings.tag_filtering_match_any)
            if tagged is None:
                shown = ", ".join(tags[:5]) + (", ..." if len(tags) > 5 else "")
                raise InvalidRequestError(f"No deployment of model `{plan.name}` serves the tags of this request "
                                          f"({shown}).", param="tags", code="no_deployments_with_tag")
            pool = tagged
        if tokens is not None and plan.checks_windows:
            pool = plan.window_pool(pool, tokens)
            if not pool.members:
                raise InvalidRequestError(
                    f"Your input (about {tokens} tokens) exceeds the context window of every deployment of model "
                    f"`{plan.name}`. Please adjust your input and try again.", param="input",
                    code="context_length_exceeded")
        return pool

    async def _pick(self, plan: Plan, pool: Pool, previous: str | None,
                    exclude: frozenset[str] | set[str]) -> tuple[Deployment, bool]:
        """The deployment for the next attempt, reserved; and whether another untried one was available."""
        snap = await self.state.snapshot(plan.ids, usage=plan.reads_usage, latency=self._wants_latency)
        i, more = self._select(plan, pool, previous, exclude, snap)
        d = plan.deployments[i]
        self._inflight[d.id] = self._inflight.get(d.id, 0) + 1
        if plan.reads_usage:
            await self.state.add_usage(d.id, 1, 0)
        return d, more

    def _select(self, plan: Plan, pool: Pool, previous: str | None, exclude: frozenset[str] | set[str],
                snap: Snapshot) -> tuple[int, bool]:
        filtering = bool(snap.cooling) or plan.limited
        if previous is not None:  # session continuity, when that deployment can take the request
            i = plan.index.get(previous)
            if i is not None and i in pool and plan.ids[i] not in exclude and (
                    not filtering or self._usable(plan, i, snap)):
                return i, len(pool.members) > 1
        if not exclude and len(pool.members) > 1:
            drawn = self._draw(plan, pool, snap, filtering)
            if drawn is not None:
                return drawn, True
        if filtering:
            usable = [i for i in pool.members if self._usable(plan, i, snap)]
            if not usable:
                raise self._unavailable(plan, pool, snap)
            if len(usable) != len(pool.members):
                pool = Pool(usable)
        more = len(pool.members) > 1
        if exclude:
            fresh = [i for i in pool.members if plan.ids[i] not in exclude]
            more = len(fresh) > 1
            if fresh and len(fresh) != len(pool.members):
                pool = Pool(fresh)
        if len(pool.members) == 1:
            return pool.members[0], more
        if self._wants_costs:
            plan.refresh_costs(self._clock(), self._prices)
        return self._strategy(plan, pool, snap, self._inflight, self._rng), more

    def _draw(self, plan: Plan, pool: Pool, snap: Snapshot, filtering: bool) -> int | None:
        """A few random draws before the whole pool is filtered, for strategies where that gives the same
        answer: a big group with some deployments cooling down or at their limit costs a draw or two."""
        if self._shuffles:
            # A weighted draw from the whole pool, kept when usable, is a weighted draw from the usable ones.
            for _ in range(_DRAWS):
                i = pool.weighted_pick(plan.weights, self._rng)
                if not filtering or self._usable(plan, i, snap):
                    return i
        elif self._least_busy:
            # A usable deployment with nothing in flight is among the least busy; least_busy draws the same way.
            members, ids, inflight = pool.members, plan.ids, self._inflight
            for _ in range(_DRAWS if len(inflight) < len(members) else 0):
                i = members[self._rng.randrange(len(members))]
                if ids[i] not in inflight and (not filtering or self._usable(plan, i, snap)):
                    return i
        return None

    def _usable(self, plan: Plan, i: int, snap: Snapshot) -> bool:
        id_ = plan.ids[i]
        if id_ in snap.cooling:
            return False
        cap = plan.max_parallel[i]
        if cap is not None and self._inflight.get(id_, 0) >= cap:
            return False
        used = snap.usage.get(id_)
        if used is None:
            return True
        d = plan.deployments[i]
        return not ((d.rpm is not None and used.requests >= d.rpm) or (d.tpm is not None and used.tokens >= d.tpm))

    def _unavailable(self, plan: Plan, pool: Pool, snap: Snapshot) -> RespgateError:
        model, n = plan.name, len(pool.members)
        cooling = [left for i in pool.members if (left := snap.cooling.get(plan.ids[i])) is not None]
        if len(cooling) == n:
            wait = max(1, math.ceil(min(cooling)))
            return ServiceUnavailableError(
                f"No deployment of model `{model}` is available: all {n} are cooling down after failures. "
                f"Try again in {wait}s.", code="no_healthy_deployments", headers={"Retry-After": str(wait)})
        wait = max(1, math.ceil(60 - self._clock() % 60))
        return RateLimitError(
            f"Every deployment of model `{model}` is at its rpm / tpm / max_parallel_requests limit"
            + (f" or cooling down ({len(cooling)} of {n})" if cooling else "") + f". Try again in {wait}s.",
            headers={"Retry-After": str(wait)})

    def _release(self, d: Deployment) -> None:
        left = self._inflight.get(d.id, 0) - 1
        if left > 0:
            self._inflight[d.id] = left
        else:
            self._inflight.pop(d.id, None)

    async def _succeeded(self, d: Deployment, started: float, tokens: int) -> None:
        if self._wants_latency:
            await self.state.add_latency(d.id, max(self._clock() - started, 0.0))
        if tokens:
            await self.state.add_usage(d.id, 0, tokens)

    # -- running ----------------------------------------------------------------------------------------

    async def run(self, body: Any, attempt: Attempt[T], *, stream: bool = False,
                  tokens_of: Callable[[T], int] | None = None) -> T:
        """`attempt(deployment, body)` until one succeeds, by the retry and fallback rules. A streaming
        attempt returns the event iterator once its first event arrived (it is held in flight to its end)."""
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
            return await attempt(None, body)  # the gateway's validation names what is wrong
        body, options = split_options(body)
        if not self.engaged and options.fallbacks is None:
            return await attempt(None, body)  # a plain config: the tags only had to leave the body
        model: str = body["model"]
        tokens = estimate_tokens(body) if self.settings.enable_pre_call_checks else None
        try:
            return await self._run_group(model, body, options.tags, tokens, attempt, stream, tokens_of)
        except RespgateError as first:
            verdict = judge(first, self.settings, model)
            targets = self._fallbacks_for(model, verdict, options.fallbacks)
            if not targets:
                raise
            for group in targets:
                try:
                    return await self._run_group(group, {**body, "model": group}, options.tags, tokens, attempt,
                                                 stream, tokens_of)
                except RespgateError as again:
                    if judge(again, self.settings, group).kind not in DEPLOYMENT_FAULTS:
                        raise
            raise

    def _fallbacks_for(self, model: str, verdict: Verdict, requested: tuple[str, ...] | None) -> tuple[str, ...]:
        s = self.settings
        if verdict.kind == "context_window":
            targets = s.context_window_fallbacks.get(model, ())
        elif verdict.kind == "content_policy":
            targets = s.content_policy_fallbacks.get(model, ())
        elif verdict.kind in DEPLOYMENT_FAULTS:
            targets = requested if requested is not None else (s.fallbacks.get(model) or s.default_fallbacks)
        else:
            return ()
        return tuple(g for g in targets if g != model)[: s.max_fallbacks]

    async def _run_group(self, model: str, body: dict[str, Any], tags: tuple[str, ...], tokens: int | None,
                         attempt: Attempt[T], stream: bool, tokens_of: Callable[[T], int] | None) -> T:
        plan = self.plan(model)
        pool = self._pool(plan, tags, tokens)
        previous = _made_by(body.get("previous_response_id"))
        limit = self.settings.stream_timeout if stream else self.settings.timeout
        tried: set[str] = set()
        retries = 0
        while True:
            d, more = await self._pick(plan, pool, previous, tried)
            started = self._clock()
            held = False
            try:
                result = await _within(limit, attempt(d, body), d)
                if stream:  # latency = time to the first event; usage comes with the terminal event
                    held = True
                    await self._succeeded(d, started, 0)
                    count = functools.partial(self.state.add_usage, d.id, 0) if plan.counts_tokens else None
                    return cast(T, HeldStream(result, functools.partial(self._release, d), count))
                tokens_used = tokens_of(result) if tokens_of is not None and plan.counts_tokens else 0
                await self._succeeded(d, started, tokens_used)
                return result
            except RespgateError as err:
                verdict = judge(err, self.settings, model)
                if verdict.blames_deployment and not self.settings.disable_cooldowns and len(plan.ids) > 1:
                    # A group's only deployment is never cooled down: refusing is worse than trying.
                    await self.state.record_failure(d.id, self.settings.allowed_fails, self.settings.cooldown_time)
                if retries >= verdict.retries:
                    raise
                tried.add(d.id)
                if not more:  # nothing untried could take it: wait, then start over
                    await self._sleep(backoff(retries, err, self.settings, self._rng.random()))
                    tried.clear()
                retries += 1
            finally:
                if not held:
                    self._release(d)


async def _within(limit: float | None, call: Awaitable[T], d: Deployment) -> T:
    if limit is None:
        return await call
    try:
        async with asyncio.timeout(limit):
            return await call
    except TimeoutError:
        raise GatewayTimeoutError(f"The deployment for model `{d.model_name}` did not answer within "
                                  f"{limit:g}s.") from None


def _made_by(previous_response_id: Any) -> str | None:
    """Session continuity: the id of the deployment that made the previous response. When it cannot take
    the request, any deployment will do, since the gateway replays the chain from the store."""
    if not isinstance(previous_response_id, str):
        return None
    ref = decode_response_id(previous_response_id)
    return ref.deployment_id if ref is not None else None
