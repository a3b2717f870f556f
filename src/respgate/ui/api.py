"""The UI's JSON API, under /ui/api/: every route answers admins only (401 without a key, 403 for a key
that is not an admin's), whatever it reads. The proxy's guard authenticates (proxy/routing.py); each
handler here checks the role before doing anything.

    GET  /ui/api/session               who is logged in; which parts of the platform are on
    GET  /ui/api/responses             the list (owner, key, model, status, since, until, q, after, limit), with
                                       the owners (as labels) and model groups its filters offer
    GET  /ui/api/responses/{id}        one response with its items, events and chain
    GET  /ui/api/responses/{id}/spend  its chain's spend-log figures: cost, latency, request id, end user
    GET  /ui/api/keys                  keys and teams (changes go through /key/* and /team/*)
    GET  /ui/api/spend                 the charts: by day, key, team, end_user, model (`by`); start_date, end_date
    GET  /ui/api/models                groups, deployments, cooldowns, live rpm / tpm
    POST /ui/api/health                calls every deployment once (as /health does)
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from ..calls import Principal
from ..errors import InvalidRequestError
from ..keys.tokens import token_of
from ..proxy.auth import require_admin
from ..proxy.model_routes import check_health
from ..proxy.routing import ExtraRoute
from ..store.base import ResponseQuery
from ..store.listing import MAX_LIMIT
from . import responses, views
from .directory import Directory
from .rollup import SpendRollup

if TYPE_CHECKING:
    from ..proxy.app import Proxy

Work = Callable[[Request], Awaitable[Any]]
PREFIX = "/ui/api"


def routes(proxy: Proxy) -> list[ExtraRoute]:
    from ..proxy.app import json_response

    gateway = proxy.gateway
    directory = Directory(gateway.platform.keys, proxy.config.general.master_key)
    tracker = gateway.platform.spend
    rollup = SpendRollup(tracker) if tracker is not None else None

    def admin(work: Work) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            require_admin(request.state.principal)
            return json_response(await work(request), headers={"Cache-Control": "no-store"})

        return handle

    async def session(request: Request) -> Any:
        principal: Principal = request.state.principal
        who = "master key" if not principal.token else (principal.key_alias or "admin key")
        if rollup is not None:
            rollup.warm(tuple(views.CHARTS.values()))  # the spend page is a likely next stop
        return {"admin": True, "who": who, "auth": proxy.auth.enabled, "version": __version__,
                "keys": gateway.platform.keys is not None, "spend": gateway.platform.spend is not None}

    async def response_list(request: Request) -> Any:
        return await responses.list_page(gateway, directory, await _query(request.query_params, directory))

    async def response_detail(request: Request) -> Any:
        return await responses.detail(gateway, directory, request.path_params["response_id"])

    async def response_spend(request: Request) -> Any:
        return await responses.spend(gateway, request.path_params["response_id"])

    async def keys(request: Request) -> Any:
        return await views.keys_view(gateway, directory)

    async def spend(request: Request) -> Any:
        return await views.spend_charts(rollup, directory, request.query_params)

    async def models(request: Request) -> Any:
        return await views.models_view(gateway)

    async def health(request: Request) -> Any:
        targets = [d for d in gateway.registry.deployments if "*" not in d.model_name]
        return await check_health(gateway, targets)

    table: list[tuple[str, Work, str]] = [
        ("/session", session, "GET"),
        ("/responses", response_list, "GET"),
        ("/responses/{response_id}", response_detail, "GET"),
        ("/responses/{response_id}/spend", response_spend, "GET"),
        ("/keys", keys, "GET"),
        ("/spend", spend, "GET"),
        ("/models", models, "GET"),
        ("/health", health, "POST"),
    ]
    return [(PREFIX + path, admin(work), [method]) for path, work, method in table]


async def _query(q: Mapping[str, str], directory: Directory) -> ResponseQuery:
    owner = q.get("owner")
    key = q.get("key")
    if key:
        token = token_of(key)
        owner = (await directory.snapshot()).owners.get(token, token[:32])
    return ResponseQuery(
        owner=owner if owner is not None and (owner or "owner" in q) else None,
        model=q.get("model") or None, status=q.get("status") or None,
        created_after=_instant(q.get("since"), "since"), created_before=_instant(q.get("until"), "until"),
        search=q.get("q") or None, after=q.get("after") or None,
        limit=_limit(q.get("limit")))


def _limit(value: str | None) -> int:
    if not value:
        return 50
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequestError(f"Invalid 'limit': expected an integer from 1 to {MAX_LIMIT}.", param="limit",
                                  code="invalid_value")
    return int(value)


def _instant(value: str | None, name: str) -> float | None:
    """Epoch seconds, or an ISO 8601 date-time (UTC unless it says otherwise)."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(f"Invalid '{name}': expected epoch seconds or an ISO 8601 date-time.", param=name,
                                  code="invalid_value") from None
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).timestamp()
