"""The UI's other pages' data: keys and teams, spend charts, models with their live state.

Models: the configured groups and deployments; the router's state (cooldowns, this minute's usage when
the router counts it, mean latency when it measures it); and live requests / tokens per minute from the
spend log's last 60 seconds, which are known whatever the routing strategy.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from ..deployments import Deployment
from ..errors import InvalidRequestError
from ..keys.records import key_view, team_view
from ..proxy.model_routes import public_url
from ..spend import SpendFilter, token_prices
from .directory import Directory
from .rollup import SpendRollup

if TYPE_CHECKING:
    from ..gateway import Gateway

_DAY: Final = 86_400.0
_LIVE_WINDOW: Final = 60.0
# The spend page's charts: name -> the spend-log column grouped by.
CHARTS: Final = {"day": "day", "key": "api_key", "team": "team_id", "end_user": "end_user", "model": "model_group"}
TOP: Final = 20  # bars per chart (days: every day of the range)


# -- keys and teams -------------------------------------------------------------------------------------

async def keys_view(gateway: Gateway, directory: Directory) -> dict[str, Any]:
    manager = gateway.platform.keys
    models = sorted({d.model_name for d in gateway.registry.deployments})
    if manager is None:
        return {"enabled": False, "keys": [], "teams": [], "models": models}
    directory.forget()  # this page shows edits at once
    snap = await directory.snapshot()
    counts: dict[str, int] = {}
    keys = []
    for k in reversed(snap.keys):  # newest first
        view = key_view(k)
        view.update(owner=snap.owners.get(k.id), team_alias=snap.team_names.get(k.team_id or ""))
        keys.append(view)
        if k.team_id is not None:
            counts[k.team_id] = counts.get(k.team_id, 0) + 1
    teams = [{**team_view(t), "key_count": counts.get(t.id, 0)} for t in reversed(snap.teams)]
    return {"enabled": True, "keys": keys, "teams": teams, "models": models}


# -- spend -------------------------------------------------------------------------------------------

def date_range(params: Mapping[str, str], now: float | None = None) -> tuple[str, str, float, float]:
    """`start_date` / `end_date` (YYYY-MM-DD, whole UTC days, the end included); the last 30 days by default."""
    today = datetime.fromtimestamp(now if now is not None else time.time(), UTC).date()
    end = _day(params.get("end_date"), "end_date") or today
    start = _day(params.get("start_date"), "start_date") or end - timedelta(days=29)
    if end < start:
        raise InvalidRequestError("end_date must not be before start_date.", param="end_date", code="invalid_value")
    if (end - start).days > 3660:
        raise InvalidRequestError("The range may span ten years at most.", param="start_date", code="invalid_value")
    first = datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()
    return start.isoformat(), end.isoformat(), first, first + ((end - start).days + 1) * _DAY


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"Invalid '{name}': expected a date such as 2025-01-31.", param=name,
                                  code="invalid_value") from None


async def spend_charts(rollup: SpendRollup | None, directory: Directory, params: Mapping[str, str]) -> dict[str, Any]:
    """The spend page's charts (`by`: some of day, key, team, end_user, model, comma-separated; all by default),
    in one answer: spend, requests and tokens per bar."""
    names = [n.strip() for n in (params.get("by") or ",".join(CHARTS)).split(",") if n.strip()]
    unknown = [n for n in names if n not in CHARTS]
    if unknown or not names:
        raise InvalidRequestError(f"Invalid chart {','.join(unknown)!r}: expected some of {', '.join(CHARTS)}.",
                                  param="by", code="invalid_value")
    start_date, end_date, _, _ = date_range(params)
    charts = {name: await _chart(rollup, directory, name, start_date, end_date) for name in dict.fromkeys(names)}
    return {"start_date": start_date, "end_date": end_date, "charts": charts}


async def _chart(rollup: SpendRollup | None, directory: Directory, chart: str, start_date: str,
                 end_date: str) -> dict[str, Any]:
    if rollup is None:
        return {"bars": [], "others": None}
    column = CHARTS[chart]
    groups = await rollup.groups(column, date.fromisoformat(start_date), date.fromisoformat(end_date))
    snap = await directory.snapshot()
    bars = []
    for g in groups:
        value = g[column]
        bars.append({"id": value, "label": _label(chart, value, g, snap.key_names, snap.team_names),
                     "spend": g["spend"], "requests": g["requests"], "tokens": g["total_tokens"]})
    others = None
    if chart == "day":
        bars = _every_day(bars, start_date, end_date)
    elif len(bars) > TOP:
        rest = bars[TOP:]
        others = {"count": len(rest), "spend": sum(b["spend"] for b in rest),
                  "requests": sum(b["requests"] for b in rest), "tokens": sum(b["tokens"] for b in rest)}
        bars = bars[:TOP]
    return {"bars": bars, "others": others}


def _label(chart: str, value: Any, group: Mapping[str, Any], keys: Mapping[str, str],
           teams: Mapping[str, str]) -> str:
    if value is None:
        return {"key": "master key / no key", "team": "no team", "end_user": "no end user"}.get(chart, "none")
    if chart == "key":
        return str(group.get("key_alias") or keys.get(value) or f"{value[:10]}…")
    if chart == "team":
        return teams.get(value, str(value))
    return str(value)


def _every_day(bars: list[dict[str, Any]], start_date: str, end_date: str) -> list[dict[str, Any]]:
    by_day = {b["id"]: b for b in bars}
    first, last = date.fromisoformat(start_date), date.fromisoformat(end_date)
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    return [by_day.get(d) or {"id": d, "label": d, "spend": 0.0, "requests": 0, "tokens": 0} for d in days]


# -- models ------------------------------------------------------------------------------------------

async def models_view(gateway: Gateway) -> dict[str, Any]:
    registry, router = gateway.registry, gateway.router
    groups = registry.groups()
    # the configured deployments, then those made for model names a wildcard (`openai/*`) matched
    deployments = list(registry.deployments) + [d for g in groups.values() for d in g if d not in registry.deployments]
    snap = await router.state.snapshot([d.id for d in deployments], usage=True, latency=True)
    live = await _live(gateway)
    names = list(dict.fromkeys([d.model_name for d in registry.deployments] + list(groups)))
    out = []
    for name in names:
        members = [d for d in deployments if d.model_name == name]
        out.append({"name": name, "wildcard": "*" in name,
                    "deployments": [_deployment(d, snap.cooling, snap.usage, snap.latency, live) for d in members]})
    settings = router.settings
    return {"groups": out, "routing_strategy": settings.routing_strategy, "shared_state": settings.redis is not None,
            "spend_tracked": gateway.platform.spend is not None, "window_seconds": _LIVE_WINDOW,
            "now": time.time()}


async def _live(gateway: Gateway) -> dict[str, dict[str, Any]]:
    tracker = gateway.platform.spend
    if tracker is None:
        return {}
    since = time.time() - _LIVE_WINDOW
    groups = await tracker.report(SpendFilter(start=since), ("deployment_id", "status"))
    live: dict[str, dict[str, Any]] = {}
    for g in groups:
        entry = live.setdefault(g["deployment_id"] or "", {"requests": 0, "tokens": 0, "failures": 0, "spend": 0.0})
        entry["requests"] += g["requests"]
        entry["tokens"] += g["total_tokens"]
        entry["spend"] += g["spend"]
        if g["status"] == "failure":
            entry["failures"] += g["requests"]
    return live


def _deployment(d: Deployment, cooling: Mapping[str, float], usage: Mapping[str, Any], latency: Mapping[str, float],
                live: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    prices = token_prices(d)
    used = usage.get(d.id)
    left = cooling.get(d.id)
    mean = latency.get(d.id)
    return {
        "id": d.id, "provider": d.provider, "upstream_model": d.upstream_model,
        "api_base": public_url(d.api_base) if d.api_base else None,
        "rpm_limit": d.rpm, "tpm_limit": d.tpm, "max_parallel_requests": d.extra.get("max_parallel_requests"),
        "cooling_down": left is not None, "cooldown_seconds_left": round(left, 1) if left is not None else None,
        "router_minute": {"requests": used.requests, "tokens": used.tokens} if used is not None else None,
        "latency_ms": round(mean * 1000.0, 1) if mean is not None else None,
        "live": live.get(d.id, {"requests": 0, "tokens": 0, "failures": 0, "spend": 0.0}),
        "input_per_million": prices.input * 1e6 if prices is not None else None,
        "output_per_million": prices.output * 1e6 if prices is not None else None,
    }
