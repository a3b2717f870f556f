"""The SDK's WebSocket mode, in process: the same session as the proxy's socket, for any provider.

    async with respgate.aresponses_connect() as conn:           # or Client(...).aresponses_connect()
        await conn.response.create(model="anthropic/claude-sonnet-4-5", input="hi")
        async for event in conn:                                # openai ResponsesServerEvent objects
            ...
        await conn.response.steer(input="shorter, please", previous_response_id=rid)

    with respgate.responses_connect(api_key=...) as conn:       # the sync twin
        conn.response.create(model="mock/echo", input="hi")
        event = conn.recv()

The interface follows the openai SDK's `client.responses.connect()` (`send`, `recv`, `recv_bytes`,
`parse_event`, iteration, `response.create` / `response.steer`, plus `response.cancel`), and events are
the bytes a proxy socket would carry, parsed into the same `openai` types. Keyword arguments of
`*connect()` (`api_key`, `api_base`, `api_version`, `custom_llm_provider`, `timeout`) are the
credentials for the deployments the connection's `provider/model` names reach, as for `responses()`.

No socket, so no rate limit or idle timeout; events wait in a bounded buffer (the connection's
`max_buffered_bytes`, default 16 MiB): when it is full the responses pause until the caller reads.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import orjson
from openai._models import BaseModel, construct_type_unchecked
from openai.types.responses.responses_server_event import ResponsesServerEvent

from .calls import Principal
from .deployments import Deployment
from .wsmode import ConnectionGone, Limits, Session

if TYPE_CHECKING:
    from .sdk import Client

_SDK = Principal("")
_BUFFER = 16 * 1024 * 1024


class ConnectionClosedError(Exception):
    """The connection was closed: nothing more will arrive."""


class _Outbox:
    """Events made by the session, waiting for the caller; bounded in bytes (one event may exceed it)."""

    def __init__(self, max_bytes: int) -> None:
        self._events: deque[bytes] = deque()
        self._size = 0
        self._max = max_bytes
        self._closed = False
        self._changed = asyncio.Condition()

    async def put(self, data: bytes) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or not self._events or self._size < self._max)
            if self._closed:
                raise ConnectionGone
            self._events.append(data)
            self._size += len(data)
            self._changed.notify_all()

    async def get(self) -> bytes | None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or bool(self._events))
            if not self._events:
                return None
            data = self._events.popleft()
            self._size -= len(data)
            self._changed.notify_all()
            return data

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._events.clear()
            self._changed.notify_all()


class _Core:
    """The session and its outbox, living on the client's private event loop."""

    def __init__(self, client: Client, credentials: Mapping[str, Any], max_buffered_bytes: int) -> None:
        self.client = client
        self._credentials = dict(credentials)
        self._max = max_buffered_bytes
        self.outbox: _Outbox | None = None
        self.session: Session | None = None

    async def open(self) -> None:  # on the client's loop: asyncio objects bind to it
        self.outbox = _Outbox(self._max)
        limits = Limits(max_message_bytes=1 << 62, max_queued_bytes=1 << 62)
        self.session = Session(self.client._gateway, _SDK, limits, self.outbox.put,
                               deployment_for=self._deployment)

    def _deployment(self, body: dict[str, Any]) -> Deployment | None:
        model = body.get("model")
        return self.client._deployment(model if isinstance(model, str) else None, dict(self._credentials))

    async def handle(self, data: bytes) -> None:
        assert self.session is not None
        await self.session.handle(data)

    async def get(self) -> bytes | None:
        assert self.outbox is not None
        return await self.outbox.get()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.outbox is not None:
            await self.outbox.close()


def _serialise(event: Any) -> bytes:
    if isinstance(event, BaseModel):
        return event.to_json(use_api_names=True, exclude_unset=True).encode()
    return orjson.dumps(dict(event))


def parse_event(data: str | bytes) -> ResponsesServerEvent:
    """A server event as the openai SDK builds it (leniently, unknown fields kept)."""
    return cast(ResponsesServerEvent, construct_type_unchecked(value=orjson.loads(data),
                                                               type_=cast(Any, ResponsesServerEvent)))


