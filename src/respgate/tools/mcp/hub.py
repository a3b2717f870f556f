"""The configured MCP servers as one MCP server (the proxy's `/mcp`, streamable HTTP).

Its tools are every tool of every server the caller's key may use, named `<server>__<tool>` as the
models see them; a call goes to the server the name leads to, with that server's credentials. It is
stateless (each HTTP request stands alone, answered with JSON), so any instance of the proxy can
answer any request and nothing lives between requests. The caller is the `Principal` the proxy's
authentication put in the request's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from ...calls import Principal
from .client import McpFailure, call, list_tools
from .config import Limits, ServerConfig
from .items import SEPARATOR, function_name
from .servers import ListedTool, McpServer, configured_server

log = logging.getLogger("respgate.mcp")


class McpHub:
    def __init__(self, servers: Mapping[str, ServerConfig], limits: Limits) -> None:
        self._servers = servers
        self._limits = limits
        self._server: Server[Any] = Server("respgate", on_list_tools=self._list, on_call_tool=self._call)
        # Authentication is the proxy's (keys); DNS-rebinding checks are for unauthenticated local servers.
        self._manager = StreamableHTTPSessionManager(
            self._server, json_response=True, stateless=True,
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        # The manager's task group must be entered and left by one task: it gets its own.
        self._task = asyncio.create_task(self._run(), name="respgate-mcp-hub")
        await self._ready.wait()

    async def _run(self) -> None:
        async with self._manager.run():
            self._ready.set()
            await self._stop.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._stop.set()
            with contextlib.suppress(Exception):
                await self._task
            self._task = None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._manager.handle_request(scope, receive, send)

    # -- the MCP methods ---------------------------------------------------------------------------

    def _usable(self, ctx: ServerRequestContext[Any, Any]) -> list[McpServer]:
        principal = _principal(ctx)
        return [configured_server(c, self._limits) for c in self._servers.values() if c.usable_by(principal)]

    async def _list(self, ctx: ServerRequestContext[Any, Any],
                    params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        servers = self._usable(ctx)
        listings = await asyncio.gather(*(list_tools(s, self._limits) for s in servers), return_exceptions=True)
        tools = []
        for server, listing in zip(servers, listings, strict=True):
            if isinstance(listing, BaseException):
                log.warning("MCP server %s could not be listed: %s", server.label,
                            listing.message if isinstance(listing, McpFailure) else type(listing).__name__)
                continue
            tools += [_as_tool(server, t) for t in listing if server.offers(t)]
        return types.ListToolsResult(tools=tools)

    async def _call(self, ctx: ServerRequestContext[Any, Any],
                    params: types.CallToolRequestParams) -> types.CallToolResult:
        label, _, rest = params.name.partition(SEPARATOR)
        server = next((s for s in self._usable(ctx) if s.label == label), None)
        name = await self._tool_name(server, params.name, rest) if server is not None else None
        if server is None or name is None:
            return _error(f"Unknown tool: {params.name}")
        try:
            return await call(server, name, dict(params.arguments or {}), self._limits)
        except McpFailure as e:
            return _error(e.message)

    async def _tool_name(self, server: McpServer, wanted: str, rest: str) -> str | None:
        """The server's own name for the tool `wanted` names (listing the server when the name was
        rewritten to fit), or None when the server does not offer it."""
        if function_name(server.label, rest) == wanted and (server.config is None or server.config.offers(rest)):
            return rest
        try:
            listed = await list_tools(server, self._limits)
        except McpFailure:
            return None
        return next((t.name for t in listed if server.offers(t) and function_name(server.label, t.name) == wanted),
                    None)


def _principal(ctx: ServerRequestContext[Any, Any]) -> Principal:
    state = getattr(getattr(ctx.request, "state", None), "principal", None)
    return state if isinstance(state, Principal) else Principal()


def _as_tool(server: McpServer, tool: ListedTool) -> types.Tool:
    description = tool.description or tool.name
    if server.description:
        description = f"{description} ({server.label}: {server.description})"
    return types.Tool(name=function_name(server.label, tool.name), description=description,
                      input_schema=tool.input_schema,
                      annotations=types.ToolAnnotations.model_validate(tool.annotations) if tool.annotations else None)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)
