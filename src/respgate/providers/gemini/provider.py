"""Gemini's I/O: AI Studio (`gemini/*`, API key) and Vertex AI (`vertex_ai/*`, google-auth bearer).

Translation is pure and lives beside this file (request.py, response.py); this module only picks
the URL and headers, sends, and reads the answer or the SSE stream (`?alt=sse`), mapping Google's
errors (errors.py). A JSON answer and a stream go through the same translator, so they agree.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

import aiohttp
import orjson
from google.auth.credentials import Credentials

from ...deployments import Deployment
from ...errors import BadGatewayError, GatewayTimeoutError, RespgateError
from ...events import Event
from ..anthropic.builder import HostedToolBuilder
from ..base import ProviderRequest
from ..http import (
    SHAPE_ERRORS,
    IdleWatch,
    call_timeout,
    malformed,
    stopped_sending,
    stream_idle,
    stream_timeout,
    with_retry_after,
)
from .auth import VertexToken
from .errors import google_error
from .request import to_gemini_request
from .response import GeminiToResponses

AI_STUDIO_BASE = "https://generativelanguage.googleapis.com"


class Endpoint(Protocol):
    name: str

    async def target(self, d: Deployment, method: str) -> tuple[str, dict[str, str]]:
        """The URL of `method` (generateContent, streamGenerateContent) and the headers."""
        ...


class AiStudio:
    name = "gemini"

    async def target(self, d: Deployment, method: str) -> tuple[str, dict[str, str]]:
        base = (d.api_base or AI_STUDIO_BASE).rstrip("/")
        if not base.endswith("/v1beta") and not base.endswith("/v1"):
            base += "/v1beta"
        headers = {"Content-Type": "application/json"}
        if d.api_key:
            headers["x-goog-api-key"] = d.api_key
        return f"{base}/models/{d.upstream_model}:{method}", headers


class VertexAI:
    name = "vertex_ai"

    def __init__(self, credentials: Callable[[Deployment], Credentials] | None = None) -> None:
        self._injected = credentials
        self._tokens: dict[str, VertexToken] = {}

    def token(self, d: Deployment) -> VertexToken:
        token = self._tokens.get(d.id)
        if token is None:
            creds = self._injected(d) if self._injected else None
            token = self._tokens[d.id] = VertexToken(d, credentials=creds)
        return token

    async def target(self, d: Deployment, method: str) -> tuple[str, dict[str, str]]:
        token = self.token(d)
        bearer = await token.bearer()
        project = d.extra.get("vertex_project") or await token.project()
        if not project:
            raise BadGatewayError(f"No vertex_project is configured for model `{d.model_name}`.")
        location = str(d.extra.get("vertex_location") or "us-central1")
        host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
        base = (d.api_base or f"https://{host}").rstrip("/")
        url = (f"{base}/v1/projects/{project}/locations/{location}/publishers/google/models/"
               f"{d.upstream_model}:{method}")
        return url, {"Content-Type": "application/json", "Authorization": f"Bearer {bearer}"}


class GeminiProvider:
    holds_state = False

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def _body(self, req: ProviderRequest) -> bytes:
        d = req.deployment
        body = to_gemini_request(req.body, req.input_items, d.upstream_model, provider=self.endpoint.name,
                                 drop_params=req.drop_params, extra=d.extra)
        return orjson.dumps(body)

    async def create(self, req: ProviderRequest) -> dict[str, Any]:
        d = req.deployment
        body = self._body(req)
        url, headers = await self.endpoint.target(d, "generateContent")
        answer = await _post_json(req.http, d, url, body, headers)
        builder = HostedToolBuilder(req.shell)
        builder.start()
        try:
            GeminiToResponses(builder, sources=_wants_sources(req)).answer(answer)
        except SHAPE_ERRORS as e:
            raise malformed(d, e) from None
        return builder.response

    async def stream(self, req: ProviderRequest) -> AsyncIterator[Event]:
        d = req.deployment
        body = self._body(req)
        url, headers = await self.endpoint.target(d, "streamGenerateContent")
        chunks = _post_sse(req.http, d, url + "?alt=sse", body, headers)
        first = await anext(chunks, None)  # an upstream refusal becomes the client's HTTP error
        builder = HostedToolBuilder(req.shell)
        translate = GeminiToResponses(builder, sources=_wants_sources(req))
        for ev in builder.start():
            yield Event.of(ev)
        try:
            pending = first
            while pending is not None:
                for ev in translate.chunk(pending):
                    yield Event.of(ev)
                if builder.finished:
                    return
                pending = await anext(chunks, None)
            events = translate.finish() if translate.ended else builder.fail(
                "bad_gateway", f"The stream from the upstream for model `{d.model_name}` ended before a finishReason.")
        except RespgateError as e:
            events = builder.fail(e.code or "server_error", e.message)
        except SHAPE_ERRORS as e:
            err = malformed(d, e)
            events = builder.fail(err.code or "server_error", err.message)
        finally:
            await chunks.aclose()
        for ev in events:
            yield Event.of(ev)


def _wants_sources(req: ProviderRequest) -> bool:
    return "web_search_call.action.sources" in (req.body.get("include") or ())


def _unreachable(d: Deployment, e: aiohttp.ClientError) -> BadGatewayError:
    return BadGatewayError(f"The upstream for model `{d.model_name}` is unreachable ({type(e).__name__}).")


async def _post_json(http: aiohttp.ClientSession | None, d: Deployment, url: str, body: bytes,
                     headers: dict[str, str]) -> dict[str, Any]:
    assert http is not None, "Gateway.start() opens the HTTP session"
    try:
        async with http.post(url, data=body, headers=headers, timeout=call_timeout(d)) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise with_retry_after(google_error(resp.status, raw, d), resp.headers)
    except RespgateError:
        raise
    except TimeoutError as e:
        raise GatewayTimeoutError(f"The upstream for model `{d.model_name}` did not answer in time.") from e
    except aiohttp.ClientError as e:
        raise _unreachable(d, e) from e
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise BadGatewayError(f"The upstream for model `{d.model_name}` answered with invalid JSON.")
    return parsed


async def _post_sse(http: aiohttp.ClientSession | None, d: Deployment, url: str, body: bytes,
                    headers: dict[str, str]) -> AsyncGenerator[dict[str, Any]]:
    """Each `data:` of Gemini's SSE stream, parsed."""
    assert http is not None, "Gateway.start() opens the HTTP session"
    watch: IdleWatch | None = None
    try:
        async with http.post(url, data=body, headers=headers, timeout=stream_timeout(d)) as resp:
            if resp.status >= 400:
                raise with_retry_after(google_error(resp.status, await resp.read(), d), resp.headers)
            watch = IdleWatch(resp, stream_idle(d))
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                try:
                    chunk = orjson.loads(line[5:])
                except orjson.JSONDecodeError:
                    raise BadGatewayError(f"The upstream for model `{d.model_name}` sent an event that is "
                                          "not JSON.") from None
                if isinstance(chunk, dict):
                    watch.pause()
                    yield chunk
                    watch.resume()
    except RespgateError:
        raise
    except TimeoutError as e:
        raise stopped_sending(d) from e
    except aiohttp.ClientError as e:
        raise BadGatewayError(f"The stream from the upstream for model `{d.model_name}` broke "
                              f"({type(e).__name__}).") from e
    finally:
        if watch is not None:
            watch.cancel()
