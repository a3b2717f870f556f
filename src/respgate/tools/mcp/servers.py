"""The MCP servers one request uses: its `mcp` tools, checked, with `litellm_proxy` and registered
labels resolved to the configured servers the caller may use.

A tool names its server by URL (`server_url: https://...`), or as LiteLLM users write it:
`server_url: "litellm_proxy"` (every configured server the key may use, or the one `server_label`
names), `"litellm_proxy/mcp/<name>"`, or no URL and a `server_label` that is a configured name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from ...calls import Principal
from ...errors import InvalidRequestError, PermissionDeniedError
from ...security import urls
from .config import Limits, ServerConfig

Json = dict[str, Any]

PROXY_URL: Final = "litellm_proxy"
_PROXY_PREFIX: Final = "litellm_proxy/mcp/"


@dataclass(frozen=True, slots=True)
class ListedTool:
    """A tool as an MCP server lists it (the `mcp_list_tools` item's entry)."""

    name: str
    input_schema: Json
    description: str | None = None
    annotations: Json | None = None

    @property
    def read_only(self) -> bool:
        return bool((self.annotations or {}).get("readOnlyHint"))

    def item(self) -> Json:
        return {"name": self.name, "input_schema": self.input_schema, "description": self.description,
                "annotations": self.annotations}

    @classmethod
    def from_item(cls, raw: Any) -> ListedTool | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            return None
        schema = raw.get("input_schema")
        return cls(raw["name"], schema if isinstance(schema, dict) else {"type": "object"},
                   raw.get("description") if isinstance(raw.get("description"), str) else None,
                   raw.get("annotations") if isinstance(raw.get("annotations"), dict) else None)


@dataclass(frozen=True, slots=True)
class ToolFilter:
    """OpenAI's tool filter: a list of names, and/or `read_only`; both must match when both are given."""

    names: frozenset[str] | None = None
    read_only: bool | None = None

    def matches(self, tool: ListedTool) -> bool:
        return ((self.names is None or tool.name in self.names)
                and (self.read_only is None or tool.read_only == self.read_only))


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """`require_approval`: "always" (OpenAI's default), "never", or {always: filter, never: filter}.
    A tool neither filter names needs approval unless only `always` was given."""

    always: ToolFilter | None = None
    never: ToolFilter | None = None
    default: bool = True

    def required(self, tool: ListedTool) -> bool:
        if self.never is not None and self.never.matches(tool):
            return False
        if self.always is not None and self.always.matches(tool):
            return True
        return self.default


@dataclass(frozen=True, slots=True)
class McpServer:
    """One server a request may call, with everything needed to reach it (headers hold credentials)."""

    label: str
    url: str
    transport: str = "http"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    allowed: ToolFilter | None = None
    approval: ApprovalPolicy = ApprovalPolicy()
    description: str | None = None
    call_timeout: float = 60.0
    list_timeout: float = 20.0
    max_output_chars: int = 100_000
    config: ServerConfig | None = None
    # A server a client named: the proxy's URL policy, applied again to every address connected to
    # (security/connect.py). None for configured servers (the admin's, trusted) and in the SDK.
    url_policy: urls.UrlPolicy | None = None

    def offers(self, tool: ListedTool) -> bool:
        return ((self.allowed is None or self.allowed.matches(tool))
                and (self.config is None or self.config.offers(tool.name)))


def mcp_tools(body: Json) -> list[tuple[int, Json]]:
    return [(i, t) for i, t in enumerate(body.get("tools") or []) if isinstance(t, dict) and t.get("type") == "mcp"]


def request_servers(body: Json, registry: Mapping[str, ServerConfig], principal: Principal,
                    limits: Limits) -> list[McpServer]:
    """The servers of the request's `mcp` tools, in order; a 4xx naming the tool for a bad one."""
    servers: list[McpServer] = []
    for index, tool in mcp_tools(body):
        where = f"tools[{index}]"
        approval = _approval(tool.get("require_approval"), f"{where}.require_approval")
        allowed = _filter(tool.get("allowed_tools"), f"{where}.allowed_tools")
        configured = _configured(tool, where, registry, principal)
        if configured is not None:
            servers += [configured_server(c, limits, allowed=allowed, approval=approval,
                                          description=_opt_str(tool.get("server_description")))
                        for c in configured]
            continue
        url = tool.get("server_url")
        if not isinstance(url, str):
            what = "connector_id" if tool.get("connector_id") else "tunnel_id" if tool.get("tunnel_id") else None
            if what is not None:
                raise InvalidRequestError(f"'{what}' MCP tools are only available on OpenAI models; give a "
                                          "server_url.", param=f"{where}.{what}", code="unsupported_value")
            raise InvalidRequestError("An MCP tool needs a server_url (or the label of a server configured on "
                                      "this gateway).", param=f"{where}.server_url",
                                      code="missing_required_parameter")
        if not url.startswith(("http://", "https://")):
            raise InvalidRequestError(f"Invalid 'server_url': expected an http(s) URL or '{PROXY_URL}'.",
                                      param=f"{where}.server_url", code="invalid_value")
        if not limits.allow_request_servers:
            raise PermissionDeniedError("This gateway only calls the MCP servers in its configuration; use "
                                        f"server_url '{PROXY_URL}'.", param=f"{where}.server_url")
        policy = urls.current()
        if policy is not None:  # the gateway connects to it: no internal addresses (SSRF)
            policy.check(url, f"{where}.server_url")
        label = tool.get("server_label")
        if label is None:
            raise InvalidRequestError(f"Missing required parameter: '{where}.server_label'.",
                                      param=f"{where}.server_label", code="missing_required_parameter")
        if not isinstance(label, str) or not label or "__" in label or not all(
                c.isalnum() or c in "-_" for c in label):
            raise InvalidRequestError("Invalid 'server_label': use letters, digits, '-' and '_' (not '__').",
                                      param=f"{where}.server_label", code="invalid_value")
        servers.append(McpServer(
            label=label, url=url, transport=_transport_of(url), headers=_request_headers(tool, where),
            allowed=allowed, approval=approval, description=_opt_str(tool.get("server_description")),
            call_timeout=limits.call_timeout, list_timeout=limits.list_timeout,
            max_output_chars=limits.max_output_chars, url_policy=policy))
    labels = [s.label for s in servers]
    duplicate = next((label for n, label in enumerate(labels) if label in labels[:n]), None)
    if duplicate is not None:
        raise InvalidRequestError(f"Duplicate MCP server_label '{duplicate}'.", param="tools", code="invalid_value")
    return servers


def _transport_of(url: str) -> str:
    """A client cannot name the transport (OpenAI's tool has no field for it): a path ending in `/sse` is
    the SSE transport by the usual convention, anything else streamable HTTP."""
    return "sse" if urlsplit(url).path.rstrip("/").endswith("/sse") else "http"


def _configured(tool: Json, where: str, registry: Mapping[str, ServerConfig],
                principal: Principal) -> list[ServerConfig] | None:
    """The configured servers a tool means, or None when it names a server of its own."""
    url = tool.get("server_url")
    label = tool.get("server_label")
    if isinstance(url, str) and url.startswith(_PROXY_PREFIX):
        names: list[str] | None = [url[len(_PROXY_PREFIX):].strip("/")]
    elif url == PROXY_URL:
        names = [label] if isinstance(label, str) and label else None
    elif url is None and isinstance(label, str) and label in registry:
        names = [label]
    else:
        return None
    if names is None:  # `litellm_proxy` alone: every server this key may use
        return [c for c in registry.values() if c.usable_by(principal)]
    found = []
    for name in names:
        config = registry.get(name)
        if config is None:
            raise InvalidRequestError(f"No MCP server named '{name}' is configured on this gateway.",
                                      param=f"{where}.server_label", code="invalid_value")
        if not config.usable_by(principal):
            raise PermissionDeniedError(f"This key may not use the MCP server '{name}'.",
                                        param=f"{where}.server_label")
        found.append(config)
    return found


def configured_server(c: ServerConfig, limits: Limits, *, allowed: ToolFilter | None = None,
                      approval: ApprovalPolicy = ApprovalPolicy(), description: str | None = None) -> McpServer:
    return McpServer(
        label=c.name, url=c.url, transport=c.transport, headers=dict(c.headers), allowed=allowed,
        approval=approval, description=description or c.description,
        call_timeout=c.timeout or limits.call_timeout, list_timeout=limits.list_timeout,
        max_output_chars=c.max_output_chars or limits.max_output_chars, config=c)


def _request_headers(tool: Json, where: str) -> dict[str, str]:
    headers = dict(tool.get("headers") or {})
    token = tool.get("authorization")
    if isinstance(token, str) and token:
        headers["Authorization"] = f"Bearer {token}"
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise InvalidRequestError("Invalid 'headers': expected string values.", param=f"{where}.headers",
                                  code="invalid_type")
    return headers


def _filter(raw: Any, param: str) -> ToolFilter | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        return ToolFilter(frozenset(str(n) for n in raw))
    if isinstance(raw, dict):
        names = raw.get("tool_names")
        read_only = raw.get("read_only")
        return ToolFilter(frozenset(str(n) for n in names) if isinstance(names, list) else None,
                          read_only if isinstance(read_only, bool) else None)
    raise InvalidRequestError("Invalid 'allowed_tools': expected a list of names or a filter object.",
                              param=param, code="invalid_type")


def _approval(raw: Any, param: str) -> ApprovalPolicy:
    if raw is None or raw == "always":
        return ApprovalPolicy()
    if raw == "never":
        return ApprovalPolicy(default=False)
    if isinstance(raw, dict):
        always = _filter(raw.get("always"), f"{param}.always")
        never = _filter(raw.get("never"), f"{param}.never")
        return ApprovalPolicy(always, never, default=not (always is not None and never is None))
    raise InvalidRequestError("Invalid 'require_approval': expected 'always', 'never' or a filter object.",
                              param=param, code="invalid_value")


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def native_tools(body: Json, registry: Mapping[str, ServerConfig], principal: Principal) -> list[Json] | None:
    """For a provider that runs MCP itself (OpenAI): the request's tools with every configured server it
    names written out (URL, credentials, allowed tools); None when there is nothing to resolve."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not any(_configured_ref(t, registry) for t in tools):
        return None
    out: list[Json] = []
    for index, tool in enumerate(tools):
        if not _configured_ref(tool, registry):
            out.append(tool)
            continue
        configured = _configured(tool, f"tools[{index}]", registry, principal) or []
        for c in configured:
            resolved = {k: v for k, v in tool.items() if k not in ("server_url", "server_label", "headers")}
            resolved.update(server_label=c.name, server_url=c.url,
                            headers={**(tool.get("headers") or {}), **c.headers})
            if c.description and "server_description" not in tool:
                resolved["server_description"] = c.description
            allowed = _native_allowed(tool.get("allowed_tools"), c)
            if allowed is not None:
                resolved["allowed_tools"] = allowed
            out.append(resolved)
    return out


def _configured_ref(tool: Any, registry: Mapping[str, ServerConfig]) -> bool:
    if not isinstance(tool, dict) or tool.get("type") != "mcp":
        return False
    url = tool.get("server_url")
    return (isinstance(url, str) and (url == PROXY_URL or url.startswith(_PROXY_PREFIX))) or (
        url is None and tool.get("server_label") in registry)


def _native_allowed(requested: Any, c: ServerConfig) -> Any:
    """The request's allowed_tools narrowed to what the configured server offers."""
    if c.allowed_tools is None and not c.disallowed_tools:
        return requested
    wanted = _filter(requested, "allowed_tools") or ToolFilter()
    names = c.allowed_tools if wanted.names is None else (c.allowed_tools or wanted.names) & wanted.names
    if names is None:  # only a deny list: OpenAI cannot say "all but", so the request's filter stands
        return requested
    names = frozenset(n for n in names if n not in c.disallowed_tools)
    if wanted.read_only is not None:
        return {"tool_names": sorted(names), "read_only": wanted.read_only}
    return sorted(names)
