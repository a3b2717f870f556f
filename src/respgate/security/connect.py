"""Connections to a server a client named (an MCP `server_url` from a request), made only to checked
addresses.

`CheckedTransport` is an httpx2 transport whose every TCP connection — the first, a redirect's, a
reconnection — resolves the host off the loop, checks each address with the URL policy
(`UrlPolicy.addresses`) and connects to a checked address itself, not to the name; TLS still
verifies the certificate for the name (httpcore's SNI is the URL's host). So a DNS answer that turns
internal between the request's check and the connection (rebinding) is refused. Environment proxies
are not used for these connections: a proxy would resolve the name itself, unchecked.

Import it only where a client-named server is connected to: it loads httpx2.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2

from .urls import UrlPolicy, UrlRefused

__all__ = ["CheckedTransport", "checked_client_factory"]

_DEFAULT_TIMEOUT = httpx2.Timeout(30.0, read=300.0)  # the mcp SDK's own defaults


class _CheckedBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        try:
            addresses = await self._policy.addresses(host, port)
        except UrlRefused as e:
            raise httpcore2.ConnectError(e.message) from None
        failure: Exception | None = None
        for address in addresses:  # in the resolver's order, as a plain connect would try them
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as e:
                failure = e
        assert failure is not None  # addresses() never returns an empty list
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("unix sockets are not reachable from a URL")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class CheckedTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport over a connection pool whose connections go through the URL policy."""

    def __init__(self, policy: UrlPolicy) -> None:
        super().__init__(trust_env=False)
        # httpx2 builds its pool without a way to pass a network backend; `_pool` is the one it sends
        # every request through, so the pool is rebuilt with the checking backend.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False), max_connections=100,
            max_keepalive_connections=20, keepalive_expiry=5.0, network_backend=_CheckedBackend(policy))


def checked_client_factory(policy: UrlPolicy) -> Any:
    """An `httpx_client_factory` for the mcp SDK's `sse_client`, making clients over a CheckedTransport."""

    def make(headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None,
             auth: httpx2.Auth | None = None) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(headers=headers, timeout=timeout or _DEFAULT_TIMEOUT, auth=auth,
                                  transport=CheckedTransport(policy))

    return make