def _create_event(params: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response.create", **{k: v for k, v in params.items() if v is not None}}


def _cancel_event(response_id: str | None, stream_id: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.cancel"}
    if response_id is not None:
        event["response_id"] = response_id
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event


# -- async ----------------------------------------------------------------------------------------------

class AsyncResponseResource:
    def __init__(self, connection: AsyncResponsesConnection) -> None:
        self._connection = connection

    async def create(self, **params: Any) -> None:
        """`response.create` with the body of `POST /v1/responses` (plus `stream_id`)."""
        await self._connection.send(_create_event(params))

    async def steer(self, *, input: Any, previous_response_id: str) -> None:
        await self._connection.send({"type": "response.steer", "input": input,
                                     "previous_response_id": previous_response_id})

    async def cancel(self, *, response_id: str | None = None, stream_id: str | None = None) -> None:
        await self._connection.send(_cancel_event(response_id, stream_id))


class AsyncResponsesConnection:
    def __init__(self, core: _Core) -> None:
        self._core = core
        self.response = AsyncResponseResource(self)

    async def send(self, event: Mapping[str, Any] | BaseModel) -> None:
        await self._core.client._arun(self._core.handle(_serialise(event)))

    async def recv_bytes(self) -> bytes:
        data = await self._core.client._arun(self._core.get())
        if data is None:
            raise ConnectionClosedError("The connection is closed.")
        return data

    async def recv(self) -> ResponsesServerEvent:
        return parse_event(await self.recv_bytes())

    parse_event = staticmethod(parse_event)

    async def __aiter__(self) -> AsyncIterator[ResponsesServerEvent]:
        """Events until the connection is closed."""
        while True:
            data = await self._core.client._arun(self._core.get())
            if data is None:
                return
            yield parse_event(data)

    async def close(self) -> None:
        await self._core.client._arun(self._core.close())


class AsyncResponsesConnectionManager:
    def __init__(self, client: Client, credentials: Mapping[str, Any], max_buffered_bytes: int) -> None:
        self._core = _Core(client, credentials, max_buffered_bytes)
        self._connection: AsyncResponsesConnection | None = None

    async def __aenter__(self) -> AsyncResponsesConnection:
        await self._core.client._arun(self._core.open())
        self._connection = AsyncResponsesConnection(self._core)
        return self._connection

    enter = __aenter__

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._connection is not None:
            await self._connection.close()


# -- sync -----------------------------------------------------------------------------------------------

class ResponseResource:
    def __init__(self, connection: ResponsesConnection) -> None:
        self._connection = connection

    def create(self, **params: Any) -> None:
        self._connection.send(_create_event(params))

    def steer(self, *, input: Any, previous_response_id: str) -> None:
        self._connection.send({"type": "response.steer", "input": input, "previous_response_id": previous_response_id})

    def cancel(self, *, response_id: str | None = None, stream_id: str | None = None) -> None:
        self._connection.send(_cancel_event(response_id, stream_id))


class ResponsesConnection:
    def __init__(self, core: _Core) -> None:
        self._core = core
        self.response = ResponseResource(self)

    def send(self, event: Mapping[str, Any] | BaseModel) -> None:
        self._core.client._run(self._core.handle(_serialise(event)))

    def recv_bytes(self, timeout: float | None = None) -> bytes:
        """The next event's bytes; TimeoutError after `timeout` seconds (nothing is lost)."""
        future = self._core.client._submit(self._core.get())
        try:
            data = future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise
        if data is None:
            raise ConnectionClosedError("The connection is closed.")
        return data

    def recv(self, timeout: float | None = None) -> ResponsesServerEvent:
        return parse_event(self.recv_bytes(timeout))

    parse_event = staticmethod(parse_event)

    def __iter__(self) -> Iterator[ResponsesServerEvent]:
        while True:
            data = self._core.client._run(self._core.get())
            if data is None:
                return
            yield parse_event(data)

    def close(self) -> None:
        if not self._core.client._loop.is_closed():
            self._core.client._run(self._core.close())


class ResponsesConnectionManager:
    def __init__(self, client: Client, credentials: Mapping[str, Any], max_buffered_bytes: int) -> None:
        self._core = _Core(client, credentials, max_buffered_bytes)
        self._connection: ResponsesConnection | None = None

    def __enter__(self) -> ResponsesConnection:
        self._core.client._run(self._core.open())
        self._connection = ResponsesConnection(self._core)
        return self._connection

    enter = __enter__

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._connection is not None:
            self._connection.close()


# -- entry points (the lead exports them from sdk.py / the package) ------------------------------------

def connect(client: Client | None = None, *, max_buffered_bytes: int = _BUFFER,
            **credentials: Any) -> ResponsesConnectionManager:
    """`with connect() as conn:` a WebSocket-mode session in process (sync)."""
    return ResponsesConnectionManager(client or _default(), credentials, max_buffered_bytes)


def aconnect(client: Client | None = None, *, max_buffered_bytes: int = _BUFFER,
             **credentials: Any) -> AsyncResponsesConnectionManager:
    """`async with aconnect() as conn:` a WebSocket-mode session in process."""
    return AsyncResponsesConnectionManager(client or _default(), credentials, max_buffered_bytes)


def _default() -> Client:
    from .sdk import default_client

    return default_client()
