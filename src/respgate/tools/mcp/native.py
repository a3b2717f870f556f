"""OpenAI-native models run MCP themselves: the request's tools go upstream as they are, except the
servers configured on this gateway (`litellm_proxy`, or a registered label), which are written out
with their real URL, credentials and allowed tools. The upstream then calls those servers itself,
so they must be reachable from it. The Response echoes the tools without those credentials.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from ...events import LIFECYCLE_TYPES, Event
from ...providers.base import Provider, ProviderRequest
from .servers import PROXY_URL

Json = dict[str, Any]


class NativeMcp:
    """Sends the resolved tools; every other call goes to the wrapped provider as it is."""

    def __init__(self, inner: Provider, tools: list[Json], labels: frozenset[str]) -> None:
        self._inner = inner
        self._tools = tools
        self._labels = labels
        self.holds_state = inner.holds_state

    def __getattr__(self, name: str) -> Any:  # retrieve, cancel, ... of a stateful provider
        return getattr(self._inner, name)

    def _request(self, req: ProviderRequest) -> ProviderRequest:
        return dataclasses.replace(req, body={**req.body, "tools": self._tools})

    async def create(self, req: ProviderRequest) -> Json:
        result = await self._inner.create(self._request(req))
        self._hide(result)
        return result

    async def stream(self, req: ProviderRequest) -> AsyncIterator[Event]:
        async for event in self._inner.stream(self._request(req)):
            response = event.obj.get("response") if event.type in LIFECYCLE_TYPES else None
            if isinstance(response, dict) and self._hide(response):
                event.changed()
            yield event

    def _hide(self, response: Json) -> bool:
        """The echoed tools of configured servers, back to `litellm_proxy` without their headers."""
        tools = response.get("tools")
        if not isinstance(tools, list):
            return False
        changed = False
        for n, tool in enumerate(tools):
            if isinstance(tool, dict) and tool.get("type") == "mcp" and tool.get("server_label") in self._labels:
                tools[n] = {**{k: v for k, v in tool.items() if k != "headers"}, "server_url": PROXY_URL}
                changed = True
        return changed
