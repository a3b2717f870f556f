"""The proxy: thin HTTP routes over the Gateway. No route knows a provider exists.

Every route answers with and without the `/v1` prefix, as LiteLLM's and OpenAI's clients use both.
"""

from __future__ import annotations

import asyncio
import gc
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
from ..calls import Call, CallRoute, Principal, new_request_id
from ..config import Config
from ..errors import (
    GatewayTimeoutError,
    InvalidRequestError,
    NotFoundError,
    RequestTimeoutError,
    RequestTooLargeError,
    RespgateError,
)
from ..events import Event
from ..gateway import Gateway
from ..observe import logs
from ..request import INVALID_JSON_MESSAGE
from ..security import urls
from ..security.cors import with_cors
from ..security.limits import LIMITS_STATE, ReadClock, ServerLimits
from ..store.factory import database_target, open_store
from . import admin_keys, mcp_routes, metrics_routes, model_routes, prompt_routes, spend_routes, ui_routes, websocket
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

    def __init__(self, config: Config, gateway: Gateway | None = None, *, server_process: bool = False) -> None:
        """`server_process`: this app is the process's whole job (`respgate serve`), so it may tune the
        process's garbage collector once started (`tune_gc`)."""
        self.config = config
        self.server_process = server_process
        self.gateway = gateway or Gateway(config, open_store(config.general.database_url),
                                          database=database_target(config.general.database_url))
        self.auth = Authenticator(config.general.master_key, self.gateway.platform.keys)
        self.max_body = config.general.max_request_body_bytes
        self.timeout = config.general.request_timeout
        self.url_policy = urls.UrlPolicy.from_config(config)  # SSRF guard for the URLs clients hand on
        self.server_limits = ServerLimits.from_settings(config.general.extra)
        self.body_clock = ReadClock(self.server_limits.body_timeout)  # slow uploads -> 408
        self.routes = Starlette(routes=self._routes(), lifespan=self._lifespan,
                                exception_handlers={HTTPException: _http_exception, Exception: _unexpected})
        self._asgi = with_cors(self, config.general.extra)  # itself unless allow_origins is configured

    @property
    def app(self) -> Any:
        """The ASGI application: the proxy itself, behind CORS when `allow_origins` is configured."""
        return self._asgi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry. `POST /v1/responses` — the hot path — is served straight from ASGI messages;
        everything else goes through Starlette's routing."""
        bound = urls.bind(self.url_policy)  # every URL this request hands on is checked by this policy
        try:
            if scope["type"] == "websocket":
                await websocket.serve(self, scope, receive, send)
            elif scope["type"] == "http" and scope["path"] in _CREATE_PATHS:
                if scope["method"] == "POST":
                    await self._create_fast(scope, receive, send)
                else:
                    err = _method_not_allowed(scope["method"], scope["path"])
                    await _send_json(send, err.status, err.to_json(), [(b"allow", b"POST")])
            else:
                await self.routes(scope, receive, send)
        finally:
            urls.unbind(bound)

    async def _create_fast(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = api_key = litellm_key = length = given_id = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"api-key":
                api_key = value.decode("latin-1")
            elif name == b"content-length":
                length = value
            elif name == b"x-request-id":
                given_id = _request_id(value)
            elif name == b"x-litellm-api-key":
                litellm_key = value.decode("latin-1")
        request_id = given_id or new_request_id()
        bound = logs.bind_request_id(request_id)  # every log line of this request carries its id
        try:
            principal = await self.auth.authenticate(authorization, api_key, litellm_key)
            if length is not None and length.isdigit() and int(length) > self.max_body:
                raise self._too_large()
            chunks: list[bytes] = []
            size = 0
            more = True
            reader = self.body_clock.start()
            try:
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
            except asyncio.CancelledError:
                if not self.body_clock.late(reader):
                    raise
                raise self._body_too_slow() from None
            finally:
                self.body_clock.stop(reader)
            body = parse_json(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            if isinstance(body, dict) and body.get("stream") is True:
                call = Call(principal, body, stream=True, request_id=request_id)
                events = await self._with_timeout(self.gateway.stream(body, principal, call=call))
                await _sse(events, {"x-request-id": request_id})(scope, receive, send)
                return
            call = Call(principal, body, request_id=request_id)
            raw = await self._with_timeout(self.gateway.create(body, principal, call=call))
            await _send_json(send, 200, raw, _call_headers(call))
        except RespgateError as e:
            headers = [(k.encode(), v.encode()) for k, v in e.headers.items()]
            headers.append((b"x-request-id", request_id.encode()))
            await _send_json(send, e.status, e.to_json(), headers)
        except Exception as e:  # a bug: answer in OpenAI's shape, log without request content
            log.error("unhandled %s on POST %s", type(e).__name__, scope["path"], exc_info=e)
            await _send_json(send, 500, RespgateError(_SERVER_ERROR).to_json(), ())
        finally:
            logs.reset_request_id(bound)

    def _too_large(self) -> RequestTooLargeError:
        # the connection closes: the rest of an oversized upload is not worth reading
        return RequestTooLargeError(f"The request body exceeds the limit of {self.max_body} bytes.",
                                    headers={"connection": "close"})

    def _body_too_slow(self) -> RequestTimeoutError:
        return RequestTimeoutError(f"The request body did not arrive within {self.body_clock.seconds:g} seconds.",
                                   headers={"connection": "close"})

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await self.gateway.start()
        if self.server_process:
            tune_gc()
        try:
            # The server's protocol (security/http.py) reads its request-head limits from the lifespan state.
            yield {LIMITS_STATE: self.server_limits}
        finally:
            self.body_clock.close()
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
            Route("/health/liveliness", self.liveliness, methods=["GET"]),
            Route("/health/liveness", self.liveliness, methods=["GET"]),
            Route("/health/readiness", self.readiness, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]
        # The platform's routes: each module lists (path, handler, methods); all get the same guard.
        for module in (admin_keys, spend_routes, metrics_routes, model_routes, mcp_routes, prompt_routes, ui_routes):
            for path, handler, methods in module.routes(self):
                # a handler marked `public` (an open /metrics, if so configured) does its own checks
                routes.append(Route(path, handler if getattr(handler, "public", False) else self._guard(handler),
                                    methods=methods))
        return routes

    def _guard(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Authentication and the error shape for every API route."""

        async def guarded(request: Request) -> Response:
            headers = request.headers
            given = headers.get("x-request-id")
            request.state.request_id = request_id = (_request_id(given.encode("latin-1", "replace")) if given
                                                     else None) or new_request_id()
            logs.bind_request_id(request_id)  # this request's task (and those it starts) only
            try:
                request.state.principal = await self.auth.authenticate(
                    headers.get("authorization"), headers.get("api-key"), headers.get("x-litellm-api-key"))
                response = await handler(request)
            except RespgateError as e:
                response = error_response(e)
            response.headers.setdefault("x-request-id", request_id)
            return response

        return guarded

    # -- helpers -------------------------------------------------------------------------------------

    async def _json_body(self, request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        reader = self.body_clock.start()
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body:
                    raise self._too_large()
                chunks.append(chunk)
        except asyncio.CancelledError:
            if not self.body_clock.late(reader):
                raise
            raise self._body_too_slow() from None
        finally:
            self.body_clock.stop(reader)
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

    @staticmethod
    def _call(request: Request, body: Any, route: CallRoute, *, stream: bool = False) -> Call:
        return Call(request.state.principal, body, route=route, stream=stream, request_id=request.state.request_id)

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
        call = self._call(request, body, "responses.compact")
        result = await self._with_timeout(self.gateway.compact(body, call.principal, call=call))
        return json_response(result, headers=_header_dict(call))

    async def input_tokens(self, request: Request) -> Response:
        body = await self._json_body(request)
        call = self._call(request, body, "responses.input_tokens")
        result = await self._with_timeout(self.gateway.input_tokens(body, call.principal, call=call))
        return json_response(result, headers=_header_dict(call))

    # -- /v1/chat/completions: the same gateway, another shape ------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        body = await self._json_body(request)
        if isinstance(body, dict) and body.get("stream") is True:
            call = self._call(request, body, "chat.completions", stream=True)
            chunks = await self._with_timeout(chatapi.stream(self.gateway, body, call.principal, call=call))
            return StreamingResponse(chatapi.sse_frames(chunks), media_type="text/event-stream",
                                     headers={**_SSE_HEADERS, "x-request-id": call.request_id})
        call = self._call(request, body, "chat.completions")
        result = await self._with_timeout(chatapi.create(self.gateway, body, call.principal, call=call))
        return json_response(result, headers=_header_dict(call))

    # -- /v1/conversations: thin over gateway.conversations ---------------------------------------

    async def create_conversation(self, request: Request) -> Response:
        body = await self._json_body(request)
        if isinstance(body, dict):
            urls.check_items(body.get("items"), "items")  # replayed to a provider later: images checked now
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
        if isinstance(body, dict):
            urls.check_items(body.get("items"), "items")
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

    async def liveliness(self, request: Request) -> Response:
        return json_response("I'm alive!")

    async def readiness(self, request: Request) -> Response:
        """Ready when the store answers a read (a load balancer stops sending work while it cannot)."""
        try:
            async with asyncio.timeout(2):
                await self.gateway.store.get("resp_readiness_probe")
        except (RespgateError, TimeoutError, OSError):
            return json_response({"status": "unhealthy", "db": "unavailable"}, status=503)
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


def _sse(events: AsyncIterator[Event], headers: dict[str, str] | None = None) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        async for ev in events:
            yield ev.sse()

    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={**_SSE_HEADERS, **headers} if headers else _SSE_HEADERS)


def _request_id(raw: bytes) -> str | None:
    """A client's own `x-request-id`, when it is a sane token (it goes into logs and headers)."""
    value = raw.decode("latin-1").strip()
    return value if 0 < len(value) <= 128 and value.isprintable() and " " not in value else None


def _header_dict(call: Call) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in _call_headers(call)}


GC_THRESHOLDS = (20_000, 20, 100)


def tune_gc() -> None:
    """Once the server has started: everything made so far (config, providers, price table, the openai
    types) lives as long as the process, so move it out of the collector's sight (`gc.freeze`), and
    collect the youngest generation every 20,000 allocations instead of 700. A full collection walked
    those objects on every few hundred requests: measured on one worker, 20-29% more requests per
    second and no 25 ms pauses (bench/README.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _call_headers(call: Call) -> list[tuple[bytes, bytes]]:
    """What LiteLLM's clients read from a response's headers: the request id, the cost, the deployment."""
    headers = [(b"x-request-id", call.request_id.encode()), (b"x-litellm-call-id", call.request_id.encode())]
    if call.cost is not None:
        headers.append((b"x-litellm-response-cost", repr(call.cost).encode()))
    if call.deployment is not None:
        headers.append((b"x-litellm-model-id", call.deployment.id.encode("utf-8", "replace")))
    return headers


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
