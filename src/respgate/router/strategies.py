"""Selection strategies: pure functions choosing one of a model group's available deployments.

Each takes the candidates (already filtered for cooldowns and limits), the state snapshot, this
instance's in-flight counts and a random source, and returns an index into the candidates.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from ..deployments import Deployment
from .state import Snapshot

Strategy = Callable[[Sequence[Deployment], Snapshot, dict[str, int], random.Random], int]


def static_weight(d: Deployment) -> float | None:
    """LiteLLM's simple-shuffle weight: `weight`, else `rpm`, else `tpm`; None when none is set."""
    for value in (d.extra.get("weight"), d.rpm, d.tpm):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def simple_shuffle(cands: Sequence[Deployment], snap: Snapshot, inflight: dict[str, int],
                   rng: random.Random) -> int:
    weights = [static_weight(d) for d in cands]
    if all(w is None for w in weights):
        return rng.randrange(len(cands))
    # A deployment without a weight in a weighted group gets none of the traffic, as in LiteLLM.
    total = sum(w or 0.0 for w in weights)
    if total <= 0:
        return rng.randrange(len(cands))
    point = rng.random() * total
    for i, w in enumerate(weights):
        point -= w or 0.0
        if point < 0:
            return i
    return len(cands) - 1


def _lowest(cands: Sequence[Deployment], rng: random.Random, score: Callable[[Deployment], float]) -> int:
    scores = [score(d) for d in cands]
    best = min(scores)
    ties = [i for i, s in enumerate(scores) if s == best]
    return ties[0] if len(ties) == 1 else rng.choice(ties)


def least_busy(cands: Sequence[Deployment], snap: Snapshot, inflight: dict[str, int], rng: random.Random) -> int:
    return _lowest(cands, rng, lambda d: inflight.get(d.id, 0))


def lowest_latency(cands: Sequence[Deployment], snap: Snapshot, inflight: dict[str, int],
                   rng: random.Random) -> int:
    # Unknown latency scores 0: every deployment is tried before the slow ones are avoided.
    return _lowest(cands, rng, lambda d: snap.latency.get(d.id, 0.0))


def lowest_usage(cands: Sequence[Deployment], snap: Snapshot, inflight: dict[str, int],
                 rng: random.Random) -> int:
    def score(d: Deployment) -> float:
        used = snap.usage.get(d.id)
        return float(used.tokens) if used is not None else 0.0

    return _lowest(cands, rng, score)


STRATEGY_TABLE: dict[str, Strategy] = {
    "simple-shuffle": simple_shuffle,
    "least-busy": least_busy,
    "latency-based-routing": lowest_latency,
    "usage-based-routing": lowest_usage,
    "usage-based-routing-v2": lowest_usage,
}
