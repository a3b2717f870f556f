"""The spend page's rollup: settled days read once and kept, the rest read live, and the same totals as
the spend log's own report."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from respgate.spend import SpendFilter, SpendTracker
from respgate.spend.backends import MemorySpendLog
from respgate.spend.rows import COLUMNS
from respgate.ui.rollup import SpendRollup

DAY = 86_400.0
NOW = 1_800_014_400.0  # 2027-01-15 12:00 UTC
TODAY = date(2027, 1, 15)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def row(n: int, t: float, *, key: str = "k1", user: str | None = None, spend: float = 1.0) -> tuple[Any, ...]:
    values = dict.fromkeys(COLUMNS)
    values.update(id=f"row-{n}", api_key=key, key_alias=f"alias-{key}", end_user=user, model_group="m",
                  start_time=t, spend=spend, total_tokens=10, input_tokens=4, output_tokens=6, status="success")
    return tuple(values[c] for c in COLUMNS)


async def settle(rollup: SpendRollup) -> None:
    """Wait for the rollup's background reads."""
    while rollup._tasks:
        await asyncio.gather(*rollup._tasks)


async def rolled(rollup: SpendRollup, column: str, start: date = date(2027, 1, 1), end: date = TODAY) -> dict[
        Any, tuple[int, float]]:
    return {g[column]: (g["requests"], g["spend"]) for g in await rollup.groups(column, start, end)}


async def test_settled_days_are_kept_and_today_is_live() -> None:
    log = MemorySpendLog()
    tracker = SpendTracker(log)
    clock = Clock()
    rollup = SpendRollup(tracker, ttl=600, clock=clock)
    await log.write([row(1, NOW - 3 * DAY), row(2, NOW - 3 * DAY, key="k2", spend=2.5), row(3, NOW - 60)])
    assert await rolled(rollup, "api_key") == {"k1": (2, 2.0), "k2": (1, 2.5)}
    assert [g["key_alias"] for g in await rollup.groups("api_key", date(2027, 1, 1), TODAY)] == ["alias-k2", "alias-k1"]
    by_day = await rolled(rollup, "day")
    assert by_day == {"2027-01-12": (2, 3.5), "2027-01-15": (1, 1.0)}
    report = await tracker.report(SpendFilter(start=NOW - 30 * DAY), ("api_key",))
    assert {g["api_key"]: (g["requests"], g["spend"]) for g in report} == await rolled(rollup, "api_key")

    await log.write([row(4, NOW - 3 * DAY), row(5, NOW - 30)])  # a late row in a kept day, and one today
    assert await rolled(rollup, "api_key") == {"k1": (3, 3.0), "k2": (1, 2.5)}  # today's shows at once
    clock.now += 601  # past the ttl: the kept days answer once more while they are read again
    assert await rolled(rollup, "api_key") == {"k1": (3, 3.0), "k2": (1, 2.5)}
    await settle(rollup)
    assert await rolled(rollup, "api_key") == {"k1": (4, 4.0), "k2": (1, 2.5)}
    assert await rolled(rollup, "api_key", start=date(2027, 1, 13), end=date(2027, 1, 14)) == {}
    await tracker.close()


async def test_a_column_with_too_many_groups_is_always_read_whole() -> None:
    log = MemorySpendLog()
    tracker = SpendTracker(log)
    rollup = SpendRollup(tracker, max_groups=2, clock=Clock())
    await log.write([row(i, NOW - (i + 2) * DAY, user=f"u{i}") for i in range(3)])
    assert await rolled(rollup, "end_user") == {"u0": (1, 1.0), "u1": (1, 1.0), "u2": (1, 1.0)}
    await log.write([row(9, NOW - 2 * DAY, user="u9")])
    assert (await rolled(rollup, "end_user"))["u9"] == (1, 1.0)  # nothing kept: the new row shows
    await tracker.close()


async def test_warming_reads_ahead_in_the_background() -> None:
    log = MemorySpendLog()
    tracker = SpendTracker(log)
    rollup = SpendRollup(tracker, clock=Clock())
    await log.write([row(1, NOW - 5 * DAY)])
    rollup.warm(("api_key", "day"))
    rollup.warm(("api_key", "day"))  # one at a time
    assert len(rollup._tasks) == 1
    await settle(rollup)
    rollup.warm(("api_key", "day"))
    assert not rollup._tasks  # kept already: nothing to warm
    await log.write([row(2, NOW - 5 * DAY)])
    assert await rolled(rollup, "day") == {"2027-01-10": (1, 1.0)}  # the kept day, read by the warm-up
    await tracker.close()
