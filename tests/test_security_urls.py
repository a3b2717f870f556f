"""The SSRF guard: URLs a client hands the proxy (input_image / input_file URLs, an MCP `server_url`)
are refused when they point inside the network, however they are spelled; the policy is LiteLLM's
`user_url_validation` / `user_url_allowed_hosts`; configured MCP servers are trusted; a connection to a
client's MCP server goes only to a checked address (DNS rebinding)."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from openai import OpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import respgate
from conftest import MASTER_KEY, MOCK_MODELS, ProxyFactory
from fakes.mcp_server import FakeMcp
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from respgate.config import Config, config_from_dicts, load_config
from respgate.errors import ConfigError
from respgate.security import urls
from respgate.security.connect import CheckedTransport, checked_client_factory
from respgate.security.urls import UrlPolicy, UrlRefused

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
       "hKmMIQAAAABJRU5ErkJggg==")
STRICT = UrlPolicy()

INTERNAL = [
    "http://127.0.0.1/x", "http://127.1/", "http://0x7f000001/", "http://2130706433/", "http://017700000001/",
    "http://0x7f.1/", "http://0/", "http://0.0.0.0:8080/", "http://[::1]/", "http://[::]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::127.0.0.1]/", "http://10.1.2.3/",
    "http://172.16.0.1/", "http://172.31.255.255/", "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/", "http://[fe80::1%25eth0]/", "http://[fd00:ec2::254]/", "http://[fc00::1]/",
    "http://100.64.0.1/", "http://100.100.100.200/", "http://224.0.0.1/", "http://239.255.255.250/",
    "http://[ff02::1]/", "http://255.255.255.255/", "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:a9fe:a9fe::]/",
    "http://[fec0::1]/", "http://localhost/", "http://LOCALHOST./", "http://api.localhost:8000/",
    "http://metadata.google.internal/computeMetadata/v1/", "http://metadata.goog/", "http://printer.local/",
    "http://db.internal/", "http://router.home.arpa/", "http://redis:6379/", "https://intranet/a.png",
]
INVALID = [
    "file:///etc/passwd", "gopher://example.com/", "ftp://example.com/a.png", "javascript:alert(1)", "http:///x",
    "http://user:pass@example.com/a.png", "http://example.com@127.0.0.1/", "http://127.0.0.1\\@example.com/",
    "http://exa mple.com/", "http://example.com/\x00", "http://example.com:99999/", "//example.com/a.png",
    "example.com/a.png",
]
PUBLIC = ["https://example.com/a.png", "http://93.184.216.34/", "http://[2606:4700::1111]/", "https://cafe.babe/x",
          "https://x.test/a.png", "HTTPS://Example.COM./a.png?q=1#f", "http://8.8.8.8:8080/"]


def code_of(url: str, policy: UrlPolicy = STRICT, *, inline: bool = False) -> str | None:
    try:
        policy.check(url, "f", inline=inline)
    except UrlRefused as e:
        assert e.status == 400 and e.param == "f"
        return e.code
    return None


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_addresses_and_names_are_refused(url: str) -> None:
    assert code_of(url) == "url_not_allowed"


@pytest.mark.parametrize("url", INVALID)
def test_other_schemes_and_ambiguous_urls_are_invalid(url: str) -> None:
    assert code_of(url) == "invalid_url"


@pytest.mark.parametrize("url", PUBLIC)
def test_public_urls_pass(url: str) -> None:
    assert code_of(url) is None


def test_data_urls_pass_only_where_content_may_be_inline() -> None:
    assert code_of(PNG, inline=True) is None
    assert code_of(PNG) == "invalid_url"  # an MCP server is never inline


def test_allowed_hosts_and_the_switch() -> None:
    allowed = UrlPolicy(allowed_hosts=frozenset({("127.0.0.1", None), ("localhost", 8080), ("::1", None)}))
    assert code_of("http://127.0.0.1:1234/mcp", allowed) is None  # no port given: every port
    assert code_of("http://localhost:8080/v1", allowed) is None
    assert code_of("http://localhost:8081/v1", allowed) == "url_not_allowed"  # that port only
    assert code_of("http://[::1]:9/", allowed) is None
    assert code_of("http://10.0.0.1/", allowed) == "url_not_allowed"
    off = UrlPolicy(validate=False)
    assert code_of("http://10.0.0.1/", off) is None and code_of("http://localhost/", off) is None
    assert code_of("file:///etc/passwd", off) == "invalid_url"  # the syntax rules stay


def test_the_policy_comes_from_litellm_settings(tmp_path: Path) -> None:
    def load_config_text(litellm: str) -> Config:
        path = tmp_path / "config.yaml"
        path.write_text("litellm_settings:\n" + textwrap.indent(litellm, "  "))
        return load_config(str(path))

    policy = UrlPolicy.from_config(load_config_text(
        'user_url_allowed_hosts: ["127.0.0.1:8080", "[::1]", "Models.Corp.", "[::1]:443"]\n'))
    assert policy.validate and policy.allowed_hosts == {("127.0.0.1", 8080), ("::1", None), ("models.corp", None),
                                                       ("::1", 443)}
    assert not UrlPolicy.from_config(load_config_text("user_url_validation: false\n")).validate
    assert UrlPolicy.from_config(config_from_dicts([])) == STRICT  # the default: validate, allow nothing
    for bad, key in (("user_url_validation: 0\n", "user_url_validation"),
                     ("user_url_allowed_hosts: 127.0.0.1\n", "user_url_allowed_hosts"),
                     ('user_url_allowed_hosts: ["host:port"]\n', "user_url_allowed_hosts")):
        with pytest.raises(ConfigError) as e:
            UrlPolicy.from_config(load_config_text(bad))
        assert e.value.key == f"litellm_settings.{key}"


def test_a_request_is_checked_only_under_a_bound_policy() -> None:
    body = {"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "hi"}, {"type": "input_image", "image_url": "http://10.0.0.1/a.png"}]}]}
    urls.check_request(body)  # no policy bound (the SDK): nothing to refuse
    token = urls.bind(STRICT)
    try:
        with pytest.raises(UrlRefused) as e:
            urls.check_request(body)
        assert e.value.param == "input[0].content[1].image_url" and e.value.code == "url_not_allowed"
    finally:
        urls.unbind(token)
    assert urls.current() is None


@pytest.mark.parametrize(("body", "param"), [
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": [
        {"type": "input_file", "file_url": "http://192.168.0.9/f.pdf"}]}]}, "input[0].output[0].file_url"),
    ({"input": [{"type": "computer_call_output", "call_id": "c", "output": {
        "type": "computer_screenshot", "image_url": "http://169.254.169.254/s.png"}}]}, "input[0].output.image_url"),
    ({"prompt": {"id": "p", "variables": {"pic": {"type": "input_image", "image_url": "http://localhost/a"}}}},
     "prompt.variables.pic.image_url"),
    ({"input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "mcp", "server_label": "s",
                                                                   "server_url": "http://10.9.9.9/mcp"}]},
     "tools[1].server_url"),
])
def test_every_url_a_fetcher_follows_is_found(body: dict[str, Any], param: str) -> None:
    token = urls.bind(STRICT)
    try:
        with pytest.raises(UrlRefused) as e:
            urls.check_request(body, mcp=True)
        assert e.value.param == param
        # odd shapes (the passthrough path checks no types first) are left to the upstream, not a crash
        urls.check_request({"input": [{"content": [{"type": ["x"]}, 5, {"type": "input_image", "image_url": 7}]},
                                      {"output": [None]}], "prompt": {"variables": []}, "tools": [None, 3]}, mcp=True)
        urls.check_request({"tools": [{"type": "mcp", "server_url": "litellm_proxy/mcp/x"}]}, mcp=True)
    finally:
        urls.unbind(token)


# -- resolving names and connecting (MCP servers a client names) ---------------------------------------

@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The resolver seam: name -> addresses (an unknown name does not resolve)."""
    table: dict[str, list[str]] = {}

    async def fake(host: str, port: int) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in table[host]]

    monkeypatch.setattr(urls, "_getaddrinfo", fake)
    return table


