"""Bedrock Converse I/O: sign, send, and feed the answer to the pure translator (response.py).

`bedrock/<modelId>` (LiteLLM's `bedrock/converse/<modelId>` too) -> POST
https://bedrock-runtime.{region}.amazonaws.com/model/{modelId}/converse (or /converse-stream, whose
binary event stream is decoded incrementally). `api_base` replaces the endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from ...deployments import Deployment
from ...errors import BadGatewayError, GatewayTimeoutError, RespgateError
from ...events import Event
from ...streaming import StreamBuilder
from ..base import ProviderRequest
from ..http import SHAPE_ERRORS, IdleWatch, call_timeout, malformed, stream_idle, stream_timeout, with_retry_after
from .errors import bedrock_error
from .eventstream import EventStreamDecoder, Frame
from .request import to_converse_request
from .response import ConverseToResponses
from .signing import BedrockSigner

__all__ = ["BedrockConverseProvider", "model_id_of"]

_ERROR_TYPE_HEADER = "x-amzn-ErrorType"


def model_id_of(d: Deployment) -> str:
    model = d.upstream_model
    return model.removeprefix("converse/")


class BedrockConverseProvider:
    holds_state = False

    def __init__(self) -> None:
        self._signers: dict[str, BedrockSigner] = {}  # per deployment, credentials resolved once

    def signer(self, d: Deployment) -> BedrockSigner:
        signer = self._signers.get(d.id)
        if signer is None:
            signer = self._signers[d.id] = BedrockSigner(d)
        return signer

    def url(self, d: Deployment, operation: str) -> str:
        base = (d.api_base or f"https://bedrock-runtime.{self.signer(d).region}.amazonaws.com").rstrip("/")
        return f"{base}/model/{quote(model_id_of(d), safe='')}/{operation}"

    def _prepare(self, req: ProviderRequest, operation: str, accept: str) -> tuple[URL, bytes, dict[str, str]]:
        d = req.deployment
        converse = to_converse_request(req.body, req.input_items, model_id_of(d), d.extra,
                                       drop_params=req.drop_params)
        body = orjson.dumps(converse)
        url = self.url(d, operation)
        headers = self.signer(d).headers("POST", url, body, {"Content-Type": "application/json",
                                                               "Accept": accept})
        return URL(url, encoded=True), body, headers

    async def create(self, req: ProviderRequest) -> dict[str, Any]:
        d = req.deployment
        url, body, headers = self._prepare(req, "converse", "application/json")
        assert req.http is not None, "Gateway.start() opens the HTTP session"
        try:
            async with req.http.post(url, data=body, headers=headers, timeout=call_timeout(d)) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise with_retry_after(bedrock_error(resp.status, resp.headers.get(_ERROR_TYPE_HEADER), raw, d),
                                           resp.headers)
        except RespgateError:
            raise
        except TimeoutError as e:
            raise GatewayTimeoutError(f"Bedrock did not answer in time for model `{d.model_name}`.") from e
        except aiohttp.ClientError as e:
            raise BadGatewayError(f"Bedrock is unreachable for model `{d.model_name}` ({type(e).__name__}).") from e
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise BadGatewayError(f"Bedrock answered with invalid JSON for model `{d.model_name}`.")
        builder = StreamBuilder(req.shell)
        builder.start()
        try:
            ConverseToResponses(builder).output(answer)
        except SHAPE_ERRORS as e:
            raise malformed(d, e) from None
        return builder.response

    async def stream(self, req: ProviderRequest) -> AsyncIterator[Event]:
        d = req.deployment
        frames = self._frames(req)
        # The first frame before the first event: a refusal (HTTP or an exception frame) becomes the
        # client's HTTP error, as a non-streamed call's would.
        first = await anext(frames, None)
        if first is not None and first.kind != "event":
            await frames.aclose()
            raise bedrock_error(500, first.name, orjson.dumps(first.payload), d)
        builder = StreamBuilder(req.shell)
        translate = ConverseToResponses(builder)
        for ev in builder.start():
            yield Event.of(ev)
        try:
            frame = first
            while frame is not None:
                said = (translate.event(frame.name, frame.payload) if frame.kind == "event" else
                        translate.fail(frame.name, str(frame.payload.get("message") or frame.name)))
                for ev in said:
                    yield Event.of(ev)
                if builder.finished:
                    return
                frame = await anext(frames, None)
            events = translate.finish() if translate.ended else builder.fail(
                "bad_gateway", f"The stream from Bedrock for model `{d.model_name}` ended before messageStop.")
        except RespgateError as e:
            events = [] if builder.finished else builder.fail(e.code or "server_error", e.message)
        except SHAPE_ERRORS as e:
            err = malformed(d, e)
            events = [] if builder.finished else builder.fail(err.code or "server_error", err.message)
        finally:
            await frames.aclose()
        for ev in events:
            yield Event.of(ev)

    async def _frames(self, req: ProviderRequest) -> AsyncGenerator[Frame]:
        d = req.deployment
        url, body, headers = self._prepare(req, "converse-stream", "application/vnd.amazon.eventstream")
        assert req.http is not None, "Gateway.start() opens the HTTP session"
        decoder = EventStreamDecoder()
        watch: IdleWatch | None = None
        try:
            async with req.http.post(url, data=body, headers=headers, timeout=stream_timeout(d)) as resp:
                if resp.status >= 400:
                    raise with_retry_after(bedrock_error(resp.status, resp.headers.get(_ERROR_TYPE_HEADER),
                                                         await resp.read(), d), resp.headers)
                watch = IdleWatch(resp, stream_idle(d))
                async for chunk in resp.content.iter_any():
                    for frame in decoder.feed(chunk):
                        watch.pause()
                        yield frame
                        watch.resume()
        except RespgateError:
            raise
        except TimeoutError as e:
            raise _stopped(d) from e
        except aiohttp.ClientError as e:
            raise BadGatewayError(f"The stream from Bedrock broke for model `{d.model_name}` "
                                  f"({type(e).__name__}).") from e
        finally:
            if watch is not None:
                watch.cancel()


def _stopped(d: Deployment) -> GatewayTimeoutError:
    return GatewayTimeoutError(f"Bedrock stopped sending events for model `{d.model_name}`.")
