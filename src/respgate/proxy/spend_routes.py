"""/spend/logs and spend reports: thin HTTP over spend/reports.py.

`GET /spend/logs` is open to every key (a key that is not an admin sees only its own rows), as is our
`GET /spend/report` (same scoping); LiteLLM's `/global/spend/*` reports are for admins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..calls import Principal
from ..errors import InvalidRequestError, ServiceUnavailableError
from ..spend import SpendTracker, reports
from .auth import require_admin
from .routing import ExtraRoute

if TYPE_CHECKING:
    from .app import Proxy


def routes(proxy: Proxy) -> list[ExtraRoute]:
    from .app import json_response

    def tracker() -> SpendTracker:
        spend = proxy.gateway.platform.spend
        if spend is None:
            raise ServiceUnavailableError("Spend tracking is not enabled on this proxy.")
        return spend

    def hash_key() -> reports.HashKey:
        keys = proxy.gateway.platform.keys
        hasher = getattr(keys, "hash_token", None)
        return hasher if callable(hasher) else reports.litellm_hash

    def handler(work: Callable[[Request, Principal], Awaitable[Any]], *, admin: bool) -> Callable[
            [Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            principal: Principal = request.state.principal
            if admin:
                require_admin(principal)
            return json_response(await work(request, principal))

        return handle

    async def logs(request: Request, principal: Principal) -> Any:
        return await reports.spend_logs(tracker(), principal, request.query_params, hash_key())

    async def report(request: Request, principal: Principal) -> Any:
        return await reports.spend_report(tracker(), principal, request.query_params, hash_key())

    async def global_report(request: Request, principal: Principal) -> Any:
        return await reports.global_report(tracker(), request.query_params, hash_key())

    async def keys(request: Request, principal: Principal) -> Any:
        return await reports.top_keys(tracker(), request.query_params)

    async def models(request: Request, principal: Principal) -> Any:
        return await reports.top_models(tracker(), request.query_params)

    async def teams(request: Request, principal: Principal) -> Any:
        return await reports.teams_daily(tracker())

    async def end_users(request: Request, principal: Principal) -> Any:
        params: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            raw = await request.body()
            if raw.strip():
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    raise InvalidRequestError("The request body is not valid JSON.", code="invalid_json") from None
                if not isinstance(body, dict):
                    raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
                params.update(body)
        return await reports.end_users(tracker(), params, hash_key())

    async def total(request: Request, principal: Principal) -> Any:
        return await reports.global_spend(tracker())

    return [
        ("/spend/logs", handler(logs, admin=False), ["GET"]),
        ("/spend/report", handler(report, admin=False), ["GET"]),
        ("/global/spend/report", handler(global_report, admin=True), ["GET"]),
        ("/global/spend/keys", handler(keys, admin=True), ["GET"]),
        ("/global/spend/models", handler(models, admin=True), ["GET"]),
        ("/global/spend/teams", handler(teams, admin=True), ["GET"]),
        ("/global/spend/end_users", handler(end_users, admin=True), ["GET", "POST"]),
        ("/global/spend", handler(total, admin=True), ["GET"]),
    ]
