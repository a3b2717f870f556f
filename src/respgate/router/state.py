"""The router's shared state behind one small interface: cooldowns, this minute's usage, latencies.

Two implementations: `MemoryState` (one process) and `redis_state.RedisState` (several instances).
Time comes from an injected clock (seconds since the epoch by default; tests pass a fake), and
usage is counted per clock minute, which is what LiteLLM's rpm/tpm mean.

Left out on purpose: in-flight request counts (least-busy, max_parallel_requests) are per
instance, kept by the router itself; sharing them would put a network round trip on both ends of
every request for a figure that is stale as soon as it is read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Clock = Callable[[], float]
LATENCY_SAMPLES = 10


@dataclass(slots=True)
class Usage:
    requests: int = 0
    tokens: int = 0


@dataclass(slots=True)
class Snapshot:
    """What one routing decision needs, read at once (one round trip for Redis). The maps may hold other
    deployments too, and may be the state's own live maps (MemoryState): read them, never change them."""

    cooling: dict[str, float] = field(default_factory=dict)  # deployment id -> seconds left
    usage: dict[str, Usage] = field(default_factory=dict)  # this minute; absent = none
    latency: dict[str, float] = field(default_factory=dict)  # mean of recent seconds; absent = unknown


class RouterState(Protocol):
    async def snapshot(self, ids: Sequence[str], *, usage: bool, latency: bool) -> Snapshot: ...

    async def record_failure(self, deployment_id: str, allowed_fails: int, cooldown_time: float) -> bool:
        """Count a failure in this minute; past `allowed_fails`, start a cooldown. True when it did."""
        ...

    async def add_usage(self, deployment_id: str, requests: int, tokens: int) -> None: ...

    async def add_latency(self, deployment_id: str, seconds: float) -> None: ...

    async def close(self) -> None: ...


def minute_of(now: float) -> int:
    return int(now // 60)


class MemoryState:
    """One process's state. A snapshot costs the same for 1 or 100 deployments: it hands out the
    deployments cooling down (few), this minute's usage and the latency means as they are kept."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._cooldown_until: dict[str, float] = {}
        self._fails: dict[str, tuple[int, int]] = {}  # id -> (minute, failures)
        self._minute = -1
        self._usage: dict[str, Usage] = {}  # this minute's, by id; replaced when the minute turns
        self._latency: dict[str, deque[float]] = {}
        self._latency_mean: dict[str, float] = {}

    async def snapshot(self, ids: Sequence[str], *, usage: bool, latency: bool) -> Snapshot:
        now = self._clock()
        snap = Snapshot()
        if self._cooldown_until:  # every deployment cooling down, whatever its group: there are few
            expired = []
            for i, until in self._cooldown_until.items():
                if until > now:
                    snap.cooling[i] = until - now
                else:
                    expired.append(i)
            for i in expired:
                del self._cooldown_until[i]
        if usage:
            snap.usage = self._this_minute(now)
        if latency:
            snap.latency = self._latency_mean
        return snap

    def _this_minute(self, now: float) -> dict[str, Usage]:
        minute = minute_of(now)
        if minute != self._minute:
            self._minute = minute
            self._usage = {}
        return self._usage

    async def record_failure(self, deployment_id: str, allowed_fails: int, cooldown_time: float) -> bool:
        now = self._clock()
        minute = minute_of(now)
        seen_minute, count = self._fails.get(deployment_id, (minute, 0))
        count = count + 1 if seen_minute == minute else 1
        if count > allowed_fails:
            self._fails.pop(deployment_id, None)
            self._cooldown_until[deployment_id] = now + cooldown_time
            return True
        self._fails[deployment_id] = (minute, count)
        return False

    async def add_usage(self, deployment_id: str, requests: int, tokens: int) -> None:
        usage = self._this_minute(self._clock())
        used = usage.get(deployment_id)
        if used is None:
            used = usage[deployment_id] = Usage()
        used.requests += requests
        used.tokens += tokens

    async def add_latency(self, deployment_id: str, seconds: float) -> None:
        samples = self._latency.get(deployment_id)
        if samples is None:
            samples = self._latency[deployment_id] = deque(maxlen=LATENCY_SAMPLES)
        samples.append(seconds)
        self._latency_mean[deployment_id] = sum(samples) / len(samples)

    async def close(self) -> None:
        return None
