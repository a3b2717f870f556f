"""uvicorn's httptools protocol with limits on the request head: its size (431), its number of header
fields (431), and the time it may take to arrive (408). Each answer closes the connection.

httptools (llhttp) takes headers of any size and any number, and uvicorn arms no timer until a first
response is sent, so without these a client could hold a connection and memory forever by sending a
request line slowly or a header without end. `respgate serve` runs this protocol (`http=` in uvicorn);
the limits are the app's (`ServerLimits`), handed over in the ASGI lifespan state, since uvicorn's
workers are separate processes that each build their own app.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from .limits import LIMITS_STATE, Deadlines, ServerLimits

__all__ = ["GuardedHttpToolsProtocol"]

_WATCH: Final = "_respgate_header_deadlines"  # per server: the connections still reading a request head
_REASONS: Final = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the protocol answers for it."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = app_state.get(LIMITS_STATE)
        self._limits = limits if isinstance(limits, ServerLimits) else ServerLimits()
        watch = getattr(server_state, _WATCH, None)
        if watch is None:  # one clock per server (per event loop) for every connection's head
            watch = Deadlines(self._limits.header_timeout, _head_too_slow)
            setattr(server_state, _WATCH, watch)
        self._watch: Deadlines[GuardedHttpToolsProtocol] = watch
        self._in_head = False
        self._head_bytes = 0  # bytes fed while the head is incomplete (what httptools holds unparsed)
        self._head_size = 0  # the parsed head: request target and header fields
        self._head_fields = 0
        self._refusal = 0  # the status the head was refused with

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin_head()  # a connection that never sends a request line is cut off too

    def connection_lost(self, exc: Exception | None) -> None:
        self._watch.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            # Everything fed while the head is incomplete was head; httptools buffers a header line
            # until it ends, so a line without end is bounded here, before the callbacks see it.
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_bytes:
                self.refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:
            self._begin_head()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        if self._head_size > self._limits.max_header_bytes:
            self._refuse_in_parser(431)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_fields > self._limits.max_headers or self._head_size > self._limits.max_header_bytes:
            self._refuse_in_parser(431)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._watch.discard(self)
        super().on_headers_complete()

    def _refuse_in_parser(self, status: int) -> None:
        """From a parser callback: stops the parser; uvicorn then calls `send_400_response`."""
        self._refusal = status
        raise _Refused

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; a callback of ours stopped the parser for its own reason."""
        if self._refusal:
            self.refuse(self._refusal)
        else:
            super().send_400_response(msg)

    def refuse(self, status: int) -> None:
        """Answers `status` (unless a response is under way) and closes the connection."""
        self._in_head = False
        self._watch.discard(self)
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            reason = _REASONS[status]
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                                 % (status, reason, len(reason), reason))
        self.transport.close()

    def _begin_head(self) -> None:
        self._in_head = True
        self._head_bytes = self._head_size = self._head_fields = 0
        self._watch.add(self, self.loop)


def _head_too_slow(protocol: GuardedHttpToolsProtocol) -> None:
    protocol.refuse(408)
