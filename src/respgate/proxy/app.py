"""The proxy: thin HTTP routes over the Gateway. No route knows a provider exists.

Every route answers with and without the `/v1` prefix, as LiteLLM's and OpenAI's clients use both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Literal

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .. import chatapi
from ..config import Config
from ..errors import GatewayTimeoutError, InvalidRequestError, NotFoundError, RequestTooLargeError, RespgateError
from ..events import Event
from ..gateway import Gateway, Principal
from ..request import INVALID_JSON_MESSAGE
from ..store.factory import open_store
from .auth import Authenticator
from .openapi import openapi_document

log = logging.getLogger("respgate.proxy")

_JSON = "application/json"
_CREATE_PATHS = frozenset({"/v1/responses", "/responses"})
_SERVER_ERROR = "The server had an error while processing your request."
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return Response(body, status_code=status, media_type=_JSON, headers=headers)


def error_response(err: RespgateError) -> Response:
    return json_response(err.to_json(), err.status, err.headers or None)


class Proxy:
    """Holds the gateway and the settings the routes need; `app` is the ASGI application."""

    def __init__(self, config: Config, gateway: Gateway | None = None) -> None:
        self.config = config
        self.gateway = gateway or Gateway(config, open_store(config.general.database_url))
        self.auth = Authenticator(config.general.master_key)
        self.max_body = config.general.max_request_body_bytes
        self.timeout = config.general.request_timeout
        self.routes = Starlette(routes=self._routes(), lifespan=self._lifespan,
                                exception_handlers={HTTPException: _http_exception, Exception: _unexpected})

    @property
    def app(self) -> Proxy:
        """The ASGI application (the proxy itself)."""
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry. `POST /v1/responses` — the hot path — is served straight from ASGI messages;
        everything else goes through Starlette's routing."""
        if scope["type"] == "http" and scope["path"] in _CREATE_PATHS:
            if scope["method"] == "POST":
                await self._create_fast(scope, receive, send)
            else:
                err = _method_not_allowed(scope["method"], scope["path"])
                await _send_json(send, err.status, err.to_json(), [(b"allow", b"POST")])
        else:
            await self.routes(scope, receive, send)

    async def _create_fast(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = api_key = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"api-key":
                api_key = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        try:
            principal = self.auth.authenticate(authorization, api_key)
            if length is not None and length.isdigit() and int(length) > self.max_body:
                raise self._too_large()
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    raise self._too_large()
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = parse_json(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            if isinstance(body, dict) and body.get("stream") is True:
                events = await self._with_timeout(self.gateway.stream(body, principal))
                await _sse(events)(scope, receive, send)
                return
            raw = await self._with_timeout(self.gateway.create(body, principal))
            await _send_json(send, 200, raw, ())
        except RespgateError as e:
            await _send_json(send, e.status, e.to_json(), [(k.encode(), v.encode()) for k, v in e.headers.items()])
        except Exception as e:  # a bug: answer in OpenAI's shape, log without request content
            log.error("unhandled %s on POST %s", type(e).__name__, scope["path"], exc_info=e)
            await _send_json(send, 500, RespgateError(_SERVER_ERROR).to_json(), ())

    def _too_large(self) -> RequestTooLargeError:
        return RequestTooLargeError(f"The request body exceeds the limit of {self.max_body} bytes.")

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.gateway.start()
        try:
            yield
        finally:
            await self.gateway.close()

    def _routes(self) -> list[Route]:
        table: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
            ("/responses/compact", self.compact, ["POST"]),
            ("/responses/input_tokens", self.input_tokens, ["POST"]),
            ("/responses/{response_id}", self.retrieve, ["GET"]),
            ("/responses/{response_id}", self.delete, ["DELETE"]),
            ("/responses/{response_id}/cancel", self.cancel, ["POST"]),
            ("/responses/{response_id}/input_items", self.input_items, ["GET"]),
            ("/models", self.models, ["GET"]),
            ("/chat/completions", self.chat_completions, ["POST"]),
            ("/conversations", self.create_conversation, ["POST"]),
            ("/conversations/{conversation_id}", self.retrieve_conversation, ["GET"]),
            ("/conversations/{conversation_id}", self.update_conversation, ["POST"]),
            ("/conversations/{conversation_id}", self.delete_conversation, ["DELETE"]),
            ("/conversations/{conversation_id}/items", self.conversation_items, ["GET"]),
            ("/conversations/{conversation_id}/items", self.add_conversation_items, ["POST"]),
            ("/conversations/{conversation_id}/items/{item_id}", self.conversation_item, ["GET"]),
            ("/conversations/{conversation_id}/items/{item_id}", self.delete_conversation_item, ["DELETE"]),
        ]
        routes = []
        for path, handler, methods in table:
            routes.append(Route("/v1" + path, self._guard(handler), methods=methods))
            routes.append(Route(path, self._guard(handler), methods=methods))
        routes += [
            Route("/health", self._guard(self.health), methods=["GET"]),
            Route("/health/liveliness", self.liveliness, methods=["GET"]),
            Route("/health/liveness", self.liveliness, methods=["GET"]),
            Route("/health/readiness", self.readiness, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]
        return routes

    def _guard(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Authentication and the error shape for every API route."""

        async def guarded(request: Request) -> Response:
            try:
                headers = request.headers
                request.state.principal = self.auth.authenticate(headers.get("authorization"),
                                                                 headers.get("api-key"))
                return await handler(request)
            except RespgateError as e:
                return error_response(e)

        return guarded

    # -- helpers -------------------------------------------------------------------------------------

    async def _json_body(self, request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large()
            chunks.append(chunk)
        return parse_json(b"".join(chunks))

    async def _with_timeout(self, work: Awaitable[Any]) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await work
        except TimeoutError:
            raise GatewayTimeoutError(f"The request did not finish within {self.timeout:g} seconds.") from None

    @staticmethod
    def _principal(request: Request) -> Principal:
        principal: Principal = request.state.principal
        return principal

    # -- /v1/responses/... (POST /v1/responses itself is `_create_fast`) ----------------------------

    async def retrieve(self, request: Request) -> Response:
        response_id = request.path_params["response_id"]
        q = request.query_params
        include = q.getlist("include[]") or q.getlist("include")
        if q.get("stream", "").lower() == "true":
            starting_after = _int_param(q.get("starting_after"), "starting_after", minimum=-1)
            events = await self.gateway.retrieve_stream(response_id, self._principal(request), starting_after)
            return _sse(events)
        return json_response(await self.gateway.retrieve(response_id, self._principal(request), include))

    async def delete(self, request: Request) -> Response:
        return json_response(await self.gateway.delete(request.path_params["response_id"],
                                                       self._principal(request)))

    async def cancel(self, request: Request) -> Response:
        return json_response(await self.gateway.cancel(request.path_params["response_id"],
                                                       self._principal(request)))

    async def input_items(self, request: Request) -> Response:
        q = request.query_params
        limit = _int_param(q.get("limit"), "limit", minimum=1, maximum=100)
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequestError(
                f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order",
                code="invalid_value")
        sort: Literal["asc", "desc"] = "asc" if order == "asc" else "desc"
        page = await self.gateway.input_items(
            request.path_params["response_id"], self._principal(request), limit=20 if limit is None else limit,
            after=q.get("after"), before=q.get("before"), order=sort,
            include=q.getlist("include[]") or q.getlist("include"))
        return json_response(page)

    async def compact(self, request: Request) -> Response:
        body = await self._json_body(request)
        return json_response(await self._with_timeout(self.gateway.compact(body, self._principal(request))))

    async def input_tokens(self, request: Request) -> Response:
        body = await self._json_body(request)
        return json_response(await self._with_timeout(self.gateway.input_tokens(body, self._principal(request))))

    # -- /v1/chat/completions: the same gateway, another shape ------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        body = await self._json_body(request)
        if isinstance(body, dict) and body.get("stream") is True:
            chunks = await self._with_timeout(chatapi.stream(self.gateway, body, self._principal(request)))
            return StreamingResponse(chatapi.sse_frames(chunks), media_type="text/event-stream",
                                     headers=_SSE_HEADERS)
        return json_response(await self._with_timeout(chatapi.create(self.gateway, body, self._principal(request))))

    # -- /v1/conversations: thin over gateway.conversations ---------------------------------------

    async def create_conversation(self, request: Request) -> Response:
        body = await self._json_body(request)
        return json_response(await self.gateway.conversations.create(body, self._principal(request).owner))

    async def retrieve_conversation(self, request: Request) -> Response:
        return json_response(await self.gateway.conversations.retrieve(
            request.path_params["conversation_id"], self._principal(request).owner))

    async def update_conversation(self, request: Request) -> Response:
        body = await self._json_body(request)
        return json_response(await self.gateway.conversations.update(
            request.path_params["conversation_id"], body, self._principal(request).owner))

    async def delete_conversation(self, request: Request) -> Response:
        return json_response(await self.gateway.conversations.delete(
            request.path_params["conversation_id"], self._principal(request).owner))

    async def conversation_items(self, request: Request) -> Response:
        q = request.query_params
        limit = _int_param(q.get("limit"), "limit", minimum=1, maximum=100)
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequestError(
                f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order",
                code="invalid_value")
        return json_response(await self.gateway.conversations.list_items(
            request.path_params["conversation_id"], self._principal(request).owner,
            limit=20 if limit is None else limit, after=q.get("after"), order="asc" if order == "asc" else "desc"))

    async def add_conversation_items(self, request: Request) -> Response:
        body = await self._json_body(request)
        return json_response(await self.gateway.conversations.add_items(
            request.path_params["conversation_id"], body, self._principal(request).owner))

    async def conversation_item(self, request: Request) -> Response:
        p = request.path_params
        return json_response(await self.gateway.conversations.item(
            p["conversation_id"], p["item_id"], self._principal(request).owner))

    async def delete_conversation_item(self, request: Request) -> Response:
        p = request.path_params
        return json_response(await self.gateway.conversations.delete_item(
            p["conversation_id"], p["item_id"], self._principal(request).owner))

    # -- models, health, docs ----------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        return json_response({"object": "list", "data": self.gateway.models()})

    async def health(self, request: Request) -> Response:
        deployments = [{"model": d.model_name, "provider": d.provider, "id": d.id, "api_base": d.api_base}
                       for d in self.gateway.registry.deployments]
        return json_response({"healthy_endpoints": deployments, "unhealthy_endpoints": [],
                              "healthy_count": len(deployments), "unhealthy_count": 0})

    async def liveliness(self, request: Request) -> Response:
        return json_response("I'm alive!")

    async def readiness(self, request: Request) -> Response:
        return json_response({"status": "healthy", "db": "connected"})

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document())


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequestError(INVALID_JSON_MESSAGE, code="invalid_json") from None


async def _send_json(send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def _sse(events: AsyncIterator[Event]) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        async for ev in events:
            yield ev.sse()

    return StreamingResponse(frames(), media_type="text/event-stream", headers=_SSE_HEADERS)


def _int_param(value: str | None, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise InvalidRequestError(f"Invalid type for '{name}': expected an integer, but got a string instead.",
                                  param=name, code="invalid_type") from None
    if n < minimum or (maximum is not None and n > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise InvalidRequestError(f"Invalid '{name}': must be {bounds}.", param=name, code="invalid_value")
    return n


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return error_response(NotFoundError(f"Invalid URL ({request.method} {request.url.path})",
                                            code="unknown_url"))
    if status == 405:
        return error_response(_method_not_allowed(request.method, request.url.path))
    return error_response(RespgateError(str(getattr(exc, "detail", "error")), status=status,
                                        type="invalid_request_error"))


def _method_not_allowed(method: str, path: str) -> RespgateError:
    return RespgateError(f"Method {method} is not allowed on {path}.", status=405, type="invalid_request_error",
                         code="method_not_allowed")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return error_response(RespgateError(_SERVER_ERROR))