async def test_every_resolved_address_is_checked(resolver: dict[str, list[str]]) -> None:
    resolver.update({"public.test": ["93.184.216.34", "2606:2800::1"], "mixed.test": ["93.184.216.34", "10.0.0.8"],
                     "scoped.test": ["fe80::1%eth0"], "split.corp.test": ["10.1.1.1"]})
    assert await STRICT.addresses("public.test", 443) == ["93.184.216.34", "2606:2800::1"]
    for name in ("mixed.test", "scoped.test", "split.corp.test", "nowhere.test"):
        with pytest.raises(UrlRefused) as e:
            await STRICT.addresses(name, 443)
        assert e.value.code == "url_not_allowed" and name in e.value.message
    split = UrlPolicy(allowed_hosts=frozenset({("split.corp.test", None)}))
    assert await split.addresses("split.corp.test", 443) == ["10.1.1.1"]  # allowed by name, split-horizon DNS


def _echo_host() -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"host": request.headers.get("host")})

    return Starlette(routes=[Route("/", echo)])


async def test_the_connection_goes_to_the_checked_address(resolver: dict[str, list[str]]) -> None:
    with ServerThread(_echo_host()) as server:
        port = int(server.url.rsplit(":", 1)[1])
        resolver["pinned.test"] = ["127.0.0.1"]
        allowed = UrlPolicy(allowed_hosts=frozenset({("pinned.test", None)}))
        async with httpx2.AsyncClient(transport=CheckedTransport(allowed)) as http:
            r = await http.get(f"http://pinned.test:{port}/")
        assert r.status_code == 200 and r.json() == {"host": f"pinned.test:{port}"}  # the name kept, the address pinned
        # A name that passed the request's check but resolves inside at connection time: refused
        # (DNS rebinding), for the streamable HTTP client and the SSE client factory alike.
        async with httpx2.AsyncClient(transport=CheckedTransport(STRICT)) as http:
            with pytest.raises(httpx2.ConnectError, match="internal address"):
                await http.get(f"http://pinned.test:{port}/")
        async with checked_client_factory(STRICT)(headers={"x": "y"}) as http:
            with pytest.raises(httpx2.ConnectError):
                await http.get(f"http://pinned.test:{port}/")


