"""Selection strategies: pure functions choosing one of a model group's available deployments.

Each takes the group's `Plan`, the `Pool` of candidates (already filtered for tags, context
window, cooldowns and limits), the state snapshot, this instance's in-flight counts and a random
source, and returns the chosen deployment's index in the plan. Ties are broken at random, so
equally good deployments share the load.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from .plan import Plan, Pool
from .state import Snapshot

Strategy = Callable[[Plan, Pool, Snapshot, dict[str, int], random.Random], int]


def simple_shuffle(plan: Plan, pool: Pool, snap: Snapshot, inflight: dict[str, int], rng: random.Random) -> int:
    return pool.weighted_pick(plan.weights, rng)


def _lowest(members: Sequence[int], scores: Sequence[float], rng: random.Random) -> int:
    """The member with the lowest score (`scores` runs parallel to `members`)."""
    best = min(scores)
    ties = [i for i, s in zip(members, scores, strict=True) if s == best]
    return ties[0] if len(ties) == 1 else ties[rng.randrange(len(ties))]


def least_busy(plan: Plan, pool: Pool, snap: Snapshot, inflight: dict[str, int], rng: random.Random) -> int:
    members, ids = pool.members, plan.ids
    # Usually most deployments are idle: draw a few at random before counting them all.
    for _ in range(4 if len(inflight) < len(members) else 0):
        i = members[rng.randrange(len(members))]
        if ids[i] not in inflight:
            return i
    return _lowest(members, [inflight.get(ids[i], 0) for i in members], rng)


def lowest_latency(plan: Plan, pool: Pool, snap: Snapshot, inflight: dict[str, int], rng: random.Random) -> int:
    # Unknown latency scores 0: every deployment is tried before the slow ones are avoided.
    members, ids, latency = pool.members, plan.ids, snap.latency
    return _lowest(members, [latency.get(ids[i], 0.0) for i in members], rng)


def lowest_usage(plan: Plan, pool: Pool, snap: Snapshot, inflight: dict[str, int], rng: random.Random) -> int:
    members, ids, usage = pool.members, plan.ids, snap.usage
    return _lowest(members, [used.tokens if (used := usage.get(ids[i])) is not None else 0 for i in members], rng)


def lowest_cost(plan: Plan, pool: Pool, snap: Snapshot, inflight: dict[str, int], rng: random.Random) -> int:
    """The cheapest per token (input + output price); an unknown price ranks last. The router refreshes
    `plan.costs` before calling this."""
    cheapest = pool.cheapest(plan.costs, plan.costs_version)
    return cheapest[0] if len(cheapest) == 1 else cheapest[rng.randrange(len(cheapest))]


STRATEGY_TABLE: dict[str, Strategy] = {
    "simple-shuffle": simple_shuffle,
    "least-busy": least_busy,
    "latency-based-routing": lowest_latency,
    "usage-based-routing": lowest_usage,
    "usage-based-routing-v2": lowest_usage,
    "cost-based-routing": lowest_cost,
}
