"""The upstream HTTP transport every adapter shares: one JSON call, one SSE stream, and the mapping
of transport failures to the error hierarchy (unreachable -> 502, too slow -> 504, the upstream's
own 4xx/5xx relayed with its status; refused credentials -> 502 without the upstream's words,
which may quote our key)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
import orjson

from ..deployments import Deployment
from ..errors import BadGatewayError, GatewayTimeoutError, RespgateError, UpstreamError

Query = list[tuple[str, str]]
log = logging.getLogger("respgate.providers")


def call_timeout(d: Deployment) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=d.timeout or 600.0, connect=min(d.timeout or 10.0, 10.0))


def stream_idle(d: Deployment) -> float:
    """How long a stream may go without an event: `stream_timeout`, else `timeout`, else 600 s."""
    return float(d.extra.get("stream_timeout") or d.timeout or 600.0)


def stream_timeout(d: Deployment) -> aiohttp.ClientTimeout:
    """No total bound on a stream; a stall longer than the deployment's timeout between reads ends it
    (and `IdleWatch` one between events)."""
    idle = stream_idle(d)
    return aiohttp.ClientTimeout(total=None, connect=min(idle, 10.0), sock_read=idle)


_RETRY_HEADERS = ("retry-after", "retry-after-ms")


def upstream_error(status: int, raw: bytes, d: Deployment,
                   headers: Mapping[str, str] | None = None) -> RespgateError:
    if status in (401, 403):
        return BadGatewayError(
            f"The upstream for model `{d.model_name}` refused the gateway's credentials "
            f"(HTTP {status}); check the deployment's api_key.", code="upstream_auth_failed")
    err = UpstreamError.from_body(status, without_key(raw, d), d.provider)
    return with_retry_after(err, headers)


def with_retry_after(err: RespgateError, headers: Mapping[str, str] | None) -> RespgateError:
    """`err` carrying the upstream's Retry-After (and -ms): the router waits as told, and the client is
    told too. Every adapter's error mapping passes its answer's headers through this."""
    if headers is not None:
        for name in _RETRY_HEADERS:
            value = headers.get(name)
            if value:
                err.headers[name] = value
    return err


#: What translating a body of the wrong shape raises (a list where an object belongs, a missing key):
#: the upstream's fault, answered 502 (or response.failed), never a 500.
SHAPE_ERRORS: tuple[type[Exception], ...] = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def malformed(d: Deployment, e: Exception) -> BadGatewayError:
    log.warning("the upstream for model %s sent an answer of an unexpected shape: %s", d.model_name,
                type(e).__name__, exc_info=e)
    return BadGatewayError(f"The upstream for model `{d.model_name}` answered with something that is not a "
                           f"valid response ({type(e).__name__}).")


class IdleWatch:
    """Ends a stream when no whole event arrived for `idle` seconds although bytes trickle in (aiohttp's
    `sock_read` restarts on every byte, so a drip would hold the call forever). The clock runs only while
    the adapter waits on the upstream: `pause()` before handing an event on, `resume()` after, so a slow
    client is never blamed on the upstream. One timer per period, re-armed lazily; an event costs two
    attribute writes. On expiry the pending read raises `ServerTimeoutError` (a TimeoutError), and
    leaving the response's context closes the connection, its body unfinished."""

    __slots__ = ("_idle", "_last", "_loop", "_resp", "_timer", "waiting")

    def __init__(self, resp: aiohttp.ClientResponse, idle: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._resp, self._idle = resp, idle
        self._last = self._loop.time()
        self.waiting = True
        self._timer = self._loop.call_at(self._last + idle, self._check)

    def pause(self) -> None:
        self.waiting = False

    def resume(self) -> None:
        self.waiting = True
        self._last = self._loop.time()

    def _check(self) -> None:
        now = self._loop.time()
        if not self.waiting:
            self._timer = self._loop.call_at(now + self._idle, self._check)
        elif now >= self._last + self._idle:
            self._resp.content.set_exception(aiohttp.ServerTimeoutError("no event within the stream timeout"))
            # aiohttp's readline checks for an exception only when it starts: set while it was between two
            # waits (bytes had just come), the exception would wake nobody and a trickle would hold the read
            # for ever. So again shortly, until the read raises and the stream's end cancels this timer.
            self._timer = self._loop.call_at(now + min(self._idle, 0.05), self._check)
        else:
            self._timer = self._loop.call_at(self._last + self._idle, self._check)

    def cancel(self) -> None:
        self._timer.cancel()


def without_key(raw: bytes, d: Deployment) -> bytes:
    """The upstream's bytes with the deployment's key taken out: an upstream may quote the key it was
    sent (in a message, a param, a text body), and whatever it says may be relayed to a client."""
    if d.api_key:
        secret = d.api_key.encode()
        if secret in raw:
            return raw.replace(secret, b"***")
    return raw


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
    secret = d.api_key.encode() if d.api_key else None  # an event quoting our key is relayed without it
    watch: IdleWatch | None = None
    try:
        async with http.request(method, url, params=query or None, data=body, headers=headers,
                                timeout=stream_timeout(d)) as resp:
            if resp.status >= 400:
                raise upstream_error(resp.status, await resp.read(), d, resp.headers)
            watch = IdleWatch(resp, stream_idle(d))
            event_name: str | None = None
            async for line in resp.content:
                if line.startswith(b"data:"):
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    if secret is not None and secret in data:
                        data = data.replace(secret, b"***")
                    watch.pause()
                    yield event_name, data
                    watch.resume()
                    event_name = None
                elif line.startswith(b"event:"):
                    event_name = line[6:].strip().decode()
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


def stopped_sending(d: Deployment) -> GatewayTimeoutError:
    return GatewayTimeoutError(f"The upstream for model `{d.model_name}` stopped sending events.")
