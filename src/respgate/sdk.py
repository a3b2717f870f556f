"""The Python SDK: LiteLLM's function names over the same Gateway the proxy uses.

    respgate.responses(model="openai/gpt-4o", input="hi")          -> openai.types.responses.Response
    respgate.responses(..., stream=True)                           -> iterator of ResponseStreamEvent
    await respgate.aresponses(...)                                 -> the same, async
    respgate.get_responses / delete_responses / cancel_responses / list_input_items / compact_responses
    respgate.completion(model="mock/echo", messages=[...])         -> openai.types.chat.ChatCompletion
    respgate.completion(..., stream=True) / await acompletion(...) -> ChatCompletionChunks, sync / async

Each call names its deployment directly (`provider/model`, keys from arguments or the usual
environment variables); a `Client(config=...)` serves a config's model groups instead. Results
are the official `openai` types, so code written for `openai` works unchanged.

All work runs on one private event loop in a daemon thread, so the sync functions work anywhere
(also inside a running loop) and the async ones share the same connection pool and store.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, Literal, TypeVar, cast

import orjson
from openai._models import construct_type
from openai.lib._parsing._completions import parse_chat_completion, type_to_response_format_param
from openai.lib._parsing._responses import parse_response, type_to_text_format_param
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import CompactedResponse, InputTokenCountResponse, Response, ResponseStreamEvent
from openai.types.responses.response_item_list import ResponseItemList

from . import chatapi, sdk_connect
from .calls import Call, Principal
from .config import Config, config_from_dicts, provider_env_defaults
from .deployments import Deployment, split_model
from .errors import InvalidRequestError, RespgateError
from .events import Event
from .gateway import Gateway
from .ids import decode_response_id
from .providers.registry import known_providers
from .store.base import Store
from .store.memory import MemoryStore

T = TypeVar("T")
_SDK = Principal("", is_admin=True)  # the SDK's user owns the config, and every MCP server in it


class Client:
    """An in-process gateway. Without a config every call names its deployment (`provider/model`)."""

    def __init__(self, config: Config | None = None, store: Store | None = None) -> None:
        self.config = config or Config.empty()
        self._store = store or MemoryStore()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="respgate-sdk", daemon=True)
        self._thread.start()
        self._gateway = Gateway(self.config, self._store, sdk=True)
        self._run(self._gateway.start())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._gateway.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    # -- loop bridging -------------------------------------------------------------------------------

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._submit(coro).result()

    async def _arun(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self._submit(coro))

    # -- deployments ---------------------------------------------------------------------------------

    def _deployment(self, model: str | None, kw: dict[str, Any]) -> Deployment | None:
        """A deployment named by the call itself, or None to route by the config's model groups."""
        api_key, api_base, api_version = kw.pop("api_key", None), kw.pop("api_base", None), kw.pop("api_version", None)
        provider = kw.pop("custom_llm_provider", None)
        if model is None or (self.config.deployments and not (api_key or api_base or provider)
                             and self._gateway.registry.has(model)):
            return None
        prefix, name = split_model(model)
        if provider:
            prefix, name = provider, model.removeprefix(f"{provider}/")
        if prefix not in known_providers():
            raise InvalidRequestError(f"Unknown provider `{prefix}` in model `{model}` (known: "
                                      f"{', '.join(sorted(known_providers()))}).", param="model",
                                      code="model_not_found")
        env = provider_env_defaults(prefix)
        return Deployment(
            model_name=model, provider=prefix, upstream_model=name,
            api_key=api_key or env.get("api_key"), api_base=api_base or env.get("api_base"),
            api_version=api_version or env.get("api_version"), timeout=kw.pop("timeout", None),
            id=_sdk_deployment_id(prefix, api_base or env.get("api_base")),
        )

    def _deployment_for_id(self, response_id: str, kw: dict[str, Any]) -> Deployment | None:
        """For follow-up calls: the provider travels in our response ids; credentials come from the call."""
        ref = decode_response_id(response_id)
        if ref is None or self._gateway.registry.by_id(ref.deployment_id) is not None:
            return None
        provider = kw.get("custom_llm_provider") or ref.deployment_id.split("~", 1)[0]
        return self._deployment(f"{provider}/unknown", {**kw, "custom_llm_provider": provider})

    # -- create ----------------------------------------------------------------------------------------

    def _body(self, model: str, input: Any, params: dict[str, Any]) -> tuple[dict[str, Any], type[Any] | None]:
        text_format = params.pop("text_format", None)
        extra_body = params.pop("extra_body", None) or {}
        body: dict[str, Any] = {"model": model}
        if input is not None:
            body["input"] = input
        for key, value in params.items():
            if value is not None:
                body[key] = value
        body.update(extra_body)
        if text_format is not None:
            text = dict(body.get("text") or {})
            text["format"] = type_to_text_format_param(text_format)
            body["text"] = text
        return body, text_format

    def _to_response(self, raw: bytes, body: dict[str, Any], text_format: type[Any] | None,
                     call: Call) -> Response:
        response = _as(Response, orjson.loads(raw))
        if text_format is not None:
            response = parse_response(text_format=text_format, input_tools=body.get("tools"), response=response)
        # LiteLLM's users read the cost and the deployment here.
        response._hidden_params = _hidden_params(call)  # type: ignore[attr-defined]
        return response

    def responses(self, input: Any = None, model: str | None = None, *, stream: bool = False,
                  **params: Any) -> Any:
        if model is None:
            raise InvalidRequestError("Missing required parameter: 'model'.", param="model",
                                      code="missing_required_parameter")
        deployment = self._deployment(model, params)
        body, text_format = self._body(model, input, params)
        call = Call(_SDK, body, stream=stream)
        if stream:
            body["stream"] = True
            events = self._run(self._gateway.stream(body, _SDK, deployment, call))
            return SyncEventStream(self, events)
        raw = self._run(self._gateway.create(body, _SDK, deployment, call))
        return self._to_response(raw, body, text_format, call)

    async def aresponses(self, input: Any = None, model: str | None = None, *, stream: bool = False,
                         **params: Any) -> Any:
        if model is None:
            raise InvalidRequestError("Missing required parameter: 'model'.", param="model",
                                      code="missing_required_parameter")
        deployment = self._deployment(model, params)
        body, text_format = self._body(model, input, params)
        call = Call(_SDK, body, stream=stream)
        if stream:
            body["stream"] = True
            events = await self._arun(self._gateway.stream(body, _SDK, deployment, call))
            return AsyncEventStream(self, events)
        raw = await self._arun(self._gateway.create(body, _SDK, deployment, call))
        return self._to_response(raw, body, text_format, call)

    # -- WebSocket mode (the openai SDK's `responses.connect()`, in process) ------------------------------

    def responses_connect(self, **kw: Any) -> sdk_connect.ResponsesConnectionManager:
        return sdk_connect.connect(self, **kw)

    def aresponses_connect(self, **kw: Any) -> sdk_connect.AsyncResponsesConnectionManager:
        return sdk_connect.aconnect(self, **kw)

    # -- stored responses ------------------------------------------------------------------------------

    async def _get(self, response_id: str, kw: dict[str, Any]) -> Response:
        include = kw.pop("include", None)
        d = self._deployment_for_id(response_id, kw)
        return _as(Response, await self._gateway.retrieve(response_id, _SDK, include, d))

    async def _delete(self, response_id: str, kw: dict[str, Any]) -> dict[str, Any]:
        return await self._gateway.delete(response_id, _SDK, self._deployment_for_id(response_id, kw))

    async def _cancel(self, response_id: str, kw: dict[str, Any]) -> Response:
        d = self._deployment_for_id(response_id, kw)
        return _as(Response, await self._gateway.cancel(response_id, _SDK, d))

    async def _input_items(self, response_id: str, kw: dict[str, Any]) -> ResponseItemList:
        d = self._deployment_for_id(response_id, kw)
        order = cast(Literal["asc", "desc"], kw.pop("order", "desc") or "desc")
        page = await self._gateway.input_items(response_id, _SDK, limit=kw.pop("limit", None) or 20,
                                               after=kw.pop("after", None), before=kw.pop("before", None),
                                               order=order, include=kw.pop("include", None), deployment=d)
        return _as(ResponseItemList, page)

    async def _compact(self, model: str, input: Any, kw: dict[str, Any]) -> CompactedResponse:
        d = self._deployment(model, kw)
        body, _ = self._body(model, input, kw)
        return _as(CompactedResponse, await self._gateway.compact(body, _SDK, d))

    async def _input_tokens(self, model: str, input: Any, kw: dict[str, Any]) -> InputTokenCountResponse:
        d = self._deployment(model, kw)
        body, _ = self._body(model, input, kw)
        return _as(InputTokenCountResponse, await self._gateway.input_tokens(body, _SDK, d))

    def get_responses(self, response_id: str, **kw: Any) -> Response:
        return self._run(self._get(response_id, kw))

    async def aget_responses(self, response_id: str, **kw: Any) -> Response:
        return await self._arun(self._get(response_id, kw))

    def delete_responses(self, response_id: str, **kw: Any) -> dict[str, Any]:
        return self._run(self._delete(response_id, kw))

    async def adelete_responses(self, response_id: str, **kw: Any) -> dict[str, Any]:
        return await self._arun(self._delete(response_id, kw))

    def cancel_responses(self, response_id: str, **kw: Any) -> Response:
        return self._run(self._cancel(response_id, kw))

    async def acancel_responses(self, response_id: str, **kw: Any) -> Response:
        return await self._arun(self._cancel(response_id, kw))

    def list_input_items(self, response_id: str, **kw: Any) -> ResponseItemList:
        return self._run(self._input_items(response_id, kw))

    async def alist_input_items(self, response_id: str, **kw: Any) -> ResponseItemList:
        return await self._arun(self._input_items(response_id, kw))

    def compact_responses(self, model: str, input: Any = None, **kw: Any) -> CompactedResponse:
        return self._run(self._compact(model, input, kw))

    async def acompact_responses(self, model: str, input: Any = None, **kw: Any) -> CompactedResponse:
        return await self._arun(self._compact(model, input, kw))

    def count_input_tokens(self, model: str, input: Any = None, **kw: Any) -> InputTokenCountResponse:
        return self._run(self._input_tokens(model, input, kw))

    async def acount_input_tokens(self, model: str, input: Any = None, **kw: Any) -> InputTokenCountResponse:
        return await self._arun(self._input_tokens(model, input, kw))

    # -- chat completions ------------------------------------------------------------------------------

    def _chat_body(self, model: str, messages: Any, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """The chat body; a pydantic `response_format` becomes its json_schema and is parsed back later."""
        response_format = params.get("response_format")
        body, _ = self._body(model, None, params)
        body["messages"] = messages
        if isinstance(response_format, type):
            body["response_format"] = type_to_response_format_param(response_format)
            return body, response_format
        return body, None

    def _to_chat_completion(self, completion: dict[str, Any], body: dict[str, Any], response_format: Any) -> Any:
        parsed = _as(ChatCompletion, completion)
        if response_format is None:
            return parsed
        return parse_chat_completion(response_format=response_format, input_tools=body.get("tools") or [],
                                     chat_completion=parsed)

    def completion(self, model: str, messages: Any, *, stream: bool = False, **params: Any) -> Any:
        """LiteLLM's `completion`: a `ChatCompletion` (parsed when `response_format` is a pydantic type),
        or with `stream=True` an iterator of `ChatCompletionChunk`."""
        deployment = self._deployment(model, params)
        body, response_format = self._chat_body(model, messages, params)
        if stream:
            body["stream"] = True
            chunks = self._run(chatapi.stream(self._gateway, body, _SDK, deployment))
            return SyncEventStream(self, chunks, parse=_parse_chunk)
        completion = self._run(chatapi.create(self._gateway, body, _SDK, deployment))
        return self._to_chat_completion(completion, body, response_format)

    async def acompletion(self, model: str, messages: Any, *, stream: bool = False, **params: Any) -> Any:
        deployment = self._deployment(model, params)
        body, response_format = self._chat_body(model, messages, params)
        if stream:
            body["stream"] = True
            chunks = await self._arun(chatapi.stream(self._gateway, body, _SDK, deployment))
            return AsyncEventStream(self, chunks, parse=_parse_chunk)
        completion = await self._arun(chatapi.create(self._gateway, body, _SDK, deployment))
        return self._to_chat_completion(completion, body, response_format)


class Router(Client):
    """LiteLLM's `Router` for the Responses API: `Router(model_list=[...], routing_strategy=...,
    num_retries=..., fallbacks=[...], redis_url=...)`; every `router_settings` key is a keyword.
    Calls name a model group; the same methods as `Client` (`responses`, `aresponses`, ...)."""

    def __init__(self, model_list: list[dict[str, Any]], *, store: Store | None = None,
                 **router_settings: Any) -> None:
        super().__init__(config=config_from_dicts(model_list, router_settings), store=store)


def _as(type_: type[T], value: object) -> T:
    """Build an openai type the way the openai client does: leniently, keeping unknown fields, so that
    whatever the wire carries reaches the caller exactly as `openai` would give it."""
    return cast(T, construct_type(type_=type_, value=value))


def _sdk_deployment_id(provider: str, api_base: str | None) -> str:
    """SDK deployments put the provider in the id, so a later process can reach the same upstream."""
    if not api_base:
        return provider
    from .deployments import deployment_id

    return f"{provider}~{deployment_id('', provider, '', api_base)[:8]}"


def _parse_event(ev: Event) -> ResponseStreamEvent:
    return _as(ResponseStreamEvent, ev.obj)  # type: ignore[arg-type]


def _parse_chunk(ev: Event) -> ChatCompletionChunk:
    """A chunk; an error frame raises, as the openai client raises on one."""
    if ev.type == "error":
        err = ev.obj["error"]
        raise RespgateError(err["message"], code=err.get("code"), type=err.get("type"), param=err.get("param"))
    return _as(ChatCompletionChunk, ev.obj)


def _hidden_params(call: Call) -> dict[str, Any]:
    d = call.deployment
    return {"response_cost": call.cost, "request_id": call.request_id, "model_id": d.id if d else None,
            "custom_llm_provider": d.provider if d else None, "api_base": d.api_base if d else None}


class SyncEventStream:
    """Iterate `ResponseStreamEvent`s; `close()` (or leaving a `with` block) stops the upstream call."""

    def __init__(self, client: Client, events: AsyncIterator[Event],
                 parse: Callable[[Event], Any] = _parse_event) -> None:
        self._client = client
        self._events = events
        self._parse = parse

    def __iter__(self) -> Iterator[ResponseStreamEvent]:
        try:
            while True:
                ev = self._client._run(_next(self._events))
                if ev is None:
                    return
                yield self._parse(ev)
        finally:
            self.close()

    def close(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None and not self._client._loop.is_closed():
            self._client._run(aclose())

    def __enter__(self) -> SyncEventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncEventStream:
    def __init__(self, client: Client, events: AsyncIterator[Event],
                 parse: Callable[[Event], Any] = _parse_event) -> None:
        self._client = client
        self._events = events
        self._parse = parse

    def __aiter__(self) -> AsyncIterator[ResponseStreamEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ResponseStreamEvent]:
        try:
            while True:
                ev = await self._client._arun(_next(self._events))
                if ev is None:
                    return
                yield self._parse(ev)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None and not self._client._loop.is_closed():
            await self._client._arun(aclose())

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _next(events: AsyncIterator[Event]) -> Event | None:
    return await anext(events, None)


# -- module-level functions over one lazily made default client --------------------------------------

_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
            atexit.register(_default.close)  # its connection pool closes cleanly at interpreter exit
        return _default


def responses(input: Any = None, model: str | None = None, **kw: Any) -> Any:
    return default_client().responses(input, model, **kw)


async def aresponses(input: Any = None, model: str | None = None, **kw: Any) -> Any:
    return await default_client().aresponses(input, model, **kw)


# LiteLLM's name for a call with MCP tools; here every call runs them (tools/mcp/).
aresponses_api_with_mcp = aresponses


def responses_connect(**kw: Any) -> sdk_connect.ResponsesConnectionManager:
    return default_client().responses_connect(**kw)


def aresponses_connect(**kw: Any) -> sdk_connect.AsyncResponsesConnectionManager:
    return default_client().aresponses_connect(**kw)


def get_responses(response_id: str, **kw: Any) -> Response:
    return default_client().get_responses(response_id, **kw)


async def aget_responses(response_id: str, **kw: Any) -> Response:
    return await default_client().aget_responses(response_id, **kw)


def delete_responses(response_id: str, **kw: Any) -> dict[str, Any]:
    return default_client().delete_responses(response_id, **kw)


async def adelete_responses(response_id: str, **kw: Any) -> dict[str, Any]:
    return await default_client().adelete_responses(response_id, **kw)


def cancel_responses(response_id: str, **kw: Any) -> Response:
    return default_client().cancel_responses(response_id, **kw)


async def acancel_responses(response_id: str, **kw: Any) -> Response:
    return await default_client().acancel_responses(response_id, **kw)


def list_input_items(response_id: str, **kw: Any) -> ResponseItemList:
    return default_client().list_input_items(response_id, **kw)


async def alist_input_items(response_id: str, **kw: Any) -> ResponseItemList:
    return await default_client().alist_input_items(response_id, **kw)


def compact_responses(model: str, input: Any = None, **kw: Any) -> CompactedResponse:
    return default_client().compact_responses(model, input, **kw)


async def acompact_responses(model: str, input: Any = None, **kw: Any) -> CompactedResponse:
    return await default_client().acompact_responses(model, input, **kw)


def completion(model: str, messages: Any, **kw: Any) -> Any:
    return default_client().completion(model, messages, **kw)


async def acompletion(model: str, messages: Any, **kw: Any) -> Any:
    return await default_client().acompletion(model, messages, **kw)
