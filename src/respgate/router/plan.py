"""A model group as the router sees it: made once per group, so a routing decision only indexes into it.

`Plan` holds per-deployment facts in parallel tuples (ids, limits, shuffle weights, tags, context
windows, prices). `Pool` is a subset of a plan's deployments (by index) that a request may use: the
whole group, the members its tags select, or those whose context window fits its input. Pools
for the whole group and for each tag set are kept, with their cumulative shuffle weights and their
cheapest members, so a 100-deployment group costs a bisect, not a loop, per decision.
"""

from __future__ import annotations

import bisect
import logging
import math
import random
from collections.abc import Callable, Sequence
from typing import Any, Final

from ..deployments import Deployment
from ..truncation import context_window

log = logging.getLogger("respgate.router")

DEFAULT_TAG: Final = "default"  # LiteLLM: such deployments take the requests no other tag selects
_TAG_POOLS_LIMIT: Final = 1024  # tag sets come from clients: remember a bounded number of them
PRICE_REFRESH: Final = 300.0  # seconds; the price table can change with the date or the hour

Prices = Callable[[Deployment], float | None]


def static_weight(d: Deployment) -> float | None:
    """LiteLLM's simple-shuffle weight: `weight`, else `rpm`, else `tpm`; None when none is set."""
    for value in (d.extra.get("weight"), d.rpm, d.tpm):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def deployment_tags(d: Deployment) -> frozenset[str]:
    """`litellm_params.tags`: a list of strings (a lone string is one tag); anything else is ignored."""
    raw = d.extra.get("tags")
    if raw is None:
        return frozenset()
    if isinstance(raw, str):
        return frozenset((raw,))
    if isinstance(raw, list | tuple) and all(isinstance(t, str) for t in raw):
        return frozenset(raw)
    log.warning("deployment %s: litellm_params.tags is not a list of strings; it is ignored", d.id)
    return frozenset()


def token_cost(d: Deployment) -> float | None:
    """USD per input token + per output token (LiteLLM's cost-based measure); None when unknown."""
    from ..spend.prices import token_prices  # the price table loads only for cost-based routing

    prices = token_prices(d)
    return None if prices is None else prices.input + prices.output


class Pool:
    """Some of a plan's deployments, by index, with what strategies read from them made once."""

    __slots__ = ("_cheapest", "_cumulative", "_members_set", "_subsets", "members")

    def __init__(self, members: Sequence[int]) -> None:
        self.members: tuple[int, ...] = tuple(members)
        self._cumulative: list[float] | None = None
        self._members_set: frozenset[int] | None = None
        self._cheapest: tuple[int, tuple[int, ...]] | None = None  # (prices version, indexes)
        self._subsets: dict[int, Pool] = {}  # sub-pools by key (Plan.window_pool: by window size)

    def __contains__(self, index: int) -> bool:
        if self._members_set is None:
            self._members_set = frozenset(self.members)
        return index in self._members_set

    def weighted_pick(self, weights: tuple[float, ...], rng: random.Random) -> int:
        """A member drawn with probability weight / total (uniform when the weights add up to 0)."""
        cumulative = self._cumulative
        if cumulative is None:
            total = 0.0
            cumulative = []
            for i in self.members:
                total += weights[i]
                cumulative.append(total)
            self._cumulative = cumulative
        total = cumulative[-1]
        if total <= 0:
            return self.members[rng.randrange(len(self.members))]
        at = bisect.bisect_right(cumulative, rng.random() * total)
        return self.members[min(at, len(self.members) - 1)]

    def subset(self, key: int, members: Callable[[], list[int]]) -> Pool:
        """A sub-pool made once per `key` (its members are `members()`), kept with this pool."""
        found = self._subsets.get(key)
        if found is None:
            found = self._subsets[key] = Pool(members())
        return found

    def cheapest(self, costs: tuple[float, ...], version: int) -> tuple[int, ...]:
        cached = self._cheapest
        if cached is None or cached[0] != version:
            best = min(costs[i] for i in self.members)
            cached = self._cheapest = (version, tuple(i for i in self.members if costs[i] == best))
        return cached[1]


