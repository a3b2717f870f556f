"""The `mcp_servers:` section (LiteLLM's shape) and the limits every MCP call runs under.

```yaml
mcp_servers:
  calc:                                   # the server's name: its label in tools and on /mcp
    url: https://mcp.example.com/mcp
    transport: http                       # http (streamable HTTP, the default) | sse
    auth_type: bearer_token               # none | api_key | bearer_token | basic | token | authorization
    auth_value: os.environ/CALC_TOKEN
    static_headers: {X-Tenant: acme}      # sent on every request (`headers:` is accepted too)
    allowed_tools: [calculate]            # only these tools are offered
    disallowed_tools: [delete_all]
    description: A calculator
    allowed_keys: [ci-key]                # key aliases that may use it  } none of the three:
    allowed_teams: [team-a]               # team ids that may use it     } every caller may
    access_groups: [math]                 # groups a key lists in its metadata `mcp_access_groups`
    timeout: 30                           # seconds per tool call (default: general_settings)
general_settings:
  mcp_tool_timeout: 60                    # seconds per tool call
  mcp_list_timeout: 20                    # seconds to list a server's tools
  mcp_max_output_chars: 100000            # a longer tool output is cut, with a marker
  mcp_max_tool_calls: 20                  # MCP calls one response may make
  mcp_max_rounds: 10                      # model calls one response may make
  mcp_allow_request_servers: true         # false: only configured servers (no client-given URLs)
```
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ...calls import Principal
from ...errors import ConfigError

_SECTION: Final = "mcp_servers"
_TRANSPORTS: Final = {"http": "http", "streamable_http": "http", "streamable-http": "http", "sse": "sse"}
_AUTH_HEADERS: Final = {
    "api_key": ("X-API-Key", "{}"),
    "bearer_token": ("Authorization", "Bearer {}"),
    "token": ("Authorization", "token {}"),
    "authorization": ("Authorization", "{}"),
}
_SERVER_KEYS: Final = frozenset({
    "url", "server_url", "transport", "auth_type", "auth_value", "authentication_token", "static_headers",
    "headers", "extra_headers", "allowed_tools", "disallowed_tools", "description", "allowed_keys",
    "allowed_teams", "access_groups", "timeout", "max_output_chars", "alias", "server_name", "spec_version",
    "mcp_info",
})


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for the tool loop; a hostile or dead server costs at most these."""

    call_timeout: float = 60.0
    list_timeout: float = 20.0
    max_output_chars: int = 100_000
    max_tool_calls: int = 20
    max_rounds: int = 10
    max_message_bytes: int = 8 * 1024 * 1024  # one MCP message; beyond it the call fails
    allow_request_servers: bool = True


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One configured MCP server. `headers` carry credentials: never logged, never echoed."""

    name: str
    url: str
    transport: str = "http"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    allowed_tools: frozenset[str] | None = None
    disallowed_tools: frozenset[str] = frozenset()
    description: str | None = None
    allowed_keys: frozenset[str] | None = None
    allowed_teams: frozenset[str] | None = None
    access_groups: frozenset[str] | None = None
    timeout: float | None = None
    max_output_chars: int | None = None

    def usable_by(self, principal: Principal) -> bool:
        """The master key (or a key-less proxy's only caller when nothing restricts the server) may use
        it; otherwise a key whose alias, team or access groups are listed."""
        rules = (self.allowed_keys, self.allowed_teams, self.access_groups)
        if principal.is_admin or all(r is None for r in rules):
            return True
        if self.allowed_keys and principal.key_alias in self.allowed_keys:
            return True
        if self.allowed_teams and principal.team_id in self.allowed_teams:
            return True
        return bool(self.access_groups and self.access_groups & principal_groups(principal))

    def offers(self, tool: str) -> bool:
        return (self.allowed_tools is None or tool in self.allowed_tools) and tool not in self.disallowed_tools


def principal_groups(principal: Principal) -> frozenset[str]:
    """The MCP access groups of a virtual key: `mcp_access_groups` in its record or its metadata
    (LiteLLM's `object_permission.mcp_access_groups` is read too)."""
    record = principal.limits
    found: set[str] = set()
    for holder in (record, _get(record, "metadata"), _get(record, "object_permission")):
        groups = _get(holder, "mcp_access_groups")
        if isinstance(groups, list | tuple | set | frozenset):
            found.update(str(g) for g in groups)
    return frozenset(found)


def _get(holder: Any, key: str) -> Any:
    if isinstance(holder, Mapping):
        return holder.get(key)
    return getattr(holder, key, None) if holder is not None else None


def parse_servers(section: Any) -> dict[str, ServerConfig]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(_SECTION, "expected a mapping of server name -> settings")
    return {str(name): _server(str(name), raw) for name, raw in section.items()}


def _server(name: str, raw: Any) -> ServerConfig:
    key = f"{_SECTION}.{name}"
    if not name or "__" in name or not all(c.isalnum() or c in "-_" for c in name):
        raise ConfigError(key, "a server name is letters, digits, '-' and '_' (no '__', which separates "
                               "server and tool names)")
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "expected a mapping with at least `url`")
    unknown = sorted(str(k) for k in raw if k not in _SERVER_KEYS)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", "unknown setting")
    url = raw.get("url") or raw.get("server_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{key}.url", "expected an http(s) URL (stdio servers are not supported)")
    transport = _TRANSPORTS.get(str(raw.get("transport") or "http").lower())
    if transport is None:
        raise ConfigError(f"{key}.transport", "expected `http` or `sse`")
    return ServerConfig(
        name=name, url=url, transport=transport, headers=_headers(key, raw),
        allowed_tools=_names(raw.get("allowed_tools"), f"{key}.allowed_tools"),
        disallowed_tools=_names(raw.get("disallowed_tools"), f"{key}.disallowed_tools") or frozenset(),
        description=_text(raw.get("description"), f"{key}.description"),
        allowed_keys=_names(raw.get("allowed_keys"), f"{key}.allowed_keys"),
        allowed_teams=_names(raw.get("allowed_teams"), f"{key}.allowed_teams"),
        access_groups=_names(raw.get("access_groups"), f"{key}.access_groups"),
        timeout=_positive(raw.get("timeout"), f"{key}.timeout"),
        max_output_chars=_count(raw.get("max_output_chars"), f"{key}.max_output_chars"),
    )


def _headers(key: str, raw: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name in ("headers", "static_headers"):
        given = raw.get(name)
        if given is None:
            continue
        if not isinstance(given, Mapping) or not all(isinstance(v, str) for v in given.values()):
            raise ConfigError(f"{key}.{name}", "expected a mapping of header name -> string")
        headers.update({str(k): v for k, v in given.items()})
    auth_type = str(raw.get("auth_type") or "none").lower()
    value = raw.get("auth_value", raw.get("authentication_token"))
    if auth_type == "none":
        return headers
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}.auth_value", f"auth_type {auth_type} needs an auth_value")
    if auth_type == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(value.encode()).decode()
    elif auth_type in _AUTH_HEADERS:
        header, template = _AUTH_HEADERS[auth_type]
        headers[header] = template.format(value)
    else:
        raise ConfigError(f"{key}.auth_type", "expected none, api_key, bearer_token, basic, token or authorization")
    return headers


def parse_limits(general: Mapping[str, Any]) -> Limits:
    defaults = Limits()
    key = "general_settings"
    allow = general.get("mcp_allow_request_servers", defaults.allow_request_servers)
    if not isinstance(allow, bool):
        raise ConfigError(f"{key}.mcp_allow_request_servers", "expected true or false")
    return Limits(
        call_timeout=_positive(general.get("mcp_tool_timeout"), f"{key}.mcp_tool_timeout") or defaults.call_timeout,
        list_timeout=_positive(general.get("mcp_list_timeout"), f"{key}.mcp_list_timeout") or defaults.list_timeout,
        max_output_chars=_count(general.get("mcp_max_output_chars"), f"{key}.mcp_max_output_chars")
        or defaults.max_output_chars,
        max_tool_calls=_count(general.get("mcp_max_tool_calls"), f"{key}.mcp_max_tool_calls")
        or defaults.max_tool_calls,
        max_rounds=_count(general.get("mcp_max_rounds"), f"{key}.mcp_max_rounds") or defaults.max_rounds,
        allow_request_servers=allow,
    )


def _names(value: Any, key: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, "expected a list of strings")
    return frozenset(value)


def _text(value: Any, key: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(key, "expected a string")
    return value


def _positive(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(key, "expected a positive number of seconds")
    return float(value)


def _count(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, "expected a positive integer")
    return value
