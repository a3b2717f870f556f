"""The URL guard: a URL a client hands the gateway is refused when it points inside the network.

Server-side request forgery is a client making the gateway — or a provider inside the same network,
such as a self-hosted model that downloads `input_image` URLs — fetch a loopback, private, link-local
(cloud metadata at 169.254.169.254) or otherwise internal address. The guard refuses, with a 400
naming the field:

* schemes other than http(s) (`invalid_url`); `data:` URLs are inline content and pass where a
  file or an image may be given inline;
* URLs the gateway and a fetcher could read differently: credentials before the host, backslashes,
  spaces or control characters (`invalid_url`);
* literal addresses that are not globally routable, however they are spelled (`127.1`,
  `0x7f000001`, `[::ffff:127.0.0.1]`, 6to4 and NAT64 forms), multicast, CGNAT 100.64/10
  (`url_not_allowed`);
* names that are never public: `localhost` and `*.localhost`, `*.local`, `*.internal` (which holds
  `metadata.google.internal`), `*.home.arpa`, `*.localdomain`, `metadata.goog`, and names without a
  dot (a container's or an intranet's short names) (`url_not_allowed`).

Where the gateway connects itself (an MCP server given in a request), `addresses` also resolves the
name off the event loop and checks every address it resolves to; the connection is then made to a
checked address (`connect.py`), so a DNS answer that changes between the check and the connection
(rebinding) cannot slip through.

The policy is LiteLLM's `litellm_settings`: `user_url_validation` (default true; false keeps only the
scheme and syntax checks, for deployments whose clients are all trusted) and `user_url_allowed_hosts`
(hosts that may be internal, as the URL writes them: `10.0.0.7`, `models.corp`, `127.0.0.1:8080`,
`[::1]`; an entry without a port admits every port). MCP servers the admin configured in
`mcp_servers:` are trusted and never checked.

The proxy binds its policy to each request (`bind`); the SDK binds none, so its caller — the
application itself — is trusted, as with any library.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from ..errors import ConfigError, InvalidRequestError

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["UrlPolicy", "bind", "check_items", "check_request", "current", "unbind"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

INVALID_URL: Final = "invalid_url"
NOT_ALLOWED: Final = "url_not_allowed"

_V4_BLOCKED: Final = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"))
_V6_BLOCKED: Final = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10",
    "ff00::/8"))
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")  # a public NAT64 prefix: judged by the IPv4 inside
_NAMES: Final = frozenset({"localhost", "metadata.goog", "metadata.google.internal", "instance-data"})
_SUFFIXES: Final = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain")
_NUMERIC_HOST: Final = re.compile(r"[0-9a-fx.]+")  # what inet_aton may read as IPv4: 127.1, 0x7f.1, 2130706433
_UNSAFE_CHARS: Final = re.compile(r"[\x00-\x20\x7f\\]")
_INLINE: Final = "data:"

_policy: contextvars.ContextVar[UrlPolicy | None] = contextvars.ContextVar("respgate_url_policy", default=None)


class UrlRefused(InvalidRequestError):
    """A URL the policy does not let through (400, naming the field)."""


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    validate: bool = True
    allowed_hosts: frozenset[tuple[str, int | None]] = frozenset()

    @classmethod
    def from_config(cls, config: Config) -> UrlPolicy:
        extra = config.litellm_settings.extra
        validate = extra.get("user_url_validation", True)
        if not isinstance(validate, bool):
            raise ConfigError("litellm_settings.user_url_validation", "expected true or false")
        return cls(validate, _allowed_hosts(extra.get("user_url_allowed_hosts"),
                                            "litellm_settings.user_url_allowed_hosts"))

    def check(self, url: str, param: str, *, inline: bool = False) -> None:
        """Raises UrlRefused unless `url` may be handed to a fetcher (`inline`: a `data:` URL passes)."""
        if inline and url[:5].lower() == _INLINE:
            return
        if _UNSAFE_CHARS.search(url):
            raise _invalid(param, "it holds spaces, control characters or backslashes")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise _invalid(param, "it cannot be parsed") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise _invalid(param, "only http and https URLs are accepted" + (" (or data: URLs)" if inline else ""))
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise _invalid(param, "it has no host")
        if "@" in parts.netloc:
            raise _invalid(param, "credentials in URLs are not accepted")
        if self.admits(host, port):
            return
        address = literal_address(host)
        if address is not None:
            if internal_address(address):
                raise _not_allowed(param, "it points to a loopback, private, link-local or reserved address")
        elif internal_name(host):
            raise _not_allowed(param, "it names a host that is not public")

    def admits(self, host: str, port: int | None) -> bool:
        """Whether `host` skips the address checks: validation is off, or the host is allowed."""
        return not self.validate or (host, None) in self.allowed_hosts or (host, port) in self.allowed_hosts

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for `host`, resolved off the loop; every one is checked (one
        internal address among public ones refuses the host). Raises UrlRefused."""
        name = host.lower().rstrip(".")
        try:
            infos = await _getaddrinfo(name, port)
        except OSError:
            raise _not_allowed(None, f"the host {name!r} could not be resolved") from None
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not found:
            raise _not_allowed(None, f"the host {name!r} could not be resolved")
        if not self.admits(name, port) and any(internal_address(_address(a)) for a in found):
            raise _not_allowed(None, f"the host {name!r} resolves to an internal address")
        return found


