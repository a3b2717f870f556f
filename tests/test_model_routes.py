"""/model/info, /model_group/info and the per-deployment /health through the proxy, in LiteLLM's shapes,
never showing a credential; /health really calls each deployment and shows the router's cooldowns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from conftest import MASTER_KEY, ProxyFactory
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from respgate.calls import Principal
from respgate.config import config_from_dicts
from respgate.gateway import Gateway
from respgate.proxy.model_routes import is_secret, public_url, visible
from respgate.store.memory import MemoryStore

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
KEY = "sk-upstream-model-routes-98765"
SECRETS = (KEY, "sk-mock-secret-4242", "aws-secret-0000", "vertex-cred-1111", "hdr-secret-2222", "pw-3333",
           "qkey-4444")


@pytest.fixture
def fakes() -> Iterator[list[FakeOpenAI]]:
    with ExitStack() as stack:
        found = []
        for _ in range(3):
            f = FakeOpenAI(api_key=KEY)
            f.url = stack.enter_context(ServerThread(f.app)).url  # type: ignore[attr-defined]
            found.append(f)
        yield found


def config(fakes: list[FakeOpenAI], router: str = "  allowed_fails: 10\n") -> str:
    entries = "".join(f"""
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{f.url}/v1", api_key: "{KEY}", rpm: 100}}
    model_info: {{id: dep{n}, max_input_tokens: {1000 * (n + 1)}, health_check_timeout: 0.3}}"""
                      for n, f in enumerate(fakes))  # type: ignore[attr-defined]
    return f"""
model_list:{entries}
  - model_name: local
    litellm_params:
      model: mock/echo
      api_key: sk-mock-secret-4242
      api_base: "http://user:pw-3333@127.0.0.1:9/v1?key=qkey-4444"
      aws_secret_access_key: aws-secret-0000
      vertex_credentials: vertex-cred-1111
      extra_headers: {{X-Secret: hdr-secret-2222}}
      input_cost_per_token: 0.000002
      output_cost_per_token: 0.000008
      tags: [team-a]
    model_info: {{id: local1, max_tokens: 4096, supports_vision: true, note: kept}}
  - model_name: "mock/*"
    litellm_params: {{model: "mock/*"}}
