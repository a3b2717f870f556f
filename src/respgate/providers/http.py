"""The upstream HTTP transport every adapter shares: one JSON call, one SSE stream, and the mapping
of transport failures to the error hierarchy (unreachable -> 502, too slow -> 504, the upstream's
own 4xx/5xx relayed with its status; refused credentials -> 502 without the upstream's words,
which may quote our key)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
import orjson

from ..deployments import Deployment
from ..errors import BadGatewayError, GatewayTimeoutError, RespgateError, UpstreamError

Query = list[tuple[str, str]]


def call_timeout(d: Deployment) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=d.timeout or 600.0, connect=min(d.timeout or 10.0, 10.0))


def stream_timeout(d: Deployment) -> aiohttp.ClientTimeout:
    """No total bound on a stream; a stall longer than the deployment's timeout between reads ends it."""
    idle = d.extra.get("stream_timeout") or d.timeout or 600.0
    return aiohttp.ClientTimeout(total=None, connect=min(float(idle), 10.0), sock_read=float(idle))


_RETRY_HEADERS = ("retry-after", "retry-after-ms")


def upstream_error(status: int, raw: bytes, d: Deployment,
                   headers: Mapping[str, str] | None = None) -> RespgateError:
    if status in (401, 403):
        return BadGatewayError(
            f"The upstream for model `{d.model_name}` refused the gateway's credentials "
            f"(HTTP {status}); check the deployment's api_key.", code="upstream_auth_failed")
    err = UpstreamError.from_body(status, raw, d.provider)
    if d.api_key and d.api_key in err.message:
        err.message = err.message.replace(d.api_key, "***")
    for name in _RETRY_HEADERS:  # the router waits as told, and the client is told too
        value = headers.get(name) if headers is not None else None
        if value:
            err.headers[name] = value
    return err


async def request_json(http: aiohttp.ClientSession | None, method: str, d: Deployment, url: str, query: Query,
                       body: bytes | None, headers: dict[str, str],
                       limits: aiohttp.ClientTimeout) -> dict[str, Any]:
    """One call; the parsed JSON object, or the mapped error."""
    assert http is not None, "Gateway.start() opens the HTTP session"
    try:
        async with http.request(method, url, params=query or None, data=body, headers=headers,
                                timeout=limits) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise upstream_error(resp.status, raw, d, resp.headers)
    except RespgateError:
        raise
    except TimeoutError as e:
        raise GatewayTimeoutError(f"The upstream for model `{d.model_name}` did not answer in time.") from e
    except aiohttp.ClientError as e:
        raise BadGatewayError(f"The upstream for model `{d.model_name}` is unreachable "
                              f"({type(e).__name__}).") from e
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise BadGatewayError(f"The upstream for model `{d.model_name}` answered with invalid JSON.")
    return parsed


async def request_sse(http: aiohttp.ClientSession | None, method: str, d: Deployment, url: str, query: Query,
                      body: bytes | None, headers: dict[str, str]) -> AsyncGenerator[tuple[str | None, bytes]]:
    """A server-sent event stream as (event name or None, data) pairs, until `[DONE]` or the end.
    Errors before the first pair raise mapped errors, as do breaks and stalls later."""
    assert http is not None, "Gateway.start() opens the HTTP session"
    try:
        async with http.request(method, url, params=query or None, data=body, headers=headers,
                                timeout=stream_timeout(d)) as resp:
            if resp.status >= 400:
                raise upstream_error(resp.status, await resp.read(), d, resp.headers)
            event_name: str | None = None
            async for line in resp.content:
                if line.startswith(b"data:"):
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    yield event_name, data
                    event_name = None
                elif line.startswith(b"event:"):
                    event_name = line[6:].strip().decode()
    except RespgateError:
        raise
    except TimeoutError as e:
        raise GatewayTimeoutError(f"The upstream for model `{d.model_name}` stopped sending events.") from e
    except aiohttp.ClientError as e:
        raise BadGatewayError(f"The stream from the upstream for model `{d.model_name}` broke "
                              f"({type(e).__name__}).") from e
