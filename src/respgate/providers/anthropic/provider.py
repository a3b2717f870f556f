"""The Anthropic Messages adapter's I/O: `POST {api_base}/v1/messages`, JSON or SSE.

Translation lives beside this file and is pure: `request.py` (Responses -> Messages body),
`response.py` (message or stream events -> StreamBuilder calls). This module sends, receives and
maps Anthropic's error types to statuses (`_ERRORS`).

`overloaded_error` (Anthropic's non-standard HTTP 529) is answered as 503 `server_error`: 503 is the
status every HTTP client, load balancer and our router reads as "busy, retry elsewhere or later",
while 529 is unknown to most of them; the message says the upstream was overloaded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import orjson

from ...deployments import Deployment
from ...errors import BadGatewayError, RespgateError, UpstreamError
from ...events import Event
from ..base import ProviderRequest
from ..http import SHAPE_ERRORS, call_timeout, malformed, request_json, request_sse
from . import computer
from .builder import HostedToolBuilder
from .hosted import COMPUTER_TYPES, required_betas
from .request import beta_header, to_messages_request
from .response import MessagesToResponses

DEFAULT_API_BASE: Final = "https://api.anthropic.com"
API_VERSION: Final = "2023-06-01"

#: Anthropic error type -> (status, OpenAI error type, code). 401/403 never get here: the shared
#: transport answers them as 502 (the gateway's credentials, not the client's, were refused).
_ERRORS: Final[dict[str, tuple[int, str, str | None]]] = {
    "invalid_request_error": (400, "invalid_request_error", None),
    "not_found_error": (404, "invalid_request_error", "model_not_found"),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "rate_limit_error": (429, "rate_limit_exceeded", "rate_limit_exceeded"),
    "api_error": (500, "server_error", None),
    "overloaded_error": (503, "server_error", "upstream_overloaded"),
    "timeout_error": (504, "timeout", "upstream_timeout"),
}


def mapped_error(err: RespgateError) -> RespgateError:
    """An upstream error in Anthropic's shape (`{"type": "error", "error": {"type", "message"}}`),
    with the status and type `_ERRORS` gives its error type; others are left as they are."""
    if not isinstance(err, UpstreamError):
        return err
    row = _ERRORS.get(err.type)
    if row is None:
        return err
    status, kind, code = row
    return UpstreamError(err.message, param=err.param, code=code, status=status, type=kind, headers=err.headers)


class AnthropicProvider:
    holds_state = False

    def __init__(self) -> None:
        self._headers: dict[str, dict[str, str]] = {}  # per deployment, made once

    @staticmethod
    def url(d: Deployment) -> str:
        base = (d.api_base or DEFAULT_API_BASE).rstrip("/")
        return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    def headers(self, d: Deployment) -> dict[str, str]:
        h = self._headers.get(d.id)
        if h is None:
            h = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
            if d.api_key:
                h["x-api-key"] = d.api_key
            beta = beta_header(d)
            if beta:
                h["anthropic-beta"] = beta
            self._headers[d.id] = h
        return h

    def _messages(self, req: ProviderRequest, *, stream: bool) -> dict[str, Any]:
        return to_messages_request(req.body, req.input_items, req.deployment, stream=stream,
                                   drop_params=req.drop_params)

    async def _target(self, d: Deployment, *, stream: bool) -> tuple[str, dict[str, str]]:
        """Where the Messages call goes and with which headers (Vertex AI overrides this)."""
        return self.url(d), self.headers(d)

    async def _request(self, req: ProviderRequest, *, stream: bool) -> tuple[str, dict[str, str], bytes]:
        """The URL, the headers (with the betas the body's tools need) and the body of one call."""
        body = self._messages(req, stream=stream)
        url, headers = await self._target(req.deployment, stream=stream)
        betas = required_betas(body)
        if betas:
            given = [b for b in headers.get("anthropic-beta", "").split(",") if b]
            headers = {**headers, "anthropic-beta": ",".join(dict.fromkeys(given + betas))}
        return url, headers, orjson.dumps(body)

    @staticmethod
    def _translator(req: ProviderRequest, builder: HostedToolBuilder) -> MessagesToResponses:
        tools = req.body.get("tools") or ()
        kind = next((t["type"] for t in tools if t.get("type") in COMPUTER_TYPES), None)
        style = None if kind is None else "action" if kind == "computer_use_preview" else "actions"
        return MessagesToResponses(builder, computer_style=style, cursor=computer.last_cursor(req.input_items),
                                   sources="web_search_call.action.sources" in (req.body.get("include") or ()))

    async def create(self, req: ProviderRequest) -> dict[str, Any]:
        d = req.deployment
        try:
            url, headers, body = await self._request(req, stream=False)
            message = await request_json(req.http, "POST", d, url, [], body, headers, call_timeout(d))
        except RespgateError as e:
            raise mapped_error(e) from None
        builder = HostedToolBuilder(req.shell)
        builder.start()
        try:
            self._translator(req, builder).message(message)
        except SHAPE_ERRORS as e:
            raise malformed(d, e) from None
        return builder.response

    async def stream(self, req: ProviderRequest) -> AsyncIterator[Event]:
        d = req.deployment
        url, headers, body = await self._request(req, stream=True)
        events = request_sse(req.http, "POST", d, url, [], body, headers)
        # The first event before the first byte out: a refused request becomes an HTTP error.
        try:
            first = await anext(events, None)
        except RespgateError as e:
            await events.aclose()
            raise mapped_error(e) from None
        builder = HostedToolBuilder(req.shell)
        translate = self._translator(req, builder)
        for ev in builder.start():
            yield Event.of(ev)
        out: list[dict[str, Any]] = []
        try:
            pending = first
            while pending is not None:
                try:
                    data = orjson.loads(pending[1])
                except orjson.JSONDecodeError:
                    raise BadGatewayError(f"The upstream for model `{d.model_name}` sent an event that is not "
                                          "JSON.") from None
                for ev in translate.event(data):
                    yield Event.of(ev)
                if builder.finished:
                    return
                pending = await anext(events, None)
            # ended without message_stop: what arrived is all there is
            out = builder.fail("server_error", f"The stream from the upstream for model `{d.model_name}` ended "
                                               "before message_stop.")
        except RespgateError as e:
            out = builder.fail(e.code or "server_error", e.message)
        except SHAPE_ERRORS as e:
            err = malformed(d, e)
            out = builder.fail(err.code or "server_error", err.message)
        finally:
            await events.aclose()
        for ev in out:
            yield Event.of(ev)
