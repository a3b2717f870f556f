"""/mcp: the configured MCP servers as one MCP server (streamable HTTP), for the key's servers only.

The MCP SDK answers in ASGI; the handler hands it the request's own ASGI channel and returns a
response that sends nothing more (the proxy's guard has authenticated the caller first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..errors import NotFoundError
from .routing import ExtraRoute

if TYPE_CHECKING:
    from .app import Proxy


class _AlreadySent(Response):
    """The MCP SDK has written the whole HTTP response itself."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


def routes(proxy: Proxy) -> list[ExtraRoute]:
    async def mcp(request: Request) -> Response:
        hub = proxy.gateway.tools.hub
        if hub is None:
            raise NotFoundError("No MCP servers are configured on this gateway (mcp_servers).", code="unknown_url")
        await hub.handle(request.scope, request.receive, request._send)  # the raw ASGI send: private in Starlette
        return _AlreadySent()

    methods = ["GET", "POST", "DELETE"]
    return [("/mcp", mcp, methods), ("/mcp/", mcp, methods)]
