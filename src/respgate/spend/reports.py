"""What the spend routes answer, given the caller and the query parameters: LiteLLM's `/spend/logs` and
`/global/spend/*` shapes, and our own `/spend/report` (any grouping of key, team, user, end user, model,
deployment, provider, day). Pure of HTTP, so each can be tested with a Principal and a dict.

Dates are `YYYY-MM-DD` (a whole UTC day; `end_date` included) or ISO 8601 date-times (an instant).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..calls import Principal
from ..errors import InvalidRequestError
from .rows import as_log
from .store import GROUPS, SpendFilter
from .tracker import SpendTracker

Query = Mapping[str, str]
_DAY = 86_400.0
_LAST_30_DAYS = 30 * _DAY
_OUT_NAMES = {"model_group": "model", "model": "upstream_model"}  # column -> our report's field name
HashKey = Callable[[str], str]


def litellm_hash(key: str) -> str:
    """LiteLLM's `hash_token`: how a raw `sk-…` in a query becomes the stored token."""
    return hashlib.sha256(key.encode()).hexdigest()


# -- /spend/logs ------------------------------------------------------------------------------------

async def spend_logs(tracker: SpendTracker, principal: Principal, q: Query,
                     hash_key: HashKey = litellm_hash) -> list[dict[str, Any]]:
    """Rows newest first (at most `limit`, default 1000). With both `start_date` and `end_date`, LiteLLM
    answers a per-day summary unless `summarize=false`; so do we."""
    start, end = _range(q)
    where = SpendFilter(api_key=_api_key(q, hash_key), user_id=q.get("user_id") or None,
                        request_id=q.get("request_id") or None, team_id=q.get("team_id") or None,
                        end_user=q.get("end_user") or None, model_group=q.get("model") or None,
                        status=q.get("status") or None, start=start, end=end)
    limit = _int(q, "limit", 1000, maximum=100_000)
    summarize = _bool(q, "summarize", True)
    visible = SpendTracker.visible_to(principal, where)
    if visible is None:
        return []
    if start is not None and end is not None and q.get("start_date") and q.get("end_date") and summarize:
        return await _daily_summary(tracker, visible, start, end)
    return [as_log(r) for r in await tracker.logs(visible, limit)]


async def _daily_summary(tracker: SpendTracker, where: SpendFilter, start: float, end: float) -> list[dict[str, Any]]:
    groups = await tracker.report(where, ("day", "api_key", "user_id", "model"))
    days: dict[str, dict[str, Any]] = {}
    for g in groups:
        day = days.setdefault(g["day"], {"spend": 0.0, "users": {}, "models": {}})
        spend = g["spend"]
        day["spend"] += spend
        key, user, model = g["api_key"] or "", g["user_id"] or "", g["model"] or ""
        day[key] = day.get(key, 0.0) + spend
        day["users"][user] = day["users"].get(user, 0.0) + spend
        day["models"][model] = day["models"].get(model, 0.0) + spend
    out = []
    for d in _days(start, end):
        out.append({**days.get(d, {"spend": 0.0, "users": {}, "models": {}}), "startTime": d})
    return out


# -- /global/spend/report ---------------------------------------------------------------------------

async def global_report(tracker: SpendTracker, q: Query, hash_key: HashKey = litellm_hash) -> list[dict[str, Any]]:
    """LiteLLM's daily report: per team (default), per customer (end user), or per api key."""
    if not q.get("start_date") or not q.get("end_date"):
        raise InvalidRequestError("Please provide start_date and end_date.", param="start_date",
                                  code="missing_required_parameter")
    start, end = _range(q)
    group_by = q.get("group_by") or "team"
    if group_by not in ("team", "customer", "api_key"):
        raise InvalidRequestError(f"Invalid group_by {group_by!r}: expected team, customer or api_key.",
                                  param="group_by", code="invalid_value")
    where = SpendFilter(api_key=_api_key(q, hash_key), user_id=q.get("internal_user_id") or None,
                        team_id=q.get("team_id") or None, end_user=q.get("customer_id") or None,
                        start=start, end=end)
    if where.api_key or where.user_id or group_by == "api_key":
        return await _by_key(tracker, where)
    column, plural, name = ("team_id", "teams", "team_name") if group_by == "team" else (
        "end_user", "customers", "customer")
    groups = await tracker.report(where, ("day", column, "model", "api_key"))
    days: dict[str, dict[str | None, dict[str, Any]]] = {}
    for g in groups:
        who = g[column]
        label = who if who is not None else ("Unassigned Team" if group_by == "team" else None)
        entry = days.setdefault(g["day"], {}).setdefault(label, {name: label, "total_spend": 0.0, "metadata": []})
        entry["total_spend"] += g["spend"]
        entry["metadata"].append({"model": g["model"], "api_key": g["api_key"], "spend": g["spend"],
                                  "total_tokens": g["total_tokens"]})
    return [{"group_by_day": day, plural: list(days[day].values())} for day in sorted(days)]


