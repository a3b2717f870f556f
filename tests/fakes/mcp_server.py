"""A real MCP server for tests, built with the `mcp` SDK, served on 127.0.0.1 by `ServerThread`.

An independent oracle: it imports nothing from respgate. Both transports on one app: streamable HTTP
at `/mcp` and SSE at `/sse` (messages posted to `/messages/`).

Tools (every argument a string, so that the fake models, which fill required strings with the user's
text, call them with something meaningful):

- `calculate(q)`   evaluates the last arithmetic expression in `q` ("what is 2+3*4" -> "14");
                   text with no expression is a tool error (`isError`), as is a division by zero.
- `now(timezone)`  the server clock (fixed unless given) as ISO-8601 in the zone that ends `timezone`
                   ("what time is it in Europe/Paris"); UTC when it names none.
- `shout(q)`       `q` in capitals (annotated read-only).

Hostile mode (`hostile=True`) adds:

- `huge(q)`   `huge_bytes` characters of output.
- `slow(q)`   answers after `slow_seconds` (the caller's timeout should end it first).
- `boom(q)`   raises: the SDK turns it into an `isError` result.

`slow_listing` delays `tools/list` by that many seconds; `bearer` requires `Authorization: Bearer
<bearer>` on every request (401 otherwise). `calls` records each tool call as (name, arguments), and
`on_call(name)` is told of each (e.g. to arm a fault in a fake model for the next round).
"""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import operator
import re
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from zoneinfo import ZoneInfo

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

FIXED_CLOCK = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
_EXPRESSION = re.compile(r"[\d.\s()+\-*/]*\d[\d.\s()+\-*/]*")
_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}


def evaluate(text: str) -> str:
    """The value of the last arithmetic expression in `text`, as the calculator prints it."""
    found = [m.strip() for m in _EXPRESSION.findall(text) if m.strip()]
    if not found:
        raise ToolError(f"No arithmetic expression in {text!r}.")
    try:
        value = _eval(ast.parse(found[-1], mode="eval").body)
    except ZeroDivisionError:
        raise ToolError("Division by zero.") from None
    except (SyntaxError, ValueError):
        raise ToolError(f"Cannot evaluate {found[-1]!r}.") from None
    return str(int(value)) if float(value).is_integer() else str(value)


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand)
    raise ValueError("not arithmetic")


class FakeMcp:
    """`with ServerThread(FakeMcp().app) as s: s.url + "/mcp"` (streamable HTTP) or `+ "/sse"`."""

    def __init__(self, name: str = "calc", *, hostile: bool = False, huge_bytes: int = 2_000_000,
                 slow_seconds: float = 30.0, slow_listing: float = 0.0, bearer: str | None = None,
                 json_response: bool = False, clock: Callable[[], dt.datetime] = lambda: FIXED_CLOCK,
                 on_call: Callable[[str], None] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.requests = 0  # HTTP requests seen (any path)
        self._lock = threading.Lock()
        self._bearer = bearer
        self._slow_listing = slow_listing
        server: MCPServer[Any] = MCPServer(name, instructions="Test tools.")

        def record(tool: str, **arguments: Any) -> None:
            with self._lock:
                self.calls.append((tool, arguments))
            if on_call is not None:
                on_call(tool)

        @server.tool(description="Evaluate the arithmetic expression at the end of q (+ - * / and parentheses).")
        def calculate(q: str) -> str:
            record("calculate", q=q)
            return evaluate(q)

        @server.tool(description="The current time in a time zone, ISO-8601.")
        def now(timezone: str) -> str:
            record("now", timezone=timezone)
            try:
                zone = ZoneInfo((timezone.split() or ["UTC"])[-1])
            except (ValueError, KeyError, OSError):
                zone = ZoneInfo("UTC")
            return clock().astimezone(zone).isoformat()

        @server.tool(description="q in capitals.", annotations=ToolAnnotations(read_only_hint=True))
        def shout(q: str) -> str:
            record("shout", q=q)
            return q.upper()

        if hostile:
            @server.tool(description="A very large answer.")
            def huge(q: str) -> str:
                record("huge", q=q)
                return ("0123456789" * (huge_bytes // 10 + 1))[:huge_bytes]

            @server.tool(description="A very slow answer.")
            async def slow(q: str) -> str:
                record("slow", q=q)
                await asyncio.sleep(slow_seconds)
                return "finally"

            @server.tool(description="Always fails.")
            def boom(q: str) -> str:
                record("boom", q=q)
                raise ToolError("boom: the tool broke")

        self.server = server
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self._http = server.streamable_http_app(json_response=json_response, transport_security=security)
        self._sse = server.sse_app(transport_security=security)
        self.app = Starlette(routes=[Mount("/", app=self._route)], lifespan=self._lifespan)

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        async with self.server.session_manager.run():
            yield

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        with self._lock:
            self.requests += 1
        if self._bearer is not None:
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {self._bearer}".encode():
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
        path = scope["path"]
        if path == "/mcp" and self._slow_listing and scope["method"] == "POST":
            receive = await self._maybe_delay_listing(receive)
        app: ASGIApp = self._sse if path.startswith(("/sse", "/messages")) else self._http
        await app(scope, receive, send)

    async def _maybe_delay_listing(self, receive: Receive) -> Receive:
        """Hold a `tools/list` request for `slow_listing` seconds (the body is read to know)."""
        messages = []
        more = True
        while more:
            message = await receive()
            messages.append(message)
            more = message.get("more_body", False) and message["type"] == "http.request"
        body = b"".join(m.get("body", b"") for m in messages)
        if b'"tools/list"' in body:
            await asyncio.sleep(self._slow_listing)
        replay = iter(messages)

        async def replayed() -> Any:
            try:
                return next(replay)
            except StopIteration:
                return await receive()

        return replayed