class Plan:
    __slots__ = ("checks_windows", "costs", "costs_until", "costs_version", "counts_tokens", "defaults",
                 "deployments", "everyone", "ids", "index", "limited", "max_parallel", "name", "rate_limited",
                 "reads_usage", "tag_pools", "tags", "weights", "window_sizes", "windows")

    def __init__(self, name: str, group: Sequence[Deployment], *, default_max_parallel: int | None,
                 wants_usage: bool) -> None:
        self.name = name
        self.deployments: tuple[Deployment, ...] = tuple(group)
        self.ids: tuple[str, ...] = tuple(d.id for d in group)
        self.index: dict[str, int] = {d.id: i for i, d in enumerate(group)}
        self.max_parallel = tuple(_max_parallel(d, default_max_parallel) for d in group)
        self.rate_limited = any(d.rpm or d.tpm for d in group)
        self.reads_usage = self.rate_limited or wants_usage
        self.limited = self.rate_limited or any(cap is not None for cap in self.max_parallel)
        self.counts_tokens = wants_usage or any(d.tpm for d in group)  # needs each response's tokens
        raw_weights = [static_weight(d) for d in group]
        # No weights at all: uniform. Some: a deployment without one gets no traffic, as in LiteLLM.
        self.weights: tuple[float, ...] = tuple(w or 0.0 for w in raw_weights) if any(
            w is not None for w in raw_weights) else (1.0,) * len(group)
        self.tags = tuple(deployment_tags(d) for d in group)
        self.windows = tuple(context_window(d) for d in group)
        self.window_sizes = sorted({w for w in self.windows if w is not None})
        self.checks_windows = bool(self.window_sizes)
        self.everyone = Pool(range(len(group)))
        defaults = [i for i, t in enumerate(self.tags) if DEFAULT_TAG in t]
        self.defaults = Pool(defaults) if defaults else None
        self.tag_pools: dict[tuple[tuple[str, ...], bool], Pool | None] = {}
        self.costs: tuple[float, ...] = ()
        self.costs_until = -math.inf
        self.costs_version = 0

    def refresh_costs(self, now: float, prices: Prices) -> tuple[float, ...]:
        if now >= self.costs_until:
            self.costs = tuple(math.inf if (c := prices(d)) is None else c for d in self.deployments)
            self.costs_until = now + PRICE_REFRESH
            self.costs_version += 1
        return self.costs

    def tag_pool(self, tags: tuple[str, ...], match_any: bool) -> Pool | None:
        """LiteLLM's tag filtering: the deployments carrying the request's tags (one of them, or all with
        `match_any` off), else those tagged "default"; None when neither exists. An untagged request goes to
        the "default" deployments when there are some, else to any."""
        if not tags:
            return self.defaults or self.everyone
        key = (tags, match_any)
        if key in self.tag_pools:
            return self.tag_pools[key]
        wanted = frozenset(tags)
        matched = [i for i, have in enumerate(self.tags)
                   if (not wanted.isdisjoint(have) if match_any else wanted <= have)]
        pool = Pool(matched) if matched else self.defaults
        if len(self.tag_pools) >= _TAG_POOLS_LIMIT:
            self.tag_pools.clear()
        self.tag_pools[key] = pool
        return pool

    def window_pool(self, pool: Pool, tokens: int) -> Pool:
        """The members whose context window holds `tokens` (an unknown window is not held against one).
        The answer only changes at the group's distinct window sizes, so it is kept per size."""
        at = bisect.bisect_left(self.window_sizes, tokens)  # window_sizes[at:] hold `tokens`
        if at == 0:
            return pool
        smallest = self.window_sizes[at] if at < len(self.window_sizes) else math.inf
        return pool.subset(at, lambda: [i for i in pool.members if (w := self.windows[i]) is None or w >= smallest])


def _max_parallel(d: Deployment, default: int | None) -> int | None:
    value: Any = d.extra.get("max_parallel_requests")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
