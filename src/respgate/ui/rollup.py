"""Spend by day and one column (key, team, end user, model, or the day itself) for the spend page,
without re-reading a month of spend-log rows on every view.

A whole UTC day that ended more than `settled` seconds ago no longer changes (a request's row is written
within seconds of its end, and no request lasts an hour), so its groups are read once, with every other
missing day in one query, and kept; the rest of the range (today, and yesterday in the first hour) is
read on each call. Kept days older than `ttl` seconds are still answered from, and read again in the
background, so rows removed by the spend log's retention, or written late by another instance, show a
view or two later without any view waiting for a month of rows. A column whose kept groups would pass
`max_groups` (end users can be countless) is not kept at all: every call reads its whole range.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from ..spend import SpendFilter, SpendTracker

log = logging.getLogger("respgate.ui")

_DAY: Final = 86_400.0
Measures = list[float]  # requests, spend, total_tokens
Groups = dict[Any, Measures]


class SpendRollup:
    def __init__(self, tracker: SpendTracker, *, settled: float = 3600.0, ttl: float = 600.0,
                 max_groups: int = 200_000, clock: Callable[[], float] = time.time) -> None:
        self._tracker = tracker
        self._settled = settled
        self._ttl = ttl
        self._max_groups = max_groups
        self._clock = clock
        self._days: dict[str, dict[str, Groups]] = {}  # column -> day -> its groups
        self._read_at: dict[str, float] = {}  # column -> when its kept days were read
        self._aliases: dict[str, str] = {}  # api_key -> a key_alias the rows gave it
        self._uncacheable: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # warming and refreshing in the background

    async def groups(self, column: str, start: date, end: date) -> list[dict[str, Any]]:
        """Like `SpendTracker.report(..., (column,))` over the whole days start..end (included): one dict
        per group with the column's value, requests, spend, total_tokens (and key_alias for api_key)."""
        now = self._clock()
        settled = datetime.fromtimestamp(now - self._settled, UTC).date()  # days before this one are kept
        totals: Groups = {}
        async with self._locks.setdefault(column, asyncio.Lock()):
            keeps = column not in self._uncacheable
            if keeps and start < settled:
                for groups in await self._kept(column, start, min(end, settled - timedelta(days=1))):
                    _add(totals, groups)
        if keeps and now - self._read_at.get(column, now) > self._ttl:
            self._background(self._refresh(column, now))
        live_from = max(start, settled) if keeps else start
        if live_from <= end:
            _add(totals, await self._read(column, live_from, end, by_day=False))
        out = [{column: value, "requests": int(m[0]), "spend": m[1], "total_tokens": int(m[2])}
               for value, m in totals.items()]
        if column == "api_key":
            for g in out:
                g["key_alias"] = self._aliases.get(g["api_key"])
        out.sort(key=lambda g: g["spend"], reverse=True)
        return out

    def warm(self, columns: Sequence[str], days: int = 30) -> None:
        """Read the last `days` days of each column not kept yet, in the background (an admin just logged
        in: the spend page is likely next)."""
        cold = [c for c in columns if c not in self._read_at and c not in self._uncacheable]
        if cold and not self._tasks:
            today = datetime.fromtimestamp(self._clock(), UTC).date()
            self._background(self._warm(cold, today - timedelta(days=days - 1), today))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="respgate-ui-spend-rollup")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm(self, columns: Sequence[str], start: date, end: date) -> None:
        for column in columns:
            try:
                await self.groups(column, start, end)
            except Exception as e:  # the page will read it itself, and report what is wrong
                log.warning("ui: reading spend by %s in advance failed: %s", column, type(e).__name__)
                return

    async def _refresh(self, column: str, now: float) -> None:
        """Read every kept day of `column` again, and swap them in."""
        self._read_at[column] = now  # one refresh at a time: the next is due a ttl from now
        days = self._days.get(column)
        if not days:
            return
        try:
            read = await self._read(column, date.fromisoformat(min(days)), date.fromisoformat(max(days)),
                                    by_day=True)
        except Exception as e:
            log.warning("ui: refreshing spend by %s failed: %s", column, type(e).__name__)
            return
        if column not in self._uncacheable:
            self._days[column] = {day: read.get(day, {}) for day in days}

    async def _kept(self, column: str, start: date, end: date) -> list[Groups]:
        days = self._days.setdefault(column, {})
        wanted = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
        missing = [d for d in wanted if d not in days]
        if missing:  # every missing day in one query (usually all of them, or none)
            read = await self._read(column, date.fromisoformat(missing[0]), date.fromisoformat(missing[-1]),
                                    by_day=True)
            for day in missing:
                days[day] = read.get(day, {})
            self._read_at.setdefault(column, self._clock())
        found = [days[d] for d in wanted]
        if sum(len(g) for g in days.values()) > self._max_groups:
            self._uncacheable.add(column)
            del self._days[column]
        return found

    async def _read(self, column: str, start: date, end: date, *, by_day: bool) -> Any:
        """Groups of the days start..end: by day (day -> groups) or summed (groups)."""
        first = datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()
        where = SpendFilter(start=first, end=first + ((end - start).days + 1) * _DAY)
        group_by = ("day",) if column == "day" else ("day", column) if by_day else (column,)
        by: dict[str, Groups] = {}
        summed: Groups = {}
        for g in await self._tracker.report(where, group_by):
            measures = [g["requests"], g["spend"], g["total_tokens"]]
            alias = g.get("key_alias")
            if column == "api_key" and alias:
                self._aliases[g["api_key"]] = alias
            target = by.setdefault(g["day"], {}) if by_day else summed
            _add(target, {g[column]: measures})
        return by if by_day else summed


def _add(into: Groups, groups: Groups) -> None:
    for value, m in groups.items():
        acc = into.get(value)
        if acc is None:
            into[value] = list(m)
        else:
            acc[0] += m[0]
            acc[1] += m[1]
            acc[2] += m[2]
