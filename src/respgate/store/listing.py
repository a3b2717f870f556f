"""Listing stored responses (`Store.list_responses`, for the admin UI): filters and keyset pages.

Ids start with their creation time in µs as 13 hex digits (ids.py), so `ORDER BY id DESC` is newest
first on the primary key, and a page continues below the last id seen (`id < after`) whatever was
written since. Every filter narrows an index scan rather than a sort:

- owner, model: indexes (owner, id) and (model, id) (migration 2);
- status: a partial index (status, id) of the rows that are not `completed` (few, and the ones an
  operator looks for); `completed` itself is most rows, found fast along the primary key;
- a time range bounds `created_at` and, through the time in the id, the id itself, with slack: the id
  is made when the upstream answers and `created_at` may come from the upstream's clock;
- a search starting with `resp_` is an id prefix, bounded by the time digits it holds; any other is
  a substring of the model group's name (case-insensitive), matched against the few distinct names,
  which a loose index scan of (model, id) lists in one seek per name: never a scan of the table.

The bounds only ever compare hex digits, which sort the same in every collation, so PostgreSQL
databases with a non-C collation are served right too. The memory store applies `matches` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import orjson

from ..errors import InvalidRequestError
from .base import ResponseQuery, ResponseSummary

MAX_LIMIT = 200
SLACK = 86_400.0  # seconds between a response's created_at and the time in its id, at most
_PREFIX = "resp_"
_TIME_DIGITS = 13
_HEX = frozenset("0123456789abcdef")
Dialect = Literal["sqlite", "postgres"]

# Index of the store's responses table for the admin UI's lists (migration 2 of both SQL stores).
INDEXES = """
CREATE INDEX IF NOT EXISTS responses_by_owner ON responses (owner, id);
CREATE INDEX IF NOT EXISTS responses_by_model ON responses (model, id);
CREATE INDEX IF NOT EXISTS responses_unsettled ON responses (status, id) WHERE status <> 'completed'
"""
_USAGE = {"sqlite": "json_extract(response, '$.usage')", "postgres": "((response::json) -> 'usage')::text"}
_CONTAINS = {"sqlite": "instr(lower(name), {arg}) > 0", "postgres": "strpos(lower(name), {arg}) > 0"}
# The distinct model names, one index seek each (SQLite and PostgreSQL alike lack a skip scan for this).
_MODEL_NAMES = ("WITH RECURSIVE model_names(name) AS (SELECT MIN(model) FROM responses UNION ALL"
                " SELECT (SELECT MIN(r.model) FROM responses r WHERE r.model > m.name) FROM model_names m"
                " WHERE m.name IS NOT NULL) ")


def check(query: ResponseQuery) -> None:
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InvalidRequestError(f"Invalid 'limit': expected an integer from 1 to {MAX_LIMIT}.", param="limit",
                                  code="invalid_value")


def time_bound(t: float) -> str:
    """The smallest id made at time `t` (epoch seconds)."""
    return _PREFIX + f"{min(max(int(t * 1_000_000), 0), 16**_TIME_DIGITS - 1):0{_TIME_DIGITS}x}"


def prefix_bounds(prefix: str) -> tuple[str | None, str | None]:
    """Ids starting with `prefix` lie in [low, high): bounds from the hex time digits the prefix holds."""
    digits = ""
    for c in prefix[len(_PREFIX):len(_PREFIX) + _TIME_DIGITS]:
        if c not in _HEX:
            break
        digits += c
    if not digits:
        return None, None
    following = int(digits, 16) + 1
    high = _PREFIX + f"{following:0{len(digits)}x}" if following < 16 ** len(digits) else None
    return _PREFIX + digits, high


def list_sql(query: ResponseQuery, dialect: Dialect) -> tuple[str, list[Any]]:
    """The page's SELECT (one row more than the limit: whether more follow) and its parameters."""
    params: list[Any] = []
    conds: list[str] = []

    def arg(value: Any) -> str:
        params.append(value)
        return "?" if dialect == "sqlite" else f"${len(params)}"

    for column in ("owner", "model", "status"):
        value = getattr(query, column)
        if value is not None:
            conds.append(f"{column} = {arg(value)}")
    if query.status is not None and query.status != "completed":
        conds.append("status <> 'completed'")  # the partial index's own condition: lets the planner use it
    low: list[str] = []
    high: list[str] = []
    if query.created_after is not None:
        conds.append(f"created_at >= {arg(query.created_after)}")
        low.append(time_bound(query.created_after - SLACK))
    if query.created_before is not None:
        conds.append(f"created_at < {arg(query.created_before)}")
        high.append(time_bound(query.created_before + SLACK))
    search = (query.search or "").strip()
    if search.startswith(_PREFIX):
        conds.append(f"substr(id, 1, {arg(len(search))}) = {arg(search)}")
        lo, hi = prefix_bounds(search)
        low += [lo] if lo else []
        high += [hi] if hi else []
    elif search:
        matched = _CONTAINS[dialect].format(arg=arg(search.lower()))
        conds.append(f"model IN (SELECT name FROM model_names WHERE name IS NOT NULL AND {matched})")  # noqa: S608
    if low:
        conds.append(f"id >= {arg(max(low))}")
    if query.after is not None:
        high.append(query.after)
    if high:
        conds.append(f"id < {arg(min(high))}")
    # Only our own column names, operators and placeholders go into the text: every value is a parameter.
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    # The page's ids first (from an index alone when it covers the filters), then their rows: a search
    # matching many rows sorts ids, never Response bodies.
    by_name = bool(search) and not search.startswith(_PREFIX)
    # SQLite would rather walk the primary key and test each row's model (the whole table when few match):
    # `+id` makes it read the matching names' ids off (model, id) and sort those.
    order = "+id" if by_name and dialect == "sqlite" else "id"
    page = f"SELECT id FROM responses{where} ORDER BY {order} DESC LIMIT {arg(query.limit + 1)}"  # noqa: S608
    columns = f"id, owner, model, deployment_id, provider, status, created_at, previous_response_id, background, " \
        f"{_USAGE[dialect]}"
    sql = f"{_MODEL_NAMES if by_name else ''}SELECT {columns} FROM responses WHERE id IN ({page}) ORDER BY id DESC"  # noqa: S608
    return sql, params