async def _getaddrinfo(host: str, port: int) -> list[Any]:
    """The resolver seam (tests replace it); libuv/asyncio run it in a thread, off the loop."""
    return await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling a fetcher would accept; None for a name."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def internal_address(address: IPAddress) -> bool:
    """Not globally routable: loopback, private, link-local, CGNAT, reserved, multicast, unspecified."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None)
        if embedded is not None:
            return internal_address(embedded)
        return not address.is_global or any(address in net for net in _V6_BLOCKED)
    return not address.is_global or any(address in net for net in _V4_BLOCKED)


def internal_name(host: str) -> bool:
    return "." not in host or host in _NAMES or host.endswith(_SUFFIXES)


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.partition("%")[0])  # a scoped IPv6 answer: fe80::1%eth0


def _invalid(param: str | None, why: str) -> UrlRefused:
    field = f"'{param}'" if param else "URL"
    return UrlRefused(f"Invalid {field}: {why}.", param=param, code=INVALID_URL)


def _not_allowed(param: str | None, why: str) -> UrlRefused:
    field = f"'{param}'" if param else "URL"
    return UrlRefused(f"The URL in {field} is not allowed: {why}.", param=param, code=NOT_ALLOWED)


def _allowed_hosts(raw: Any, key: str) -> frozenset[tuple[str, int | None]]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or not all(isinstance(h, str) and h.strip() for h in raw):
        raise ConfigError(key, "expected a list of host names")
    return frozenset(_host_entry(h.strip().lower(), key) for h in raw)


def _host_entry(entry: str, key: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address -> (host, port or None)."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    if not host or (port and not port.isdigit()):
        raise ConfigError(key, "expected entries like `host`, `host:port` or `[::1]:port`")
    return host.rstrip("."), int(port) if port else None


# -- the current request's policy ---------------------------------------------------------------------

def bind(policy: UrlPolicy | None) -> contextvars.Token[UrlPolicy | None]:
    """Makes `policy` the one every URL check of this task (and the tasks it starts) applies."""
    return _policy.set(policy)


def unbind(token: contextvars.Token[UrlPolicy | None]) -> None:
    _policy.reset(token)


def current() -> UrlPolicy | None:
    """The bound policy; None outside the proxy (the SDK's caller is trusted)."""
    return _policy.get()


# -- the URLs a request hands on ----------------------------------------------------------------------

# content part type -> its URL field; both may be given inline (data: URLs)
_URL_PARTS: Final = {"input_image": "image_url", "input_file": "file_url", "computer_screenshot": "image_url"}


def check_request(body: Mapping[str, Any], *, mcp: bool = False) -> None:
    """The URLs a create request hands to a fetcher, checked with the current policy: images and files
    in `input` and in `prompt.variables`; with `mcp` (a provider that connects to MCP servers itself)
    also the `server_url` of `mcp` tools. A no-op when no policy is bound."""
    policy = _policy.get()
    if policy is None:
        return
    items = body.get("input")
    if type(items) is list:
        _check_items(policy, items, "input")
    prompt = body.get("prompt")
    variables = prompt.get("variables") if type(prompt) is dict else None
    if type(variables) is dict:
        for name, value in variables.items():
            _check_part(policy, value, f"prompt.variables.{name}")
    tools = body.get("tools")
    if mcp and type(tools) is list:
        for i, tool in enumerate(tools):
            url = tool.get("server_url") if type(tool) is dict and tool.get("type") == "mcp" else None
            if type(url) is str and not url.startswith("litellm_proxy"):
                policy.check(url, f"tools[{i}].server_url")


def check_items(items: Any, param: str) -> None:
    """Conversation items (stored now, replayed to a provider later), checked like a request's input."""
    policy = _policy.get()
    if policy is not None and type(items) is list:
        _check_items(policy, items, param)


def _check_items(policy: UrlPolicy, items: Iterable[Any], param: str) -> None:
    # Most items carry no URL: the loop only looks at part types, and a field's name is formatted
    # once a URL is found (this runs on every request the proxy validates).
    parts = _URL_PARTS
    for i, item in enumerate(items):
        if type(item) is not dict:
            continue
        content = item.get("content")
        if type(content) is list:  # a message's parts
            for j, part in enumerate(content):
                if type(part) is dict and type(kind := part.get("type")) is str and kind in parts:
                    _check_part(policy, part, f"{param}[{i}].content[{j}]")
        output = item.get("output")
        if type(output) is list:  # a tool's output parts
            for j, part in enumerate(output):
                if type(part) is dict and type(kind := part.get("type")) is str and kind in parts:
                    _check_part(policy, part, f"{param}[{i}].output[{j}]")
        elif type(output) is dict:  # a computer call's screenshot
            _check_part(policy, output, f"{param}[{i}].output")


def _check_part(policy: UrlPolicy, part: Any, param: str) -> None:
    kind = part.get("type") if type(part) is dict else None
    field = _URL_PARTS.get(kind) if type(kind) is str else None
    url = part.get(field) if field is not None else None
    if type(url) is str:
        policy.check(url, f"{param}.{field}", inline=True)
