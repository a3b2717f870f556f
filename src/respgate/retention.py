"""Retention: stored content older than a TTL is deleted for good, by a task off the hot path.

`general_settings.response_retention_days` (a number of days, fractions allowed; unset = keep
forever) is the TTL: a finished response created earlier is deleted with its input items and
stream events, and a conversation with no write (turn, items, metadata) for that long is deleted
with its items. Rows are removed, not flagged. The sweep runs at start-up and then every
`general_settings.retention_sweep_interval_seconds` (default 3600); with several instances on
one PostgreSQL each sweeps, and `SKIP LOCKED` keeps them from waiting on each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from .store.base import Purged, Store

__all__ = ["RetentionSweeper"]

log = logging.getLogger("respgate.retention")

DAY = 86_400.0
DEFAULT_SWEEP_INTERVAL = 3600.0


class RetentionSweeper:
    """Purges `store` of content older than `ttl` seconds; `ttl=None` disables it."""

    def __init__(self, store: Store, ttl: float | None, *, interval: float = DEFAULT_SWEEP_INTERVAL,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.store = store
        self.ttl = ttl
        self.interval = interval
        self.clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> Purged:
        """One purge now; nothing when retention is off."""
        if self.ttl is None:
            return Purged()
        purged = await self.store.purge(self.clock() - self.ttl)
        if purged.responses or purged.conversations:
            log.info("retention: deleted %d response(s) and %d conversation(s)", purged.responses,
                     purged.conversations)
        return purged

    def start(self) -> None:
        if self.ttl is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="respgate-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a store outage must not end the sweeping; the next round retries
                log.warning("retention sweep failed", exc_info=True)
            await self._sleep(self.interval)
