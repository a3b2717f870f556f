"""MCP servers registered in the config (`mcp_servers:`): LiteLLM's `server_url: "litellm_proxy"`, labels,
credentials, access by key and team, OpenAI-native passthrough, the proxy's `/mcp`, and the SDK."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from openai import OpenAI

import respgate
from conftest import MASTER_KEY, MOCK_MODELS, ProxyFactory
from fakes.mcp_server import FakeMcp
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from respgate.calls import Principal
from respgate.config import load_config
from respgate.deployments import Deployment
from respgate.errors import ConfigError, InvalidRequestError, PermissionDeniedError
from respgate.providers.base import ProviderRequest
from respgate.providers.mock import MockProvider
from respgate.tools import Tools
from respgate.tools.mcp.config import parse_limits, parse_servers
from respgate.tools.mcp.loop import McpProvider

TOKEN = "mcp-secret-token-42"


@pytest.fixture
def servers() -> Iterator[tuple[FakeMcp, str, FakeMcp, str]]:
    """A calculator that wants a bearer token, and a clock server reached over SSE."""
    calc, clock = FakeMcp("calc", bearer=TOKEN), FakeMcp("clock")
    with ServerThread(calc.app) as a, ServerThread(clock.app) as b:
        yield calc, a.url, clock, b.url


def mcp_config(calc_url: str, clock_url: str) -> str:
    return textwrap.dedent(f"""
        mcp_servers:
          calc:
            url: {calc_url}/mcp
            auth_type: bearer_token
            auth_value: {TOKEN}
            allowed_tools: [calculate, shout]
            description: A calculator
          clock:
            url: {clock_url}/sse
            transport: sse
          vault:
            url: {clock_url}/mcp
            allowed_keys: [ops-key]
            allowed_teams: [team-ops]
        """)


@pytest.fixture
def proxy(start_proxy: ProxyFactory, servers: tuple[FakeMcp, str, FakeMcp, str]) -> ServerThread:
    return start_proxy(MOCK_MODELS + mcp_config(servers[1], servers[3]))


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


PROXY_TOOL = {"type": "mcp", "server_url": "litellm_proxy", "require_approval": "never"}


def test_litellm_proxy_offers_every_configured_server(client: OpenAI, servers: tuple[FakeMcp, str, FakeMcp, str]
                                                      ) -> None:
    calc = servers[0]
    r = client.responses.create(model="mock/tool", input="calc__calculate 7*6", tools=[PROXY_TOOL])  # type: ignore[list-item]
    listings = {item.server_label: item for item in r.output if item.type == "mcp_list_tools"}
    assert set(listings) == {"calc", "clock", "vault"}  # the master key may use every server
    assert [t.name for t in listings["calc"].tools] == ["calculate", "shout"]  # the config's allowed_tools
    assert listings["clock"].error is None
    assert {t.name for t in listings["clock"].tools} == {"calculate", "now", "shout"}
    call = next(item for item in r.output if item.type == "mcp_call")
    assert (call.server_label, call.output) == ("calc", "42")  # with the configured bearer token
    assert calc.calls == [("calculate", {"q": "calc__calculate 7*6"})]
    assert r.output_text == "Tool result: 42"
    assert r.tools[0].server_url == "litellm_proxy"  # the echo is the client's tool, not the credentials


@pytest.mark.parametrize("reference", [
    {"server_url": "litellm_proxy", "server_label": "clock"},
    {"server_url": "litellm_proxy/mcp/clock", "server_label": "ignored"},
    {"server_label": "clock"},
])
def test_one_configured_server_by_label(client: OpenAI, reference: dict[str, str]) -> None:
    r = client.responses.create(model="mock/tool", input="clock__now Europe/Paris",
                                tools=[{"type": "mcp", "require_approval": "never", **reference}])  # type: ignore[list-item,typeddict-item]
    assert [item.type for item in r.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert r.output[1].server_label == "clock" and r.output[1].output == "2025-01-02T04:04:05+01:00"


def test_an_unknown_configured_server_is_a_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="mock/tool", input="x",
                                tools=[{"type": "mcp", "server_url": "litellm_proxy", "server_label": "nope"}])
    assert e.value.body["param"] == "tools[0].server_label"  # type: ignore[index]


def test_client_urls_can_be_switched_off(start_proxy: ProxyFactory, servers: tuple[FakeMcp, str, FakeMcp, str]
                                         ) -> None:
    proxy = start_proxy(MOCK_MODELS + mcp_config(servers[1], servers[3]),
                        general="  mcp_allow_request_servers: false\n")
    r = httpx.post(proxy.url + "/v1/responses", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                   json={"model": "mock/tool", "input": "x",
                         "tools": [{"type": "mcp", "server_label": "x", "server_url": servers[3] + "/mcp"}]})
    assert r.status_code == 403 and r.json()["error"]["param"] == "tools[0].server_url"
    ok = httpx.post(proxy.url + "/v1/responses", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                    json={"model": "mock/tool", "input": "x", "tools": [{"type": "mcp", "server_label": "clock"}]})
    assert ok.status_code == 200


# -- access by key and team (the gateway's seam, without the keys package) ------------------------------

def _request(tools: list[dict[str, Any]]) -> ProviderRequest:
    return ProviderRequest(deployment=Deployment(model_name="m", provider="mock", upstream_model="tool"),
                           body={"model": "m", "input": "x", "tools": tools}, response_id="r", shell={})


def _tools() -> Tools:
    return Tools(parse_servers({
        "open": {"url": "http://127.0.0.1:1/mcp"},
        "ops": {"url": "http://127.0.0.1:2/mcp", "allowed_keys": ["ops-key"], "allowed_teams": ["team-ops"]},
        "math": {"url": "http://127.0.0.1:3/mcp", "access_groups": ["math"]},
    }))


def _labels(provider: Any) -> list[str]:
    assert isinstance(provider, McpProvider)
    return [s.label for s in provider.servers]


@pytest.mark.parametrize(("principal", "labels"), [
    (Principal(is_admin=True), ["open", "ops", "math"]),
    (Principal(owner="k", key_alias="ops-key"), ["open", "ops"]),
    (Principal(owner="k", team_id="team-ops"), ["open", "ops"]),
    (Principal(owner="k", limits={"metadata": {"mcp_access_groups": ["math"]}}), ["open", "math"]),
    (Principal(owner="k", key_alias="someone"), ["open"]),
])
def test_litellm_proxy_gives_each_key_its_servers(principal: Principal, labels: list[str]) -> None:
    wrapped = _tools().wrap(MockProvider(), _request([{"type": "mcp", "server_url": "litellm_proxy"}]), principal)
    assert _labels(wrapped) == labels


def test_a_server_the_key_may_not_use_is_a_403() -> None:
    req = _request([{"type": "mcp", "server_label": "ops"}])
    with pytest.raises(PermissionDeniedError) as e:
        _tools().wrap(MockProvider(), req, Principal(owner="k", key_alias="someone"))
    assert e.value.param == "tools[0].server_label" and e.value.status == 403
    assert _labels(_tools().wrap(MockProvider(), req, Principal(owner="k", key_alias="ops-key"))) == ["ops"]


def test_requests_without_mcp_keep_their_provider() -> None:
    provider = MockProvider()
    assert _tools().wrap(provider, _request([]), Principal()) is provider
    with pytest.raises(InvalidRequestError):
        _tools().wrap(provider, _request([{"type": "mcp", "server_label": "x"}]), Principal())


@pytest.mark.parametrize(("raw", "key"), [
    ({"s": {"transport": "http"}}, "mcp_servers.s.url"),
    ({"s": {"url": "http://x", "transport": "stdio"}}, "mcp_servers.s.transport"),
    ({"s": {"url": "http://x", "auth_type": "bearer_token"}}, "mcp_servers.s.auth_value"),
    ({"s": {"url": "http://x", "auth_type": "magic", "auth_value": "v"}}, "mcp_servers.s.auth_type"),
    ({"s": {"url": "http://x", "colour": "red"}}, "mcp_servers.s.colour"),
    ({"a__b": {"url": "http://x"}}, "mcp_servers.a__b"),
    ({"s": {"url": "http://x", "allowed_tools": "calc"}}, "mcp_servers.s.allowed_tools"),
])
def test_config_errors_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_servers(raw)
    assert e.value.key == key


def test_auth_types_become_headers_that_repr_never_shows() -> None:
    parsed = parse_servers({
        "a": {"url": "http://x", "auth_type": "api_key", "auth_value": "k1"},
        "b": {"url": "http://x", "auth_type": "basic", "auth_value": "user:pass", "static_headers": {"X-T": "t"}},
        "c": {"url": "http://x", "auth_type": "authorization", "auth_value": "Custom abc"},
    })
    assert dict(parsed["a"].headers) == {"X-API-Key": "k1"}
    assert dict(parsed["b"].headers) == {"X-T": "t", "Authorization": "Basic dXNlcjpwYXNz"}
    assert dict(parsed["c"].headers) == {"Authorization": "Custom abc"}
    assert "k1" not in repr(parsed["a"]) and "dXNlcjpwYXNz" not in repr(parsed["b"])
    with pytest.raises(ConfigError):
        parse_limits({"mcp_tool_timeout": -1})


# -- OpenAI-native models run MCP themselves --------------------------------------------------------------

def test_native_models_get_the_configured_server_written_out(
        start_proxy: ProxyFactory, servers: tuple[FakeMcp, str, FakeMcp, str]) -> None:
    upstream = FakeOpenAI(api_key="sk-up")
    with ServerThread(upstream.app) as up:
        models = f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{up.url}/v1", api_key: sk-up}}
"""
        proxy = start_proxy(models + mcp_config(servers[1], servers[3]))
        tools = [{"type": "mcp", "server_label": "calc", "server_url": "litellm_proxy", "require_approval": "never"},
                 {"type": "mcp", "server_label": "web", "server_url": "https://mcp.example.com/mcp"}]
        with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
            r = c.responses.create(model="gpt", input="hi", tools=tools)  # type: ignore[arg-type]
            streamed = list(c.responses.create(model="gpt", input="hi", tools=tools, stream=True))  # type: ignore[arg-type]
    sent = upstream.requests[0].body["tools"]
    assert sent[0] == {"type": "mcp", "server_label": "calc", "server_url": servers[1] + "/mcp",
                       "require_approval": "never", "headers": {"Authorization": f"Bearer {TOKEN}"},
                       "server_description": "A calculator", "allowed_tools": ["calculate", "shout"]}
    assert sent[1] == tools[1]  # a server of the client's own goes as it is
    for echoed in (r.tools, streamed[-1].response.tools):  # type: ignore[union-attr]
        assert echoed[0].server_url == "litellm_proxy" and echoed[0].headers is None
    assert TOKEN not in r.model_dump_json()


