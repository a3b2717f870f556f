"""The spend hook: prices each call (`call.cost`) and logs one row for it, written in batches off the
request's path.

`post_call` does no I/O: it computes the cost from cached float prices and appends a tuple to a list.
A background task writes the list every `flush_interval` seconds, or at once when it reaches
`batch_size` rows. Writes are serialised by one lock and each batch is taken from the list under it,
so a row is written once; a batch that fails goes back to the front of the list and is tried again
(its row ids make a retry of a batch that did commit harmless). `flush()` writes everything pending
(reports call it, so they see the request just made); `close()` flushes, then closes the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..calls import Call, Principal
from .cost import cost_of
from .rows import Row, row_of
from .store import SpendFilter, SpendLog

log = logging.getLogger("respgate.spend")

_LOGGED = "respgate.spend.logged"  # call.extra: this call has its row (post_call runs once, but be sure)
_MAX_PENDING = 1_000_000  # rows kept while the database is down; beyond that the oldest are dropped (logged)


class SpendTracker:
    """The spend part of the platform (a CallHook, first in the order): prices calls, queues their rows,
    writes them in batches to `backend`, and answers the routes' queries after a flush."""

    def __init__(self, spend_log: SpendLog, *, logs_enabled: bool = True, track_end_user: bool = True,
                 flush_interval: float = 0.5, batch_size: int = 500, retention: float | None = None,
                 retention_interval: float = 86_400.0) -> None:
        self.backend = spend_log
        self._null = spend_log.null
        self.logs_enabled = logs_enabled
        self.track_end_user = track_end_user
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.retention = retention  # seconds a row is kept (general_settings.maximum_spend_logs_retention_period)
        self.retention_interval = retention_interval
        self._pending: list[Row] = []
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.rows_written = 0

    # -- the hook -------------------------------------------------------------------------------------

    wants_pre_call = False  # prices and logs after the call only

    async def pre_call(self, call: Call) -> None:
        return None

    async def post_call(self, call: Call) -> None:
        self.ended(call)

    def ended(self, call: Call) -> None:
        """post_call, without a coroutine (Hooks calls this one): price the call, queue its row."""
        extra = call.extra
        if _LOGGED in extra:
            return
        extra[_LOGGED] = True
        tokens = call.tokens
        if tokens is not None and call.deployment is not None:
            tier = call.response.get("service_tier") if call.response is not None else None
            call.cost = cost_of(call.deployment, tokens, tier if isinstance(tier, str) else None)
        if not self.logs_enabled:
            return
        pending = self._pending
        pending.append(row_of(call, tokens, track_end_user=self.track_end_user, null=self._null))
        if len(pending) >= self.batch_size:
            self._wake.set()
            if len(pending) > _MAX_PENDING:  # no writer, or a database away for long: bounded memory
                self._drop_oldest()

    # -- life cycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.backend.open()
        if self._task is None and (self.logs_enabled or self.retention is not None):
            self._task = asyncio.create_task(self._run(), name="respgate-spend-writer")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception as e:
            log.error("spend logs: %d rows could not be written at shutdown: %s", len(self._pending),
                      type(e).__name__)
        await self.backend.close()

    async def _run(self) -> None:
        next_purge = time.monotonic()
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 a cancel meeting wait_for's timeout can be lost,
            # and close() waited for ever on this task.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception as e:  # the database is away: keep the rows, try again next round
                log.warning("spend logs: write failed (%s); %d rows kept for retry", type(e).__name__,
                            len(self._pending))
                await asyncio.sleep(min(5.0, self.flush_interval * 4))
            if self.retention is not None and time.monotonic() >= next_purge:
                next_purge = time.monotonic() + self.retention_interval
                try:
                    gone = await self.backend.purge(time.time() - self.retention)
                    if gone:
                        log.info("spend logs: deleted %d rows older than the retention period", gone)
                except Exception as e:
                    log.warning("spend logs: retention purge failed: %s", type(e).__name__)

    async def flush(self) -> None:
        """Write every row pending now (and any that arrive while writing)."""
        async with self._write_lock:
            while self._pending:
                batch = self._pending[:self.batch_size * 4]
                del self._pending[:len(batch)]
                try:
                    await self.backend.write(batch)
                except BaseException:
                    self._pending[:0] = batch
                    self._drop_oldest()
                    raise
                self.rows_written += len(batch)

    def _drop_oldest(self) -> None:
        dropped = len(self._pending) - _MAX_PENDING
        if dropped > 0:
            del self._pending[:dropped]
            log.error("spend logs: dropped the %d oldest unwritten rows", dropped)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- queries (the routes') ------------------------------------------------------------------------

    async def logs(self, where: SpendFilter, limit: int = 1000) -> list[dict[str, Any]]:
        await self.flush()
        return await self.backend.logs(where, limit)

    async def report(self, where: SpendFilter, group_by: Sequence[str]) -> list[dict[str, Any]]:
        await self.flush()
        return await self.backend.report(where, group_by)

    @staticmethod
    def visible_to(principal: Principal, where: SpendFilter) -> SpendFilter | None:
        """`where` narrowed to what `principal` may see: an admin everything, a key its own rows (None:
        nothing at all: a caller without a key, or a key asking for another key's rows)."""
        if principal.is_admin:
            return where
        if not principal.token or where.api_key not in (None, principal.token):
            return None
        return replace(where, api_key=principal.token)
