"""Native passthrough to an upstream that speaks the Responses API itself: OpenAI, Azure OpenAI, and any
server with its own `/v1/responses` reached through `api_base`.

The body goes upstream as the client sent it, with two rewrites only: `model` becomes the
deployment's upstream name, and `previous_response_id` the upstream's own id. Every field the
upstream accepts passes through, including ones respgate does not know. The upstream is the
authority on its own API, so its validation errors reach the client unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..deployments import Deployment
from ..errors import BadGatewayError
from ..events import LIFECYCLE_TYPES, Event
from .base import ProviderRequest
from .http import Query, call_timeout, request_json, request_sse

_OPENAI_BASE = "https://api.openai.com/v1"
_AZURE_V1_VERSIONS = frozenset({"", "v1", "preview", "latest"})


class ResponsesPassthrough:
    """OpenAI-compatible Responses upstreams; `azure` differs only in URL and auth header."""

    holds_state = True

    def __init__(self, provider: str) -> None:
        self.provider = provider
        # Per deployment, made once: the create URL, headers and timeout (the hot path reuses them).
        self._wire: dict[str, tuple[str, list[tuple[str, str]], dict[str, str], aiohttp.ClientTimeout]] = {}

    def _wire_for(self, d: Deployment) -> tuple[str, list[tuple[str, str]], dict[str, str], aiohttp.ClientTimeout]:
        wire = self._wire.get(d.id)
        if wire is None:
            url, query = self.url(d)
            wire = self._wire[d.id] = (url, query, self.headers(d), call_timeout(d))
        return wire

    # -- wire --------------------------------------------------------------------------------------

    def url(self, d: Deployment, suffix: str = "") -> tuple[str, list[tuple[str, str]]]:
        """The upstream URL for `/responses{suffix}` and the query parameters the deployment needs."""
        if self.provider != "azure":
            return f"{(d.api_base or _OPENAI_BASE).rstrip('/')}/responses{suffix}", []
        base = (d.api_base or "").rstrip("/")
        version = d.api_version or ""
        if "/openai" in base:  # api_base already names the API root
            root = base
        elif version in _AZURE_V1_VERSIONS:
            root = f"{base}/openai/v1"
        else:
            root = f"{base}/openai"
        query = [("api-version", version)] if version and version not in ("v1", "latest") else []
        return f"{root}/responses{suffix}", query

    def headers(self, d: Deployment) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if d.api_key:
            if self.provider == "azure":
                h["api-key"] = d.api_key
            else:
                h["Authorization"] = f"Bearer {d.api_key}"
        return h

    def upstream_body(self, req: ProviderRequest, *, stream: bool) -> bytes:
        body = dict(req.body)
        body["model"] = req.deployment.upstream_model
        if req.previous_upstream_id is not None:
            body["previous_response_id"] = req.previous_upstream_id
        elif "previous_response_id" in body:
            # The chain lives elsewhere (another deployment): the gateway expanded it into input items.
            del body["previous_response_id"]
            body["input"] = req.input_items
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return orjson.dumps(body)

    # -- calls -------------------------------------------------------------------------------------

    async def create(self, req: ProviderRequest) -> dict[str, Any]:
        url, query, _, _ = self._wire_for(req.deployment)
        return await self._json(req.http, "POST", req.deployment, url, query, self.upstream_body(req, stream=False))

    async def stream(self, req: ProviderRequest) -> AsyncIterator[Event]:
        url, query = self.url(req.deployment)
        async for ev in self._sse(req.http, req.deployment, "POST", url, query,
                                  self.upstream_body(req, stream=True)):
            yield ev

    async def retrieve(self, d: Deployment, upstream_id: str, query: list[tuple[str, str]],
                       http: aiohttp.ClientSession) -> dict[str, Any]:
        url, q = self.url(d, f"/{upstream_id}")
        return await self._json(http, "GET", d, url, q + query, None)

    async def retrieve_stream(self, d: Deployment, upstream_id: str, query: list[tuple[str, str]],
                              http: aiohttp.ClientSession) -> AsyncIterator[Event]:
        url, q = self.url(d, f"/{upstream_id}")
        async for ev in self._sse(http, d, "GET", url, [*q, *query, ("stream", "true")], None):
            yield ev

    async def delete(self, d: Deployment, upstream_id: str, http: aiohttp.ClientSession) -> None:
        url, q = self.url(d, f"/{upstream_id}")
        await self._json(http, "DELETE", d, url, q, None)

    async def cancel(self, d: Deployment, upstream_id: str, http: aiohttp.ClientSession) -> dict[str, Any]:
        url, q = self.url(d, f"/{upstream_id}/cancel")
        return await self._json(http, "POST", d, url, q, b"{}")

    async def input_items(self, d: Deployment, upstream_id: str, query: list[tuple[str, str]],
                          http: aiohttp.ClientSession) -> dict[str, Any]:
        url, q = self.url(d, f"/{upstream_id}/input_items")
        return await self._json(http, "GET", d, url, q + query, None)

    async def compact(self, d: Deployment, body: dict[str, Any], http: aiohttp.ClientSession) -> dict[str, Any]:
        url, q = self.url(d, "/compact")
        return await self._json(http, "POST", d, url, q, orjson.dumps(body))

    async def input_tokens(self, d: Deployment, body: dict[str, Any],
                           http: aiohttp.ClientSession) -> dict[str, Any]:
        url, q = self.url(d, "/input_tokens")
        return await self._json(http, "POST", d, url, q, orjson.dumps(body))

    # -- transport ---------------------------------------------------------------------------------

    async def _json(self, http: aiohttp.ClientSession | None, method: str, d: Deployment, url: str,
                    query: Query, body: bytes | None) -> dict[str, Any]:
        _, _, headers, timeout = self._wire_for(d)
        return await request_json(http, method, d, url, query, body, headers, timeout)

    async def _sse(self, http: aiohttp.ClientSession | None, d: Deployment, method: str, url: str,
                   query: Query, body: bytes | None) -> AsyncIterator[Event]:
        try:
            async for name, data in request_sse(http, method, d, url, query, body, self._wire_for(d)[2]):
                ev = Event(name or "", data=data)
                # Deltas pass as bytes; an event the gateway reads (its type unnamed, or one carrying the
                # response) must be a JSON object, else the stream fails here rather than in the gateway.
                if name is None or name in LIFECYCLE_TYPES:
                    if not isinstance(ev.obj, dict):
                        raise BadGatewayError(f"The upstream for model `{d.model_name}` sent an event that is "
                                              "not a JSON object.")
                    if name is None:  # a server that sends only `data:` lines: the type is inside
                        ev.type = str(ev.obj.get("type", ""))
                yield ev
        except orjson.JSONDecodeError as e:
            raise BadGatewayError(f"The upstream for model `{d.model_name}` sent an event that is not JSON.") from e
