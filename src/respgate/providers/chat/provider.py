"""The Chat Completions bridge's I/O: every OpenAI-compatible chat provider looks like the Responses API.

Translation lives beside this file and is pure: `request.py` (Responses -> chat body), `response.py`
(chat completion or chunks -> calls on the shared StreamBuilder). This module only sends and
receives, so a JSON call and a stream of the same answer end in the same Response by construction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ...deployments import Deployment
from ...errors import BadGatewayError, RespgateError
from ...events import Event
from ...streaming import StreamBuilder
from ..base import ProviderRequest
from ..http import SHAPE_ERRORS, call_timeout, malformed, request_json, request_sse
from .profiles import ChatProfile
from .request import to_chat_request
from .response import ChatToResponses


class ChatCompletionsProvider:
    holds_state = False

    def __init__(self, profile: ChatProfile) -> None:
        self.profile = profile
        self._headers: dict[str, dict[str, str]] = {}  # per deployment, made once

    def url(self, d: Deployment) -> str:
        base = d.api_base or self.profile.default_api_base
        if not base:  # config validation refuses this; a direct SDK call may still get here
            raise BadGatewayError(f"No api_base is configured for model `{d.model_name}` "
                                  f"(provider {self.profile.name}).")
        base = base.rstrip("/")
        path = self.profile.base_path
        if path and not base.endswith(path):
            base += path
        return f"{base}/chat/completions"

    def headers(self, d: Deployment) -> dict[str, str]:
        h = self._headers.get(d.id)
        if h is None:
            h = {"Content-Type": "application/json"}
            if d.api_key:
                auth = self.profile.auth_header
                h[auth] = f"Bearer {d.api_key}" if auth.lower() == "authorization" else d.api_key
            self._headers[d.id] = h
        return h

    def _body(self, req: ProviderRequest, *, stream: bool) -> bytes:
        chat = to_chat_request(req.body, req.input_items, self.profile, req.deployment.upstream_model,
                               stream=stream, drop_params=req.drop_params)
        return orjson.dumps(chat)

    async def create(self, req: ProviderRequest) -> dict[str, Any]:
        d = req.deployment
        body = self._body(req, stream=False)
        completion = await request_json(req.http, "POST", d, self.url(d), [], body, self.headers(d),
                                        call_timeout(d))
        builder = StreamBuilder(req.shell)
        builder.start()
        translate = ChatToResponses(builder, self.profile)
        try:
            translate.completion(completion)
            translate.finish()
        except SHAPE_ERRORS as e:
            raise malformed(d, e) from None
        return builder.response

    async def stream(self, req: ProviderRequest) -> AsyncIterator[Event]:
        d = req.deployment
        chunks = request_sse(req.http, "POST", d, self.url(d), [], self._body(req, stream=True), self.headers(d))
        # The first chunk before the first event: an upstream that refuses the request gives the client an
        # HTTP error with the upstream's status, as OpenAI's own API would.
        first = await anext(chunks, None)
        builder = StreamBuilder(req.shell)
        translate = ChatToResponses(builder, self.profile)
        for ev in builder.start():
            yield Event.of(ev)
        try:
            pending = first
            while pending is not None:
                _, data = pending
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise BadGatewayError(f"The upstream for model `{d.model_name}` sent a chunk that is not "
                                          "JSON.") from None
                for ev in translate.chunk(chunk):
                    yield Event.of(ev)
                if builder.finished:
                    return
                pending = await anext(chunks, None)
            events = translate.finish() if translate.ended else builder.fail(
                "bad_gateway", f"The stream from the upstream for model `{d.model_name}` ended before a finish_reason.")
        except RespgateError as e:
            events = builder.fail(e.code or "server_error", e.message)
        except SHAPE_ERRORS as e:
            err = malformed(d, e)
            events = builder.fail(err.code or "server_error", err.message)
        finally:
            await chunks.aclose()
        for ev in events:
            yield Event.of(ev)