router_settings:
{router}"""


def get(proxy: ServerThread, path: str, **params: str) -> httpx.Response:
    return httpx.get(proxy.url + path, headers=AUTH, params=params, timeout=30)


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_model_info_lists_every_deployment_without_credentials(start_proxy: ProxyFactory,
                                                                fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes))
    got = get(proxy, "/model/info")
    assert got.status_code == 200 and get(proxy, "/v1/model/info").json() == got.json()
    assert_no_secrets(got.text)
    data = got.json()["data"]
    assert [d["model_info"]["id"] for d in data][:4] == ["dep0", "dep1", "dep2", "local1"]
    first = data[0]
    assert first["model_name"] == "gpt" and first["litellm_params"]["model"] == "openai/gpt-4o"
    assert first["litellm_params"]["api_base"] == fakes[0].url + "/v1"  # type: ignore[attr-defined]
    assert "api_key" not in first["litellm_params"] and first["litellm_params"]["rpm"] == 100
    info = first["model_info"]
    assert info["max_input_tokens"] == 1000 and info["db_model"] is False and info["litellm_provider"] == "openai"
    assert info["input_cost_per_token"] > 0 and info["output_cost_per_token"] > 0  # from the price table
    local = data[3]
    assert local["litellm_params"] == {"model": "mock/echo", "api_base": "http://127.0.0.1:9/v1",
                                       "input_cost_per_token": 0.000002, "output_cost_per_token": 0.000008,
                                       "tags": ["team-a"]}
    li = local["model_info"]
    assert li["input_cost_per_token"] == 0.000002 and li["max_tokens"] == 4096 and li["note"] == "kept"
    assert li["supports_vision"] is True and li["max_input_tokens"] is None
    one = get(proxy, "/model/info", litellm_model_id="dep1").json()["data"]
    assert [d["model_info"]["id"] for d in one] == ["dep1"]


def test_model_group_info_sums_up_each_group(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes))
    got = get(proxy, "/model_group/info")
    assert_no_secrets(got.text)
    groups = {g["model_group"]: g for g in got.json()["data"]}
    assert set(groups) == {"gpt", "local"}  # wildcards are not groups a client can name
    gpt = groups["gpt"]
    assert gpt["providers"] == ["openai"] and gpt["max_input_tokens"] == 3000 and gpt["rpm"] == 300
    assert gpt["tpm"] is None and gpt["mode"] == "chat" and gpt["supports_vision"] is False
    assert groups["local"]["supports_vision"] is True and groups["local"]["input_cost_per_token"] == 0.000002
    only = get(proxy, "/v1/model_group/info", model_group="local").json()["data"]
    assert [g["model_group"] for g in only] == ["local"]


def test_health_calls_each_deployment_and_reports_failures(start_proxy: ProxyFactory,
                                                           fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes))
    fakes[1].fail_next(500)
    fakes[2].delay_next(2.0)  # its health_check_timeout is 0.3 s
    got = get(proxy, "/health")
    assert got.status_code == 200
    assert_no_secrets(got.text)
    body = got.json()
    assert body["healthy_count"] == 2 and body["unhealthy_count"] == 2
    healthy = {e["model_id"] for e in body["healthy_endpoints"]}
    assert healthy == {"dep0", "local1"}
    bad = {e["model_id"]: e for e in body["unhealthy_endpoints"]}
    assert bad["dep1"]["error"].startswith("500") and "Timeout" in bad["dep2"]["error"]
    assert bad["dep1"]["model"] == "openai/gpt-4o" and bad["dep1"]["api_base"].endswith("/v1")
    assert all(len([r for r in f.requests if r.path.endswith("/responses")]) == 1 for f in fakes)
    probe = next(r for r in fakes[0].requests if r.path.endswith("/responses")).body
    assert probe["store"] is False and probe["max_output_tokens"] == 16
    only = get(proxy, "/health", model_id="local1").json()
    assert only["healthy_count"] == 1 and only["healthy_endpoints"][0]["model"] == "mock/echo"
    assert get(proxy, "/health", model="gpt").json()["healthy_count"] == 3


def test_health_shows_which_deployments_the_router_cooled_down(start_proxy: ProxyFactory,
                                                               fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes[:2], "  allowed_fails: 0\n  cooldown_time: 600\n  num_retries: 1\n"))
    fakes[0].fail_next(500)
    while not fakes[0].requests:  # until the router tried dep0 (and cooled it down after its 500)
        answer = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt", "input": "hi"})
        assert answer.status_code == 200
    body = get(proxy, "/health", model="gpt").json()
    endpoints = {e["model_id"]: e for e in body["healthy_endpoints"]}
    assert endpoints["dep0"]["cooling_down"] is True and 0 < endpoints["dep0"]["cooldown_seconds_left"] <= 600
    assert endpoints["dep1"]["cooling_down"] is False and "cooldown_seconds_left" not in endpoints["dep1"]


def test_a_failed_response_is_unhealthy(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy("""
model_list:
  - model_name: ok
    litellm_params: {model: mock/echo}
  - model_name: broken
    litellm_params: {model: mock/fail}
""")
    body = get(proxy, "/health").json()
    assert body["healthy_count"] == 1 and body["unhealthy_endpoints"][0]["model_name"] == "broken"
    assert "failed" in body["unhealthy_endpoints"][0]["error"]


def test_model_routes_need_a_key(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy()
    for path in ("/model/info", "/model_group/info", "/health"):
        assert httpx.get(proxy.url + path).status_code == 401


def test_a_key_limited_to_some_groups_sees_only_those() -> None:
    config = config_from_dicts([{"model_name": "a", "litellm_params": {"model": "mock/echo"}},
                                {"model_name": "b", "litellm_params": {"model": "mock/echo"}}])
    gateway = Gateway(config, MemoryStore())
    assert [d.model_name for d in visible(gateway, Principal("o", models=frozenset({"b"})))] == ["b"]
    assert [d.model_name for d in visible(gateway, Principal("o"))] == ["a", "b"]
    assert [d.model_name for d in visible(gateway, Principal("o", models=frozenset({"a*"})))] == ["a"]


@pytest.mark.parametrize(("name", "secret"), [
    ("api_key", True), ("aws_secret_access_key", True), ("aws_access_key_id", True), ("aws_session_token", True),
    ("vertex_credentials", True), ("azure_ad_token", True), ("extra_headers", True), ("client_secret", True),
    ("max_tokens", False), ("input_cost_per_token", False), ("tags", False), ("weight", False),
    ("aws_region_name", False)])
def test_credential_like_names_are_hidden(name: str, secret: bool) -> None:
    assert is_secret(name) is secret


def test_public_url_drops_what_could_hold_a_key() -> None:
    assert public_url("https://u:p@host.example:8443/v1?key=x#f") == "https://host.example:8443/v1"
    assert public_url("http://[::1]:9/v1") == "http://[::1]:9/v1"

