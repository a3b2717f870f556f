"""The Responses API's WebSocket mode on `/v1/responses` and `/responses` (the openai SDK's
`client.responses.connect()`), for every provider: the socket's glue around `wsmode.Session`.

The handshake is authenticated exactly like HTTP (`Authorization: Bearer` or `api-key`); a refusal
is the HTTP error itself (401 with OpenAI's error body) where the server can answer a handshake
with a response, else close code 1008. No message carries a secret.

Every response goes through the gateway's own stream machinery, native OpenAI upstreams included
(over HTTP/SSE upstream): one code path for routing, state, hooks and storage.

Close codes: 1000 idle timeout; 1001 the connection's age limit (`websocket_max_connection_seconds`,
clients may reconnect); 1008 a client that stopped reading while events waited for it
(`websocket_send_timeout_seconds`). Limits: see `wsmode/limits.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from starlette.types import Message, Receive, Scope, Send

from ..calls import Principal
from ..errors import NotFoundError, RateLimitError, RespgateError
from ..wsmode import ConnectionGone, Limits, Session, TokenBucket

if TYPE_CHECKING:
    from .app import Proxy

log = logging.getLogger("respgate.proxy.websocket")

_PATHS = frozenset({"/v1/responses", "/responses"})
_limits: WeakKeyDictionary[Proxy, Limits] = WeakKeyDictionary()


def limits_for(proxy: Proxy) -> Limits:
    """The proxy's WebSocket limits (read from its config once; a bad value raises ConfigError)."""
    limits = _limits.get(proxy)
    if limits is None:
        limits = _limits[proxy] = Limits.from_general(proxy.config.general)
    return limits


async def serve(proxy: Proxy, scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if scope["path"] not in _PATHS:
        await _deny(scope, send, NotFoundError(f"Invalid URL (WebSocket {scope['path']})", code="not_found"))
        await _ended(receive)
        return
    limits = limits_for(proxy)
    authorization = api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"api-key":
            api_key = value.decode("latin-1")
    try:
        principal = await proxy.auth.authenticate(authorization, api_key)
    except RespgateError as e:
        await _deny(scope, send, e)
        await _ended(receive)
        return
    await send({"type": "websocket.accept"})
    await _Connection(proxy, principal, limits, receive, send).run()


async def _deny(scope: Scope, send: Send, err: RespgateError) -> None:
    """Refuse the handshake with the HTTP error (the denial-response extension), else close 1008."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = err.to_json()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   *((k.encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items())]
        await send({"type": "websocket.http.response.start", "status": err.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": err.code or "refused"})


async def _ended(receive: Receive) -> None:
    """After a refusal: wait until the server has closed the connection (its `websocket.disconnect`), so it
    does not take the app's return for a handshake left half done."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            while (await receive())["type"] != "websocket.disconnect":
                pass
            await asyncio.sleep(0)  # the transport's close completes on the next loop turn


class _Connection:
    def __init__(self, proxy: Proxy, principal: Principal, limits: Limits, receive: Receive, send: Send) -> None:
        self.limits = limits
        self._receive = receive
        self._send = send
        self.session = Session(proxy.gateway, principal, limits, self._emit)
        self.session.on_idle = self._on_idle
        self._loop = asyncio.get_running_loop()
        self._started = self._last_activity = self._loop.time()
        self._close: tuple[int, str] | None = None
        self._closing = asyncio.Event()
        self._gone = False  # the client disconnected
        self._sending = 0  # sends under way
        self._stalled_since: float | None = None  # while sends are under way: the last time one finished

    async def run(self) -> None:
        reader = asyncio.create_task(self._read(), name="respgate-ws-reader")
        closing = asyncio.create_task(self._closing.wait())
        watchdog = asyncio.create_task(self._watch())
        tasks = (reader, closing, watchdog)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, Exception) and not isinstance(result, ConnectionGone):
                    log.error("websocket reader raised %s", type(result).__name__, exc_info=result)
            await self.session.close()
            if not self._gone:
                # The close frame waits behind the events already in the transport's buffer: a client that
                # reads again gets them and the code; one that never does is dropped after send_timeout.
                code, reason = self._close or (1000, "")
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.limits.send_timeout):
                        await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def _shut(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
        self._closing.set()

    async def _emit(self, data: bytes) -> None:
        """One event to the client. The send waits while the transport's buffer is full (backpressure to
        the response's upstream); `_watch` closes a client on which sends made no progress for
        `send_timeout`, so events never pile up in the server. No timer per event: they are many."""
        if self._close is not None or self._gone:
            raise ConnectionGone
        if not self._sending:
            self._stalled_since = self._loop.time()
        self._sending += 1
        try:
            await self._send({"type": "websocket.send", "text": data.decode()})
        except OSError:  # uvicorn's ClientDisconnected
            self._gone = True
            self._closing.set()
            raise ConnectionGone from None
        finally:
            self._sending -= 1
            self._stalled_since = self._loop.time() if self._sending else None

    async def _watch(self) -> None:
        timeout = self.limits.send_timeout
        while True:
            await asyncio.sleep(timeout / 4)
            since = self._stalled_since
            if since is not None and self._loop.time() - since >= timeout:
                log.warning("websocket client read nothing for %gs while events waited: closing with 1008", timeout)
                self._shut(1008, "client is not reading")
                return

    def _on_idle(self) -> None:
        self._last_activity = self._loop.time()
        if self.session.expired:
            self._shut(1001, "connection age limit reached")

    async def _read(self) -> None:
        bucket = TokenBucket(self.limits.messages_per_second, self._loop.time)
        while True:
            try:
                async with asyncio.timeout(self._wait()):
                    message = await self._receive()
            except TimeoutError:
                if self._timers_due():
                    return
                continue
            if message["type"] == "websocket.disconnect":
                self._gone = True
                return
            raw = _payload(message)
            if raw is None:
                continue
            now = self._last_activity = self._loop.time()
            if not bucket.take(now):
                await self.session.reject(RateLimitError(
                    f"Too many messages on this connection: the limit is {self.limits.messages_per_second:g} a "
                    "second. The message was not processed.", code="rate_limit_exceeded"))
                continue
            await self.session.handle(raw)

    def _wait(self) -> float:
        """Seconds until the idle timeout or the age limit may be due."""
        now = self._loop.time()
        idle_at = now + self.limits.idle_timeout if self.session.busy else \
            self._last_activity + self.limits.idle_timeout
        age_at = self._started + self.limits.max_connection_seconds
        due = idle_at if self.session.expired else min(idle_at, age_at)
        return max(0.0, due - now)

    def _timers_due(self) -> bool:
        now = self._loop.time()
        if not self.session.expired and now - self._started >= self.limits.max_connection_seconds:
            self.session.expired = True  # no new responses; the socket closes once the running ones end
            if not self.session.busy:
                self._shut(1001, "connection age limit reached")
                return True
        if not self.session.busy and now - self._last_activity >= self.limits.idle_timeout:
            self._shut(1000, "idle timeout")
            return True
        return False


def _payload(message: Message) -> str | bytes | None:
    if message["type"] != "websocket.receive":
        return None
    text = message.get("text")
    return text if text is not None else message.get("bytes")
