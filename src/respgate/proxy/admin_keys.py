"""/key/*, /team/*, /user/*, /customer/* (and LiteLLM's /end_user/* aliases): LiteLLM's admin API.

Thin routes over `keys.Admin`: read the query or JSON body, check the caller may do this, answer
with what the operation returns. Admin routes need the master key or an admin key (a key of a user
whose `user_role` is `proxy_admin`); a key may read its own /key/info, and its own team's and
user's info.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..calls import Principal
from ..errors import InvalidRequestError
from .auth import require_admin
from .routing import ExtraRoute

if TYPE_CHECKING:
    from ..keys.admin_people import Admin
    from .app import Proxy

Op = Callable[["Admin", Request, Principal], Awaitable[Any]]


def routes(proxy: Proxy) -> list[ExtraRoute]:
    def admin_api() -> Admin:
        platform = getattr(proxy.gateway, "platform", None)
        keys = getattr(platform, "keys", None)
        if keys is None or keys.admin is None:
            raise InvalidRequestError("Virtual keys need general_settings.master_key to be set.",
                                      code="virtual_keys_disabled")
        admin: Admin = keys.admin
        return admin

    async def body(request: Request) -> Any:
        return await proxy._json_body(request)

    def route(op: Op, *, admin_only: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            principal: Principal = request.state.principal
            if admin_only:
                require_admin(principal)
            result = await op(admin_api(), request, principal)
            return Response(orjson.dumps(result), media_type="application/json")

        return handler

    q = _query
    table: list[tuple[str, Op, str, bool]] = [
        ("/key/generate", lambda a, r, p: _with_body(r, body, lambda b: a.generate_key(b, p)), "POST", True),
        ("/key/update", lambda a, r, p: _with_body(r, body, a.update_key), "POST", True),
        ("/key/delete", lambda a, r, p: _with_body(r, body, a.delete_keys), "POST", True),
        ("/key/block", lambda a, r, p: _with_body(r, body, lambda b: a.block_key(b, True)), "POST", True),
        ("/key/unblock", lambda a, r, p: _with_body(r, body, lambda b: a.block_key(b, False)), "POST", True),
        ("/key/regenerate", lambda a, r, p: _with_body(r, body, lambda b: a.regenerate_key(None, b)), "POST", True),
        ("/key/{key:path}/regenerate", lambda a, r, p: _regenerate(a, r, body), "POST", True),
        ("/key/info", lambda a, r, p: a.key_info(q(r, "key"), p), "GET", False),
        ("/key/list", lambda a, r, p: a.list_keys(dict(r.query_params)), "GET", True),
        ("/team/new", lambda a, r, p: _with_body(r, body, a.new_team), "POST", True),
        ("/team/update", lambda a, r, p: _with_body(r, body, a.update_team), "POST", True),
        ("/team/delete", lambda a, r, p: _with_body(r, body, a.delete_teams), "POST", True),
        ("/team/block", lambda a, r, p: _with_body(r, body, lambda b: a.block_team(b, True)), "POST", True),
        ("/team/unblock", lambda a, r, p: _with_body(r, body, lambda b: a.block_team(b, False)), "POST", True),
        ("/team/member_add", lambda a, r, p: _with_body(r, body, a.team_member_add), "POST", True),
        ("/team/info", lambda a, r, p: a.team_info(q(r, "team_id"), p), "GET", False),
        ("/team/list", lambda a, r, p: a.list_teams(dict(r.query_params)), "GET", True),
        ("/user/new", lambda a, r, p: _with_body(r, body, lambda b: a.new_user(b, p)), "POST", True),
        ("/user/update", lambda a, r, p: _with_body(r, body, a.update_user), "POST", True),
        ("/user/delete", lambda a, r, p: _with_body(r, body, a.delete_users), "POST", True),
        ("/user/info", lambda a, r, p: a.user_info(q(r, "user_id"), p), "GET", False),
        ("/user/list", lambda a, r, p: a.list_users(dict(r.query_params)), "GET", True),
    ]
    for prefix in ("/customer", "/end_user"):
        table += [
            (f"{prefix}/new", lambda a, r, p: _with_body(r, body, a.new_customer), "POST", True),
            (f"{prefix}/update", lambda a, r, p: _with_body(r, body, a.update_customer), "POST", True),
            (f"{prefix}/delete", lambda a, r, p: _with_body(r, body, a.delete_customers), "POST", True),
            (f"{prefix}/block", lambda a, r, p: _with_body(r, body, lambda b: a.block_customers(b, True)),
             "POST", True),
            (f"{prefix}/unblock", lambda a, r, p: _with_body(r, body, lambda b: a.block_customers(b, False)),
             "POST", True),
            (f"{prefix}/info", lambda a, r, p: a.customer_info(q(r, "end_user_id") or q(r, "user_id")), "GET", True),
            (f"{prefix}/list", lambda a, r, p: a.list_customers(), "GET", True),
        ]
    return [(path, route(op, admin_only=admin_only), [method]) for path, op, method, admin_only in table]


def _query(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


async def _with_body(request: Request, read: Callable[[Request], Awaitable[Any]],
                     op: Callable[[Any], Awaitable[Any]]) -> Any:
    return await op(await read(request))


async def _regenerate(admin: Admin, request: Request, read: Callable[[Request], Awaitable[Any]]) -> Any:
    raw = await request.body()
    body = await read(request) if raw.strip() else {}
    return await admin.regenerate_key(request.path_params["key"], body)