async def _by_key(tracker: SpendTracker, where: SpendFilter) -> list[dict[str, Any]]:
    keys: dict[str | None, dict[str, Any]] = {}
    for g in await tracker.report(where, ("api_key", "model")):
        k = keys.setdefault(g["api_key"], {"api_key": g["api_key"], "total_cost": 0.0, "total_input_tokens": 0,
                                           "total_output_tokens": 0, "model_details": []})
        k["total_cost"] += g["spend"]
        k["total_input_tokens"] += g["input_tokens"]
        k["total_output_tokens"] += g["output_tokens"]
        k["model_details"].append({"model": g["model"], "total_cost": g["spend"],
                                   "total_input_tokens": g["input_tokens"], "total_output_tokens": g["output_tokens"]})
    return sorted(keys.values(), key=lambda k: k["total_cost"], reverse=True)


# -- /global/spend/keys, /models, /teams, /end_users, /global/spend ----------------------------------

async def top_keys(tracker: SpendTracker, q: Query) -> list[dict[str, Any]]:
    """Keys by spend over the last 30 days (LiteLLM's `Last30dKeysBySpend`), top `limit`."""
    groups = await tracker.report(_last_30_days(), ("api_key",))
    out = [{"api_key": g["api_key"], "total_spend": g["spend"], "key_alias": g["key_alias"], "key_name": None}
           for g in groups]
    limit = _int(q, "limit", 0)
    return out[:limit] if limit else out


async def top_models(tracker: SpendTracker, q: Query) -> list[dict[str, Any]]:
    """Models (the upstream model, as LiteLLM logs `model`) by spend over the last 30 days, top `limit` (10)."""
    groups = await tracker.report(_last_30_days(), ("model",))
    return [{"model": g["model"], "total_spend": g["spend"], "total_tokens": g["total_tokens"]}
            for g in groups][:_int(q, "limit", 10)]


async def teams_daily(tracker: SpendTracker) -> dict[str, Any]:
    """Daily spend per team over the last 30 days, in LiteLLM's shape for its admin UI."""
    groups = await tracker.report(_last_30_days(), ("day", "team_id"))
    by_day: dict[str, dict[str, float]] = {}
    totals: dict[str, float] = {}
    for g in sorted(groups, key=lambda g: g["day"]):
        team = g["team_id"] or "Unassigned"
        by_day.setdefault(g["day"], {})[team] = g["spend"]
        totals[team] = totals.get(team, 0.0) + g["spend"]
    top = sorted(totals.items(), key=lambda t: t[1], reverse=True)[:10]
    return {"daily_spend": [{"date": d, **teams} for d, teams in by_day.items()], "teams": sorted(totals),
            "total_spend_per_team": [{"team_id": t, "total_spend": s} for t, s in top]}


async def end_users(tracker: SpendTracker, params: Mapping[str, Any], hash_key: HashKey = litellm_hash) -> list[
        dict[str, Any]]:
    """The top 100 end users by spend (LiteLLM's POST body: `api_key`, `startTime`, `endTime`; default the
    last 30 days)."""
    now = datetime.now(UTC).timestamp()
    start = _instant(params.get("startTime"), "startTime") or now - _LAST_30_DAYS
    end = _instant(params.get("endTime"), "endTime") or now + 1.0
    raw = params.get("api_key")
    where = SpendFilter(api_key=_hashed(raw, hash_key) if isinstance(raw, str) and raw else None, start=start, end=end)
    groups = await tracker.report(where, ("end_user",))
    return [{"end_user": g["end_user"], "total_count": g["requests"], "total_spend": g["spend"]}
            for g in groups][:100]


