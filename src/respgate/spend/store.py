"""Where spend-log rows live: the backend interface, the query it answers, and the SQL both SQL backends share.

SQL is put together from constants only: table names pass `table_name`'s identifier check, columns come
from COLUMNS / GROUP_COLUMNS, and every value is a bound parameter (hence the S608 exemptions).

A backend appends batches of rows (a row id already written is skipped, so a retried batch never counts
twice), lists rows newest first, aggregates them by a few group columns, and deletes old ones. It
does not know about principals, LiteLLM's response shapes or batching: the tracker and the routes do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from .rows import COLUMNS, INT_COLUMNS, REAL_COLUMNS, Row

# What a report may group by: our names -> columns ("day": the UTC date of the call's start).
GROUPS: dict[str, str] = {
    "key": "api_key", "api_key": "api_key", "team": "team_id", "user": "user_id", "end_user": "end_user",
    "customer": "end_user", "model": "model_group", "model_group": "model_group", "deployment": "deployment_id",
    "provider": "provider", "upstream_model": "model", "day": "day", "status": "status", "route": "route",
}
GROUP_COLUMNS = frozenset(GROUPS.values())
MEASURES = ("requests", "spend", "input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens",
            "total_tokens")
_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


@dataclass(frozen=True, slots=True)
class SpendFilter:
    """Rows matching every field given; `start` inclusive, `end` exclusive (epoch seconds)."""

    api_key: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    end_user: str | None = None
    request_id: str | None = None
    model_group: str | None = None
    model: str | None = None
    status: str | None = None
    start: float | None = None
    end: float | None = None

    def matches(self, row: dict[str, Any]) -> bool:
        for name, value in self.equalities():
            if row[name] != value:
                return False
        t = row["start_time"]
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)

    def equalities(self) -> list[tuple[str, str]]:
        return [(f.name, v) for f in fields(self) if f.name not in ("start", "end")
                and (v := getattr(self, f.name)) is not None]


class SpendLog(Protocol):
    # What stands for an absent value in the rows this backend is given (rows.row_of's `null`).
    null: Any

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, rows: Sequence[Row]) -> None:
        """Append `rows` durably (ids already stored are skipped)."""

    async def logs(self, where: SpendFilter, limit: int) -> list[dict[str, Any]]:
        """Matching rows, newest first, as dicts keyed by COLUMNS."""

    async def report(self, where: SpendFilter, group_by: Sequence[str]) -> list[dict[str, Any]]:
        """One dict per group (`group_by`: columns of GROUP_COLUMNS): the group's values, MEASURES, and
        `key_alias` (any one of the group's) when grouped by api_key."""

    async def purge(self, before: float) -> int:
        """Delete rows that started before `before`; how many went."""


def table_name(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        raise ValueError(f"spend table prefix must be an identifier, got {prefix!r}")
    return f"{prefix}logs"


def schema(table: str, *, real: str, text: str = "TEXT") -> list[str]:
    """CREATE statements for the log table and its indexes (types per dialect)."""
    cols = []
    for c in COLUMNS:
        kind = "BIGINT" if c in INT_COLUMNS else real if c in REAL_COLUMNS else text
        cols.append(f"{c} {kind}{' PRIMARY KEY' if c == 'id' else ''}")
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(cols)})",
        f"CREATE INDEX IF NOT EXISTS {table}_by_time ON {table} (start_time)",
        f"CREATE INDEX IF NOT EXISTS {table}_by_key ON {table} (api_key, start_time)",
        f"CREATE INDEX IF NOT EXISTS {table}_by_request ON {table} (request_id)",
    ]


def where_sql(where: SpendFilter, mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    """`WHERE …` (or "") and its parameters; `mark(i)` is the dialect's i-th placeholder (1-based)."""
    parts: list[str] = []
    params: list[Any] = []
    for name, value in where.equalities():
        params.append(value)
        parts.append(f"{name} = {mark(len(params))}")
    if where.start is not None:
        params.append(where.start)
        parts.append(f"start_time >= {mark(len(params))}")
    if where.end is not None:
        params.append(where.end)
        parts.append(f"start_time < {mark(len(params))}")
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def logs_sql(table: str, where: SpendFilter, limit: int, mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    clause, params = where_sql(where, mark)
    params.append(limit)
    return (f"SELECT {', '.join(COLUMNS)} FROM {table}{clause} ORDER BY start_time DESC, id DESC "  # noqa: S608
            f"LIMIT {mark(len(params))}"), params


def report_sql(table: str, where: SpendFilter, group_by: Sequence[str], day: str,
               mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    """The aggregate query; `day` is the dialect's expression for the UTC date of start_time."""
    for g in group_by:
        if g not in GROUP_COLUMNS:
            raise ValueError(f"cannot group by {g!r}")
    exprs = [(day if g == "day" else g, g) for g in group_by]
    select = [f"{e} AS {name}" for e, name in exprs]
    select += ["COUNT(*) AS requests", "COALESCE(SUM(spend), 0) AS spend"]
    select += [f"COALESCE(SUM({m}), 0) AS {m}" for m in MEASURES[2:]]
    if "api_key" in group_by:
        select.append("MAX(key_alias) AS key_alias")
    clause, params = where_sql(where, mark)
    sql = f"SELECT {', '.join(select)} FROM {table}{clause}"  # noqa: S608
    if exprs:
        sql += " GROUP BY " + ", ".join(e for e, _ in exprs)
    return sql + " ORDER BY spend DESC", params


def aggregate(rows: Sequence[dict[str, Any]], group_by: Sequence[str], day: Callable[[float], str]) -> list[
        dict[str, Any]]:
    """The memory backend's report: what report_sql computes, in Python."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    if not group_by:  # one total, as SQL's aggregate without GROUP BY gives even over no rows
        groups[()] = {**{m: 0 for m in MEASURES}, "spend": 0.0}
    for row in rows:
        key = tuple(day(row["start_time"]) if g == "day" else row[g] for g in group_by)
        acc = groups.get(key)
        if acc is None:
            acc = groups[key] = {**dict(zip(group_by, key, strict=True)), **{m: 0 for m in MEASURES}}
            acc["spend"] = 0.0
            if "api_key" in group_by:
                acc["key_alias"] = None
        acc["requests"] += 1
        for m in MEASURES[1:]:
            acc[m] += row[m] or 0
        if "api_key" in group_by and row["key_alias"] is not None:
            acc["key_alias"] = max(acc["key_alias"] or "", row["key_alias"])
    return sorted(groups.values(), key=lambda g: g["spend"], reverse=True)
