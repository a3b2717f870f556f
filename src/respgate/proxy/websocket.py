"""The Responses API's WebSocket mode on `/v1/responses` (the openai SDK's `responses.connect()`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from .app import Proxy


async def serve(proxy: Proxy, scope: Scope, receive: Receive, send: Send) -> None:
    """Not built yet: refuse the handshake."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008})
