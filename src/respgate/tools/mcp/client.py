"""Talking to one MCP server through the official `mcp` SDK: list its tools, call one.

Each operation opens its own session and closes it before returning, inside one task: the SDK's
anyio task groups must be left by the task that entered them, and a streamed response is consumed
by another task than the one that started it. Every operation runs under a deadline; failures come
back as OpenAI's `McpToolCallError` shapes naming the server by label (never by URL: URLs may embed
credentials), and outputs are cut at the server's character limit with a marker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

import anyio
import httpx2
import orjson
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, Implementation
from pydantic import ValidationError

from ...security.connect import CheckedTransport, checked_client_factory
from .config import Limits
from .servers import ListedTool, McpServer

Json = dict[str, Any]

_MAX_PAGES: Final = 20
_MAX_TOOLS: Final = 500  # a server listing more is cut: each tool costs the model context
_CONNECT_TIMEOUT: Final = 10.0


def _client_info() -> Implementation:
    try:
        own = version("respgate")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        own = "0"
    return Implementation(name="respgate", version=own)


_CLIENT_INFO: Final = _client_info()

# httpx2 logs every request's URL at INFO, and an MCP server URL may carry a key in its path: quiet
# it unless the application configured that logger itself.
_HTTP_LOG = logging.getLogger("httpx2")
if _HTTP_LOG.level == logging.NOTSET:
    _HTTP_LOG.setLevel(logging.WARNING)


class McpFailure(Exception):
    """An operation on an MCP server failed; `error` is OpenAI's McpToolCallError shape."""

    def __init__(self, error: Json) -> None:
        super().__init__(error.get("message", ""))
        self.error = error

    @property
    def message(self) -> str:
        return str(self.error.get("message", ""))


@dataclass(frozen=True, slots=True)
class CallResult:
    """A tool call's outcome: `output` on success, else `error` (and the text the model is shown)."""

    output: str | None = None
    error: Json | None = None

    @property
    def model_text(self) -> str:
        """What the model reads as the function's output."""
        if self.error is None:
            return self.output or ""
        if self.error.get("type") == "mcp_tool_execution_error":
            return "Error: " + " ".join(_block_text(b) for b in self.error.get("content") or [])
        return f"Error: {self.error.get('message', 'the tool call failed')}"


async def list_tools(server: McpServer, limits: Limits) -> list[ListedTool]:
    """The server's tools (all pages, up to a bound); raises McpFailure."""
    try:
        with anyio.fail_after(server.list_timeout):
            async with _session(server, limits, server.list_timeout) as client:
                listed = []
                cursor: str | None = None
                for _ in range(_MAX_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    listed += page.tools
                    cursor = page.next_cursor
                    if cursor is None or len(listed) >= _MAX_TOOLS:
                        break
    except Exception as e:  # every failure, whatever the transport raised, becomes the item's error
        raise McpFailure(describe(e, server, server.list_timeout)) from None
    return [ListedTool(t.name, dict(t.input_schema or {"type": "object"}), t.description,
                       t.annotations.model_dump(by_alias=True, exclude_none=True) if t.annotations else None)
            for t in listed[:_MAX_TOOLS]]


async def call(server: McpServer, name: str, arguments: Json, limits: Limits) -> CallToolResult:
    """The server's own result of a tool call; raises McpFailure when there is none."""
    try:
        with anyio.fail_after(server.call_timeout):
            async with _session(server, limits, server.call_timeout) as client:
                return await client.call_tool(name, arguments)
    except Exception as e:
        raise McpFailure(describe(e, server, server.call_timeout)) from None


async def call_tool(server: McpServer, name: str, arguments: Json, limits: Limits) -> CallResult:
    """A tool call's outcome as an `mcp_call` shows it: output (cut at the server's limit) or error."""
    try:
        result = await call(server, name, arguments, limits)
    except McpFailure as e:
        return CallResult(error=e.error)
    return _outcome(result, server.max_output_chars)


@asynccontextmanager
async def _session(server: McpServer, limits: Limits, deadline: float) -> AsyncIterator[Client]:
    async with AsyncExitStack() as stack:
        headers = dict(server.headers)
        policy = server.url_policy  # a server a client named: every connection goes to a checked address only
        if server.transport == "sse":
            checked: dict[str, Any] = {} if policy is None else {"httpx_client_factory": checked_client_factory(policy)}
            transport: Any = sse_client(server.url, headers=headers, timeout=min(_CONNECT_TIMEOUT, deadline),
                                        sse_read_timeout=deadline, **checked)
        else:
            http = await stack.enter_async_context(httpx2.AsyncClient(
                headers=headers, timeout=httpx2.Timeout(min(_CONNECT_TIMEOUT, deadline), read=deadline),
                event_hooks={"response": [_size_guard(limits.max_message_bytes)]},
                transport=None if policy is None else CheckedTransport(policy)))
            transport = streamable_http_client(server.url, http_client=http,
                                               max_sse_event_size=limits.max_message_bytes)
        client = await stack.enter_async_context(Client(transport, cache=None, client_info=_CLIENT_INFO,
                                                        read_timeout_seconds=deadline))
        yield client


def _size_guard(limit: int) -> Any:
    async def guard(response: httpx2.Response) -> None:
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _TooLarge(int(length), limit)

    return guard


class _TooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes over the limit of {limit}")
        self.size, self.limit = size, limit


def _outcome(result: CallToolResult, limit: int) -> CallResult:
    texts = [b.text if b.type == "text" else orjson.dumps(b.model_dump(mode="json", by_alias=True,
                                                                       exclude_none=True)).decode()
             for b in result.content]
    if not texts and result.structured_content is not None:
        texts.append(orjson.dumps(result.structured_content).decode())
    text = truncate("\n".join(texts), limit)
    if result.is_error:
        return CallResult(error={"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": text}]})
    return CallResult(output=text)


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[output truncated by respgate: {len(text)} characters, limit {limit}]"


def describe(error: BaseException, server: McpServer, timeout: float) -> Json:
    """OpenAI's McpToolCallError for a failure (the first leaf of an exception group)."""
    e = _leaf(error)
    who = f"The MCP server '{server.label}'"
    if isinstance(e, TimeoutError | httpx2.TimeoutException):
        return _http(504, f"{who} did not answer within {timeout:g} seconds.")
    if isinstance(e, httpx2.HTTPStatusError):
        return _http(e.response.status_code, f"{who} answered HTTP {e.response.status_code}.")
    if isinstance(e, _TooLarge):
        return _http(502, f"{who} sent a message of {e.size} bytes, over the limit of {e.limit}.")
    if isinstance(e, MCPError):
        return {"type": "mcp_protocol_error", "code": e.code, "message": f"{who}: {e.message}"[:2000]}
    if isinstance(e, ValidationError):
        return {"type": "mcp_protocol_error", "code": -32603, "message": f"{who} sent an invalid MCP message."}
    if isinstance(e, httpx2.SSEError):
        return _http(502, f"{who} sent an SSE event that could not be read (too large or malformed).")
    if isinstance(e, httpx2.TransportError | OSError):
        return _http(502, f"{who} could not be reached ({type(e).__name__}).")
    return _http(502, f"{who} failed: {type(e).__name__}.")


def _http(code: int, message: str) -> Json:
    return {"type": "http_error", "code": code, "message": message}


def _leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    cause = error.__cause__
    if isinstance(error, MCPError | httpx2.HTTPError | OSError | TimeoutError):
        return error
    return _leaf(cause) if isinstance(cause, BaseException) and cause is not error else error


def _block_text(block: Any) -> str:
    return str(block.get("text", "")) if isinstance(block, dict) else str(block)