def page(rows: Sequence[Any], limit: int) -> tuple[list[ResponseSummary], bool]:
    """Rows of `list_sql` -> summaries, and whether more follow."""
    return [_summary(row) for row in rows[:limit]], len(rows) > limit


def _summary(row: Any) -> ResponseSummary:
    """A row of `list_sql` (a tuple, or asyncpg's Record)."""
    usage = orjson.loads(row[9]) if row[9] is not None else None
    return ResponseSummary(id=row[0], owner=row[1], model=row[2], deployment_id=row[3], provider=row[4],
                           status=row[5], created_at=float(row[6]), previous_response_id=row[7],
                           background=bool(row[8]), usage=usage if isinstance(usage, dict) else None)


def matches(query: ResponseQuery) -> Callable[[ResponseSummary], bool]:
    """The memory store's filter: what list_sql's WHERE selects."""
    search = (query.search or "").strip()
    needle = search.lower()

    def test(s: ResponseSummary) -> bool:
        if any(getattr(query, c) is not None and getattr(s, c) != getattr(query, c)
               for c in ("owner", "model", "status")):
            return False
        if query.created_after is not None and s.created_at < query.created_after:
            return False
        if query.created_before is not None and s.created_at >= query.created_before:
            return False
        if query.after is not None and s.id >= query.after:
            return False
        if search.startswith(_PREFIX):
            return s.id.startswith(search)
        return not needle or needle in s.model.lower()

    return test


def newest_first(summaries: Iterable[ResponseSummary], query: ResponseQuery) -> tuple[list[ResponseSummary], bool]:
    found = sorted(filter(matches(query), summaries), key=lambda s: s.id, reverse=True)
    return found[:query.limit], len(found) > query.limit