async def global_spend(tracker: SpendTracker) -> dict[str, Any]:
    """Total spend over the last 30 days (LiteLLM's `/global/spend`)."""
    total = await tracker.report(_last_30_days(), ())
    return {"spend": total[0]["spend"] if total else 0.0, "max_budget": None}


# -- /spend/report (ours) ---------------------------------------------------------------------------

async def spend_report(tracker: SpendTracker, principal: Principal, q: Query,
                       hash_key: HashKey = litellm_hash) -> dict[str, Any]:
    """Spend and tokens grouped by `group_by` (comma separated: key, team, user, end_user, model,
    deployment, provider, upstream_model, day, status, route), filtered like /spend/logs. A key that is
    not an admin sees only its own rows."""
    names = [n.strip() for n in (q.get("group_by") or "model").split(",") if n.strip()]
    unknown = [n for n in names if n not in GROUPS]
    if unknown or len(names) > 4:
        raise InvalidRequestError(
            f"Invalid group_by {','.join(unknown or names)!r}: expected up to 4 of {', '.join(sorted(GROUPS))}.",
            param="group_by", code="invalid_value")
    columns = tuple(dict.fromkeys(GROUPS[n] for n in names))
    start, end = _range(q)
    where = SpendFilter(api_key=_api_key(q, hash_key), user_id=q.get("user_id") or None,
                        team_id=q.get("team_id") or None, end_user=q.get("end_user") or None,
                        model_group=q.get("model") or None, status=q.get("status") or None, start=start, end=end)
    visible = SpendTracker.visible_to(principal, where)
    groups = await tracker.report(visible, columns) if visible is not None else []
    data = [{_OUT_NAMES.get(k, k): v for k, v in g.items()} for g in groups]
    return {"object": "list", "group_by": [_OUT_NAMES.get(c, c) for c in columns],
            "start_date": q.get("start_date"), "end_date": q.get("end_date"), "data": data}


# -- parameters -------------------------------------------------------------------------------------

def _api_key(q: Query, hash_key: HashKey) -> str | None:
    raw = q.get("api_key")
    return _hashed(raw, hash_key) if raw else None


def _hashed(raw: str, hash_key: HashKey) -> str:
    """A raw key (`sk-…`) -> its stored token; a token stays as given (LiteLLM accepts either)."""
    return hash_key(raw) if raw.startswith("sk-") else raw


def _range(q: Query) -> tuple[float | None, float | None]:
    start = _instant(q.get("start_date"), "start_date")
    end = _instant(q.get("end_date"), "end_date", end_of_day=True)
    if start is not None and end is not None and end <= start:
        raise InvalidRequestError("end_date must not be before start_date.", param="end_date", code="invalid_value")
    return start, end


def _instant(value: Any, name: str, *, end_of_day: bool = False) -> float | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"Invalid '{name}': expected a date such as 2025-01-31.", param=name,
                                  code="invalid_value")
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            day = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return (day + timedelta(days=1) if end_of_day else day).timestamp()
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(f"Invalid '{name}': expected a date such as 2025-01-31 or an ISO 8601 "
                                  f"date-time, got {value[:40]!r}.", param=name, code="invalid_value") from None
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).timestamp()


def _days(start: float, end: float) -> list[str]:
    first = datetime.fromtimestamp(start, UTC).date()
    last = datetime.fromtimestamp(end - 1e-6, UTC).date()
    n = min((last - first).days, 3660)
    return [(first + timedelta(days=i)).isoformat() for i in range(n + 1)]


def _last_30_days() -> SpendFilter:
    return SpendFilter(start=datetime.now(UTC).timestamp() - _LAST_30_DAYS)


def _int(q: Query, name: str, default: int, *, maximum: int = 1_000_000) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 1 or n > maximum:
        raise InvalidRequestError(f"Invalid '{name}': expected an integer between 1 and {maximum}.", param=name,
                                  code="invalid_value")
    return n


def _bool(q: Query, name: str, default: bool) -> bool:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise InvalidRequestError(f"Invalid '{name}': expected true or false.", param=name, code="invalid_value")
