"""Tools the gateway runs itself: MCP servers called on a model's behalf (tools/mcp/).

`Tools.wrap` is the gateway's one seam: for a request with `mcp` tools (or MCP items in its history)
it returns the provider that runs them; any other request keeps its provider untouched. The `mcp`
SDK (half a second to import) is loaded only when MCP is first used or servers are configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..calls import Principal
from ..config import Config
from ..providers.base import Provider, ProviderRequest
from .mcp.config import Limits, ServerConfig, parse_limits, parse_servers
from .mcp.servers import mcp_tools, native_tools, request_servers

if TYPE_CHECKING:
    from .mcp.hub import McpHub


class Tools:
    def __init__(self, servers: dict[str, ServerConfig] | None = None, limits: Limits | None = None) -> None:
        self.servers = servers or {}
        self.limits = limits or Limits()
        self.hub: McpHub | None = None  # the proxy's /mcp, when servers are configured

    async def start(self) -> None:
        if self.servers and self.hub is None:
            from .mcp.hub import McpHub

            self.hub = McpHub(self.servers, self.limits)
            await self.hub.start()

    async def close(self) -> None:
        if self.hub is not None:
            await self.hub.close()
            self.hub = None

    def wrap(self, provider: Provider, req: ProviderRequest, principal: Principal) -> Provider:
        """The provider that serves `req`: itself, or one that also runs the request's MCP tools."""
        if provider.holds_state:
            tools = native_tools(req.body, self.servers, principal)
            if tools is None:
                return provider
            from .mcp.native import NativeMcp

            labels = frozenset(t["server_label"] for t in tools if t.get("type") == "mcp")
            return NativeMcp(provider, tools, labels & frozenset(self.servers))
        if not mcp_tools(req.body) and not any(str(i.get("type", "")).startswith("mcp_") for i in req.input_items):
            return provider
        servers = request_servers(req.body, self.servers, principal, self.limits)
        from .mcp.loop import McpProvider

        return McpProvider(provider, servers, self.limits)


def build(config: Config) -> Tools:
    return Tools(parse_servers(config.sections.get("mcp_servers")), parse_limits(config.general.extra))
