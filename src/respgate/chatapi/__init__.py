"""Chat Completions for every model the gateway serves, including those that speak only Responses.

    request.py   chat body -> validated -> Responses request
    response.py  Response -> chat.completion
    stream.py    Responses events -> chat.completion.chunk SSE

A chat request goes through `Gateway.create` / `Gateway.stream` like any Responses request (routing,
state, persistence and accounting are the gateway's); only its shape is translated, on the way in
and on the way out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..calls import Call, Principal
from ..deployments import Deployment
from ..events import Event
from ..gateway import Gateway
from ..router import lift_options
from .request import ChatRequest, translate_request, validate_chat
from .response import to_chat_completion
from .stream import ChunkTranslator, chat_chunks, sse_frames

__all__ = ["ChatRequest", "ChunkTranslator", "create", "sse_frames", "stream", "to_chat_completion",
           "translate_request", "validate_chat"]


def prepare(gateway: Gateway, body: Any) -> ChatRequest:
    """The chat body as a Responses request. The router's fields (tags, fallbacks) and a per-request
    `guardrails` list are not chat parameters: they skip the chat validation and ride along."""
    body, extra = lift_options(body)
    if isinstance(body, dict) and "guardrails" in body:
        body = dict(body)
        extra["guardrails"] = body.pop("guardrails")
    chat = translate_request(body, drop_params=gateway.config.litellm_settings.drop_params)
    chat.body.update(extra)
    return chat


async def create(gateway: Gateway, body: Any, principal: Principal,
                 deployment: Deployment | None = None, call: Call | None = None) -> dict[str, Any]:
    """A non-streaming chat completion, as a `chat.completion` dict."""
    chat = prepare(gateway, body)
    if call is not None:
        call.body = chat.body
    with chat.chat_errors():
        raw = await gateway.create(chat.body, principal, deployment, call)
        return to_chat_completion(orjson.loads(raw), logprobs=chat.logprobs, metadata=chat.metadata)


async def stream(gateway: Gateway, body: Any, principal: Principal,
                 deployment: Deployment | None = None, call: Call | None = None) -> AsyncIterator[Event]:
    """A streaming chat completion: chunk `Event`s. Errors before the first chunk raise."""
    chat = prepare(gateway, body)
    chat.body["stream"] = True
    chat.stream = True
    if call is not None:
        call.body = chat.body
    with chat.chat_errors():
        events = await gateway.stream(chat.body, principal, deployment, call)
    return chat_chunks(events, chat)