# -- end to end: the official openai client against the proxy ------------------------------------------

def image_message(url: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "input_text", "text": "look"},
                                         {"type": "input_image", "image_url": url, "detail": "auto"}]}]


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


def refusal(exc: pytest.ExceptionInfo[openai.BadRequestError]) -> tuple[str | None, str | None]:
    body: Any = exc.value.body
    return body["param"], body["code"]


def test_an_internal_image_url_is_refused_naming_the_field(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="mock/echo", input=image_message("http://169.254.169.254/latest/"))  # type: ignore[arg-type]
    assert refusal(e) == ("input[0].content[1].image_url", "url_not_allowed")
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="mock/echo", stream=True, input=[{"role": "user", "content": [
            {"type": "input_file", "file_url": "file:///etc/passwd"}]}])
    assert refusal(e) == ("input[0].content[0].file_url", "invalid_url")
    for fine in (PNG, "https://example.com/a.png"):
        assert client.responses.create(model="mock/echo", input=image_message(fine)).status == "completed"  # type: ignore[arg-type]


def test_chat_completions_and_conversation_items_are_checked_too(proxy: ServerThread, client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://[::1]:8080/a.png"}}]}])
    assert e.value.body["code"] == "url_not_allowed"  # type: ignore[index]
    items = image_message("http://localhost/a.png")
    with pytest.raises(openai.BadRequestError) as e:
        client.conversations.create(items=items)  # type: ignore[arg-type]
    assert refusal(e) == ("items[0].content[1].image_url", "url_not_allowed")
    conversation = client.conversations.create()
    with pytest.raises(openai.BadRequestError) as e:
        client.conversations.items.create(conversation.id, items=items)  # type: ignore[arg-type]
    assert refusal(e) == ("items[0].content[1].image_url", "url_not_allowed")
    assert client.conversations.items.create(conversation.id, items=image_message(PNG)).data  # type: ignore[arg-type]


def test_a_native_upstream_is_never_handed_an_internal_url(start_proxy: ProxyFactory) -> None:
    upstream = FakeOpenAI(api_key="sk-up")
    with ServerThread(upstream.app) as up:
        proxy = start_proxy(f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{up.url}/v1", api_key: sk-up}}
""")
        with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
            with pytest.raises(openai.BadRequestError) as e:
                c.responses.create(model="gpt", input=image_message("http://10.0.0.5/a.png"))  # type: ignore[arg-type]
            assert refusal(e) == ("input[0].content[1].image_url", "url_not_allowed")
            with pytest.raises(openai.BadRequestError) as e:
                c.responses.create(model="gpt", input="hi", tools=[{  # an upstream inside the network would call it
                    "type": "mcp", "server_label": "x", "server_url": "http://metadata.google.internal/mcp"}])
            assert refusal(e) == ("tools[0].server_url", "url_not_allowed")
            with pytest.raises(openai.BadRequestError) as e:
                c.responses.input_tokens.count(model="gpt", input=image_message("http://127.0.0.1/a.png"))  # type: ignore[arg-type]
            assert refusal(e)[1] == "url_not_allowed"
            assert c.responses.create(model="gpt", input=image_message(PNG)).status == "completed"  # type: ignore[arg-type]
    assert len(upstream.requests) == 1  # only the allowed request reached it


@pytest.fixture
def mcp() -> Iterator[tuple[FakeMcp, str]]:
    fake = FakeMcp()
    with ServerThread(fake.app) as server:
        yield fake, server.url


def mcp_tool(url: str) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "calc", "server_url": url, "require_approval": "never"}


def test_a_client_named_mcp_server_inside_the_network_is_refused(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    fake, url = mcp
    port = url.rsplit(":", 1)[1]
    for bad in (url + "/mcp", f"http://localhost:{port}/mcp", f"http://[::ffff:127.0.0.1]:{port}/mcp",
                "http://169.254.169.254/mcp"):
        with pytest.raises(openai.BadRequestError) as e:
            client.responses.create(model="mock/tool", input="calc__calculate 1+1", tools=[mcp_tool(bad)])  # type: ignore[list-item]
        assert refusal(e) == ("tools[0].server_url", "url_not_allowed")
    assert fake.calls == []


def test_allowed_hosts_admit_a_client_named_server(start_proxy: ProxyFactory, mcp: tuple[FakeMcp, str]) -> None:
    _, url = mcp
    proxy = start_proxy(MOCK_MODELS + "litellm_settings:\n  user_url_allowed_hosts: [127.0.0.1]\n")
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        r = c.responses.create(model="mock/tool", input="calc__calculate 1+1", tools=[mcp_tool(url + "/mcp")])  # type: ignore[list-item]
        assert r.output_text == "Tool result: 2"
        with pytest.raises(openai.BadRequestError):  # only that host
            c.responses.create(model="mock/echo", input=image_message("http://10.0.0.1/a.png"))  # type: ignore[arg-type]


def test_admin_configured_mcp_servers_are_trusted(start_proxy: ProxyFactory, mcp: tuple[FakeMcp, str]) -> None:
    fake, url = mcp
    proxy = start_proxy(MOCK_MODELS + f"mcp_servers:\n  calc:\n    url: {url}/mcp\n")
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        r = c.responses.create(model="mock/tool", input="calc__calculate 2*3", tools=[
            {"type": "mcp", "server_url": "litellm_proxy", "server_label": "calc", "require_approval": "never"}])
    assert r.output_text == "Tool result: 6" and fake.calls


def test_validation_off_lets_internal_urls_through(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(MOCK_MODELS + "litellm_settings:\n  user_url_validation: false\n")
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        assert c.responses.create(model="mock/echo", input=image_message("http://10.0.0.1/a.png")).status == (  # type: ignore[arg-type]
            "completed")
        with pytest.raises(openai.BadRequestError) as e:
            c.responses.create(model="mock/echo", input=image_message("file:///etc/passwd"))  # type: ignore[arg-type]
    assert refusal(e)[1] == "invalid_url"


def test_raw_bodies_get_openai_shaped_400s(proxy: ServerThread) -> None:
    body = {"model": "mock/echo", "input": image_message("gopher://127.0.0.1:6379/_FLUSHALL")}
    r = httpx.post(proxy.url + "/v1/responses", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_url"
    assert r.json()["error"]["type"] == "invalid_request_error" and "x-request-id" in r.headers


def test_the_sdk_trusts_its_caller() -> None:
    r = respgate.responses(model="mock/echo", input=image_message("http://10.0.0.1/a.png"))
    assert r.status == "completed"


@pytest.mark.parametrize("path", ["/mcp", "/sse"])
def test_a_public_name_that_resolves_inside_is_refused_at_connect(
        start_proxy: ProxyFactory, mcp: tuple[FakeMcp, str], monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """DNS rebinding: the name passes the static checks; the address it resolves to does not, and the
    connection goes only to an address that was checked (here: none, then 127.0.0.1 once allowed)."""
    fake, url = mcp
    port = int(url.rsplit(":", 1)[1])

    async def resolve(host: str, p: int) -> list[Any]:
        assert host == "mcp.example.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))]

    monkeypatch.setattr(urls, "_getaddrinfo", resolve)
    tool = mcp_tool(f"http://mcp.example.test:{port}{path}")
    proxy = start_proxy(MOCK_MODELS)
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        r = c.responses.create(model="mock/tool", input="calc__calculate 1+1", tools=[tool])  # type: ignore[list-item]
    listing = next(o for o in r.output if o.type == "mcp_list_tools")
    assert listing.error and fake.calls == []
    allowed = start_proxy(MOCK_MODELS + "litellm_settings:\n  user_url_allowed_hosts: [mcp.example.test]\n")
    with OpenAI(base_url=allowed.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        r = c.responses.create(model="mock/tool", input="calc__calculate 1+1", tools=[tool])  # type: ignore[list-item]
    assert r.output_text == "Tool result: 2"
