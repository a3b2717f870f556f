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
    """What one routing decision needs, read at once (one round trip for Redis)."""

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
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._cooldown_until: dict[str, float] = {}
        self._fails: dict[str, tuple[int, int]] = {}  # id -> (minute, failures)
        self._usage: dict[str, tuple[int, Usage]] = {}  # id -> (minute, usage)
        self._latency: dict[str, deque[float]] = {}

    async def snapshot(self, ids: Sequence[str], *, usage: bool, latency: bool) -> Snapshot:
        now = self._clock()
        snap = Snapshot()
        if self._cooldown_until:
            for i in ids:
                until = self._cooldown_until.get(i)
                if until is not None and until > now:
                    snap.cooling[i] = until - now
        if usage:
            minute = minute_of(now)
            for i in ids:
                entry = self._usage.get(i)
                if entry is not None and entry[0] == minute:
                    snap.usage[i] = entry[1]
        if latency:
            for i in ids:
                samples = self._latency.get(i)
                if samples:
                    snap.latency[i] = sum(samples) / len(samples)
        return snap

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
        minute = minute_of(self._clock())
        entry = self._usage.get(deployment_id)
        if entry is None or entry[0] != minute:
            entry = (minute, Usage())
            self._usage[deployment_id] = entry
        entry[1].requests += requests
        entry[1].tokens += tokens

    async def add_latency(self, deployment_id: str, seconds: float) -> None:
        samples = self._latency.get(deployment_id)
        if samples is None:
            samples = self._latency[deployment_id] = deque(maxlen=LATENCY_SAMPLES)
        samples.append(seconds)

    async def close(self) -> None:
        return None
