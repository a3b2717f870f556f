"""Spend this instance has added and not yet written, and budget periods that ended here.

`add` is the request path (a dict update); `flush` writes everything in one batch from the
background task. While a batch is being written its amounts stay visible (`_inflight`), so a key
re-read from storage meanwhile is neither missing them nor counting them twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..errors import RespgateError
from .durations import next_reset
from .records import Entity, Kind
from .storage import Storage

log = logging.getLogger("respgate.keys")
Ident = tuple[Kind, str, float]  # kind, id, budget period marker


class Ledger:
    def __init__(self) -> None:
        self._pending: dict[Ident, float] = {}
        self._inflight: dict[Ident, float] = {}
        self._resets: list[tuple[Kind, str, float, float]] = []
        self._failed = False

    def unwritten(self, kind: Kind, id: str, marker: float) -> float:
        ident = (kind, id, marker)
        return self._pending.get(ident, 0.0) + self._inflight.get(ident, 0.0)

    def add(self, e: Entity, amount: float) -> None:
        e.spend += amount
        ident = (e.kind, e.id, e.budget_reset_at or 0.0)  # e.marker, without the property's call
        self._pending[ident] = self._pending.get(ident, 0.0) + amount

    def roll(self, e: Entity, now: float) -> None:
        """Start a new budget period when the current one has ended (storage follows in `flush`)."""
        if e.period is None:
            return
        old = e.budget_reset_at
        if old is not None and now < old:
            return
        new = next_reset(old, e.period, now) if old is not None else now + e.period
        e.budget_reset_at = new
        e.spend = self.unwritten(e.kind, e.id, new)
        self._resets.append((e.kind, e.id, old or 0.0, new))

    async def flush(self, storage: Storage) -> None:
        """Write the periods that ended, then the spend added since the last flush (kept for the next
        try when storage fails)."""
        resets, self._resets = self._resets, []
        for i, (kind, id, old, new) in enumerate(resets):
            try:
                await storage.reset_budget(kind, id, old, new)
            except RespgateError:
                self._resets = resets[i:] + self._resets
                raise
        if not self._pending:
            return
        self._inflight, self._pending = self._pending, {}
        try:
            await storage.add_spend([(kind, id, marker, amount) for (kind, id, marker), amount
                                     in self._inflight.items()])
        except RespgateError:
            if not self._failed:
                log.warning("keys: could not write spend to the key store; kept in memory and retried")
            self._failed = True
            for ident, amount in self._inflight.items():
                self._pending[ident] = self._pending.get(ident, 0.0) + amount
            raise
        finally:
            self._inflight = {}
        self._failed = False

    def live(self, stored: Iterable[Entity], cached: dict[tuple[str, str], Entity], now: float) -> None:
        """Bring entities read from storage up to this instance's view: spend not yet written, periods
        ended here; and the cached entity up to the stored one (which has other instances' spend)."""
        for e in stored:
            mine = cached.get((e.kind, e.id))
            if mine is not None and mine.marker > e.marker:  # a period ended here, not yet in storage
                e.spend, e.budget_reset_at = mine.spend, mine.budget_reset_at
                continue
            e.spend += self.unwritten(e.kind, e.id, e.marker)
            if mine is not None and mine.marker == e.marker:
                mine.spend = e.spend
            if e.period is not None and e.budget_reset_at is not None and now >= e.budget_reset_at:
                e.budget_reset_at = next_reset(e.budget_reset_at, e.period, now)
                e.spend = 0.0
