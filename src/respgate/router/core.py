"""The Router: which deployment serves a request, and what happens when it fails.

    choose   the group's deployments minus those cooling down, at their rpm / tpm /
             max_parallel_requests limit; session continuity (the deployment named in
             `previous_response_id`) first, else the strategy
    run      an attempt per chosen deployment: retries (another deployment at once, the same one
             after backoff or its Retry-After), cooldowns, then fallback groups by error kind

The gateway hands `run` an attempt function (prepare + call; for a stream, up to its first event),
so the router never sees provider JSON, and a stream fails over only before a byte reached the client.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from ..deployments import Deployment, ModelRegistry
from ..errors import (
    GatewayTimeoutError,
    InvalidRequestError,
    RateLimitError,
    RespgateError,
    ServiceUnavailableError,
)
from ..events import Event
from ..ids import decode_response_id
from .policy import DEPLOYMENT_FAULTS, Verdict, backoff, judge
from .redis_state import RedisState, redis_client
from .settings import RouterSettings
from .state import Clock, MemoryState, RouterState, Snapshot
from .strategies import STRATEGY_TABLE

T = TypeVar("T")
Attempt = Callable[[Deployment | None, dict[str, Any]], Awaitable[T]]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Plan:
    """A model group as the router sees it, computed once per group."""

    deployments: tuple[Deployment, ...]
    ids: tuple[str, ...]
    max_parallel: tuple[int | None, ...]
    rate_limited: bool  # some deployment has rpm or tpm
    counts_tokens: bool  # tpm limits or usage-based routing need each response's tokens


def make_state(settings: RouterSettings, clock: Clock) -> RouterState:
    if settings.redis is None:
        return MemoryState(clock)
    return RedisState(redis_client(settings.redis), clock)


class Router:
    def __init__(self, registry: ModelRegistry, settings: RouterSettings, *, state: RouterState | None = None,
                 clock: Clock = time.time, sleep: Sleep = asyncio.sleep, rng: random.Random | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.state = state if state is not None else make_state(settings, clock)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._strategy = STRATEGY_TABLE[settings.routing_strategy]
        self._wants_latency = settings.routing_strategy == "latency-based-routing"
        self._wants_usage = settings.routing_strategy.startswith("usage-based")
        self._inflight: dict[str, int] = {}
        self._plans: dict[str, _Plan] = {}
        # Off: the gateway keeps its direct path (one registry lookup), so a plain config pays nothing.
        self.engaged = settings.configured or any(
            len(group) > 1 for group in registry.groups().values()) or any(
            d.rpm or d.tpm or d.extra.get("max_parallel_requests") for d in registry.deployments)

    def takes(self, body: Any) -> bool:
        """Whether a request goes through the router: always when engaged; else only to honour its own
        `fallbacks`."""
        return self.engaged or (isinstance(body, dict) and "fallbacks" in body)

    async def close(self) -> None:
        await self.state.close()

    # -- choosing ---------------------------------------------------------------------------------------

    def _plan(self, model: str) -> _Plan:
        plan = self._plans.get(model)
        if plan is None:
            group = tuple(self.registry.group(model))
            default = self.settings.default_max_parallel_requests
            limits = tuple(_max_parallel(d, default) for d in group)
            rate_limited = any(d.rpm or d.tpm for d in group)
            plan = _Plan(group, tuple(d.id for d in group), limits, rate_limited,
                         self._wants_usage or any(d.tpm for d in group))
            self._plans[model] = plan
        return plan

    async def choose(self, model: str, previous_response_id: str | None = None,
                     exclude: frozenset[str] | set[str] = frozenset()) -> Deployment:
        """A deployment of `model` to try now; reserves it (in-flight + this minute's request count)."""
        plan = self._plan(model)
        snap = await self.state.snapshot(plan.ids, usage=plan.rate_limited or self._wants_usage,
                                         latency=self._wants_latency)
        available = [d for d, cap in zip(plan.deployments, plan.max_parallel, strict=True)
                     if d.id not in snap.cooling and not self._at_limit(d, cap, snap)]
        if not available:
            raise self._unavailable(model, plan, snap)
        fresh = [d for d in available if d.id not in exclude] or available
        chosen = _continuing(fresh, previous_response_id)
        if chosen is None:
            chosen = fresh[0] if len(fresh) == 1 else fresh[self._strategy(fresh, snap, self._inflight, self._rng)]
        self._inflight[chosen.id] = self._inflight.get(chosen.id, 0) + 1
        if plan.rate_limited or self._wants_usage:
            await self.state.add_usage(chosen.id, 1, 0)
        return chosen

    def _at_limit(self, d: Deployment, cap: int | None, snap: Snapshot) -> bool:
        if cap is not None and self._inflight.get(d.id, 0) >= cap:
            return True
        used = snap.usage.get(d.id)
        if used is None:
            return False
        return (d.rpm is not None and used.requests >= d.rpm) or (d.tpm is not None and used.tokens >= d.tpm)

    def _unavailable(self, model: str, plan: _Plan, snap: Snapshot) -> RespgateError:
        n = len(plan.deployments)
        cooling = [snap.cooling[i] for i in plan.ids if i in snap.cooling]
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
        request_fallbacks: tuple[str, ...] | None = None
        if "fallbacks" in body:
            body = dict(body)
            request_fallbacks = _request_fallbacks(body.pop("fallbacks"))
        model: str = body["model"]
        try:
            return await self._run_group(model, body, attempt, stream, tokens_of)
        except RespgateError as first:
            verdict = judge(first, self.settings)
            targets = self._fallbacks_for(model, verdict, request_fallbacks)
            if not targets:
                raise
            for group in targets:
                try:
                    return await self._run_group(group, {**body, "model": group}, attempt, stream, tokens_of)
                except RespgateError as again:
                    if judge(again, self.settings).kind not in DEPLOYMENT_FAULTS:
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

    async def _run_group(self, model: str, body: dict[str, Any], attempt: Attempt[T], stream: bool,
                         tokens_of: Callable[[T], int] | None) -> T:
        plan = self._plan(model)
        previous = body.get("previous_response_id")
        previous = previous if isinstance(previous, str) else None
        limit = self.settings.stream_timeout if stream else self.settings.timeout
        tried: set[str] = set()
        retries = 0
        while True:
            d = await self.choose(model, previous, tried)
            started = self._clock()
            held = False
            try:
                result = await _within(limit, attempt(d, body), d)
                if stream:  # latency = time to the first event; usage comes with the terminal event
                    held = True
                    await self._succeeded(d, started, 0)
                    return cast(T, _Held(result, self, d, plan.counts_tokens))
                tokens = tokens_of(result) if tokens_of is not None and plan.counts_tokens else 0
                await self._succeeded(d, started, tokens)
                return result
            except RespgateError as err:
                verdict = judge(err, self.settings)
                if verdict.blames_deployment and not self.settings.disable_cooldowns and len(plan.ids) > 1:
                    # A group's only deployment is never cooled down: refusing is worse than trying.
                    await self.state.record_failure(d.id, self.settings.allowed_fails, self.settings.cooldown_time)
                if retries >= verdict.retries:
                    raise
                tried.add(d.id)
                if tried.issuperset(plan.ids):  # nothing untried left in the group: wait, then start over
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


def _max_parallel(d: Deployment, default: int | None) -> int | None:
    value = d.extra.get("max_parallel_requests")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def _continuing(candidates: Sequence[Deployment], previous_response_id: str | None) -> Deployment | None:
    """Session continuity: the deployment that made the previous response, when it is available.
    Otherwise any deployment will do, since the gateway replays the chain from the store."""
    if previous_response_id is None:
        return None
    ref = decode_response_id(previous_response_id)
    if ref is None:
        return None
    for d in candidates:
        if d.id == ref.deployment_id:
            return d
    return None


def _request_fallbacks(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidRequestError("Invalid type for 'fallbacks': expected an array of model names.",
                                  param="fallbacks", code="invalid_type")
    return tuple(value)


class _Held:
    """A routed stream: the deployment stays in flight until the stream ends or is closed, and the
    terminal event's usage counts towards its tpm."""

    def __init__(self, events: Any, router: Router, d: Deployment, counts_tokens: bool) -> None:
        self._events: AsyncIterator[Event] = events
        self._router = router
        self._deployment = d
        self._counts_tokens = counts_tokens
        self._open = True

    def __aiter__(self) -> _Held:
        return self

    async def __anext__(self) -> Event:
        try:
            ev = await anext(self._events)
        except BaseException:
            self._done()
            raise
        if ev.is_terminal:
            self._done()
            if self._counts_tokens:
                await self._router.state.add_usage(self._deployment.id, 0, _event_tokens(ev))
        return ev

    async def aclose(self) -> None:
        self._done()
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()

    def _done(self) -> None:
        if self._open:
            self._open = False
            self._router._release(self._deployment)


def _event_tokens(ev: Event) -> int:
    response = ev.obj.get("response")
    usage = response.get("usage") if isinstance(response, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else 0


def json_tokens(raw: bytes) -> int:
    """`usage.total_tokens` of a Response serialised by the gateway (read only when tpm needs it)."""
    import orjson

    parsed = orjson.loads(raw)
    usage = parsed.get("usage") if isinstance(parsed, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else 0