# -- /mcp: the configured servers as one MCP server --------------------------------------------------------

async def _hub(url: str, key: str | None) -> tuple[list[str], Any, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers) as http, Client(streamable_http_client(url, http_client=http),
                                                                   cache=None) as mcp:
        tools = await mcp.list_tools()
        result = await mcp.call_tool("calc__calculate", {"q": "(1+2)*5"})
        unknown = await mcp.call_tool("calc__now", {"timezone": "UTC"})  # not in calc's allowed_tools
        return [t.name for t in tools.tools], result, unknown


def test_the_proxy_serves_the_configured_servers_as_one(proxy: ServerThread) -> None:
    names, result, unknown = asyncio.run(_hub(proxy.url + "/mcp", MASTER_KEY))
    assert names[:2] == ["calc__calculate", "calc__shout"] and "clock__now" in names and "vault__now" in names
    assert not result.is_error and result.content[0].text == "15"
    assert unknown.is_error and "Unknown tool" in unknown.content[0].text
    r = httpx.post(proxy.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401


def test_no_configured_servers_no_mcp_route(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy()
    r = httpx.post(proxy.url + "/mcp", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                   json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 404


# -- the SDK: LiteLLM's aresponses with MCP tools ---------------------------------------------------------

def test_sdk_runs_mcp_tools(tmp_path: Path, servers: tuple[FakeMcp, str, FakeMcp, str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MOCK_MODELS + mcp_config(servers[1], servers[3]))
    sdk = respgate.Client(config=load_config(str(path)))
    try:
        r = asyncio.run(sdk.aresponses(model="mock/tool", input="calc__calculate 2**3 or 2*3",
                                       tools=[{"type": "mcp", "server_url": "litellm_proxy", "server_label": "calc",
                                               "require_approval": "never"}]))
        direct = sdk.responses(model="mock/tool", input="mine__shout hey",
                               tools=[{"type": "mcp", "server_label": "mine", "server_url": servers[3] + "/mcp",
                                       "require_approval": "never"}])
    finally:
        sdk.close()
    assert r.output[1].type == "mcp_call" and r.output_text == "Tool result: 6"
    assert direct.output_text == "Tool result: MINE__SHOUT HEY"
