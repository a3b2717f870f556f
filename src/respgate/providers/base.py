"""The provider adapter protocol: translate canonical Responses <-> one wire API, nothing else.

A provider never touches the store, never picks a deployment and never speaks HTTP to the
client. It receives a `ProviderRequest` the gateway prepared and answers with a Response dict
(`create`) or an async iterator of `Event`s ending in a terminal event (`stream`).
Providers that hold state upstream (OpenAI, Azure) also implement the optional methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from ..deployments import Deployment
from ..events import Event


@dataclass(slots=True)
class ProviderRequest:
    deployment: Deployment
    body: dict[str, Any]  # the request as the client sent it (validated); never mutated by providers
    response_id: str  # the client-facing id of the response being made
    shell: dict[str, Any]  # the Response skeleton echoing the request (see shell.py); for built responses
    input_items: list[dict[str, Any]] = field(default_factory=list)  # chain + new input, normalised
    turn_items: list[dict[str, Any]] = field(default_factory=list)  # this turn's own input, for the store
    previous_upstream_id: str | None = None  # set when the upstream itself holds the previous response
    drop_params: bool = False  # LiteLLM's setting: drop what the target cannot honour instead of a 400
    http: aiohttp.ClientSession | None = None


class Provider(Protocol):
    """Every provider: one request in, one response (or one event stream) out."""

    #: True when the upstream stores responses itself (GET/DELETE/cancel/input_items go there).
    holds_state: bool

    async def create(self, req: ProviderRequest) -> dict[str, Any]: ...

    def stream(self, req: ProviderRequest) -> AsyncIterator[Event]: ...


class StatefulProvider(Provider, Protocol):
    """Providers whose upstream keeps responses (`holds_state = True`)."""

    async def retrieve(self, deployment: Deployment, upstream_id: str, query: list[tuple[str, str]],
                       http: aiohttp.ClientSession) -> dict[str, Any]: ...

    def retrieve_stream(self, deployment: Deployment, upstream_id: str, query: list[tuple[str, str]],
                        http: aiohttp.ClientSession) -> AsyncIterator[Event]: ...

    async def delete(self, deployment: Deployment, upstream_id: str, http: aiohttp.ClientSession) -> None: ...

    async def cancel(self, deployment: Deployment, upstream_id: str,
                     http: aiohttp.ClientSession) -> dict[str, Any]: ...

    async def input_items(self, deployment: Deployment, upstream_id: str, query: list[tuple[str, str]],
                          http: aiohttp.ClientSession) -> dict[str, Any]: ...

    async def compact(self, deployment: Deployment, body: dict[str, Any],
                      http: aiohttp.ClientSession) -> dict[str, Any]: ...

    async def input_tokens(self, deployment: Deployment, body: dict[str, Any],
                           http: aiohttp.ClientSession) -> dict[str, Any]: ...
