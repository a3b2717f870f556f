"""Every way into the gateway is routed: chat completions (JSON and stream), background responses, tags and
context-window pre-call checks through the proxy, against fake OpenAI deployments that fail on command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, ProxyFactory
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from respgate.ids import decode_response_id

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
KEY = "sk-upstream-router-paths-1"


@pytest.fixture
def fakes() -> Iterator[list[FakeOpenAI]]:
    with ExitStack() as stack:
        found = []
        for _ in range(3):
            f = FakeOpenAI(api_key=KEY)
            f.url = stack.enter_context(ServerThread(f.app)).url  # type: ignore[attr-defined]
            found.append(f)
        yield found


def group(fakes: list[FakeOpenAI], params: list[str] | None = None, info: list[str] | None = None) -> str:
    return "".join(f"""
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{f.url}/v1", api_key: "{KEY}"{(params or [''] * 3)[n]}}}
    model_info: {{id: dep{n}{(info or [''] * 3)[n]}}}""" for n, f in enumerate(fakes))  # type: ignore[attr-defined]


def creates(f: FakeOpenAI) -> list[Any]:
    return [r for r in f.requests if r.method == "POST" and r.path.endswith("/responses")]


def post(proxy: ServerThread, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(proxy.url + path, headers=AUTH, json=body, timeout=30)


# -- chat completions ----------------------------------------------------------------------------------

def test_chat_completions_are_retried_across_the_group(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(f"model_list:{group(fakes)}\nrouter_settings:\n  num_retries: 3\n  allowed_fails: 10\n")
    for f in fakes:
        f.fail_next(500)
    got = post(proxy, "/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
    assert got.status_code == 200 and got.json()["object"] == "chat.completion"
    assert sum(len(creates(f)) for f in fakes) == 4 and all(creates(f) for f in fakes)


def test_a_chat_stream_fails_over_before_its_first_chunk(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(f"model_list:{group(fakes)}\nrouter_settings:\n  num_retries: 3\n  allowed_fails: 10\n")
    for f in fakes:
        f.fail_next(503)
    got = post(proxy, "/v1/chat/completions", {"model": "gpt", "stream": True,
                                                "messages": [{"role": "user", "content": "hi"}]})
    assert got.status_code == 200 and got.text.rstrip().endswith("data: [DONE]")
    assert sum(len(creates(f)) for f in fakes) == 4


def test_chat_completions_spread_over_the_group(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(f"model_list:{group(fakes)}\n")
    for _ in range(30):
        assert post(proxy, "/v1/chat/completions", {"model": "gpt", "messages": [
            {"role": "user", "content": "hi"}]}).status_code == 200
    assert all(creates(f) for f in fakes)


# -- background ----------------------------------------------------------------------------------------

MOCK_TAGGED = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo, tags: [free]}
    model_info: {id: m-free}
  - model_name: m
    litellm_params: {model: mock/echo, tags: [paid]}
    model_info: {id: m-paid}
  - model_name: m
    litellm_params: {model: mock/echo, tags: [default]}
    model_info: {id: m-default}
router_settings:
  enable_tag_filtering: true
"""


def made_by(response: dict[str, Any]) -> str:
    ref = decode_response_id(response["id"])
    assert ref is not None
    return ref.deployment_id


def test_background_responses_are_routed(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(MOCK_TAGGED)
    for _ in range(5):
        got = post(proxy, "/v1/responses", {"model": "m", "input": "hi", "background": True, "tags": ["paid"]})
        assert got.status_code == 200 and got.json()["status"] == "queued"
        assert made_by(got.json()) == "m-paid"


# -- tags ----------------------------------------------------------------------------------------------

def test_tags_route_responses_and_never_reach_the_upstream(start_proxy: ProxyFactory,
                                                           fakes: list[FakeOpenAI]) -> None:
    tags = [", tags: [free]", ", tags: [paid]", ", tags: [paid, eu]"]
    proxy = start_proxy(f"model_list:{group(fakes, tags)}\nrouter_settings:\n  enable_tag_filtering: true\n")
    for _ in range(10):
        got = post(proxy, "/v1/responses", {"model": "gpt", "input": "hi", "tags": ["free"]})
        assert got.status_code == 200, got.text
    for _ in range(10):
        got = post(proxy, "/v1/responses", {"model": "gpt", "input": "hi", "metadata": {"tags": ["eu"], "k": "v"}})
        assert got.status_code == 200 and got.json()["metadata"] == {"k": "v"}
    assert len(creates(fakes[0])) == 10 and not creates(fakes[1]) and len(creates(fakes[2])) == 10
    sent = [r.body for f in fakes for r in creates(f)]
    assert all("tags" not in body and "tags" not in (body.get("metadata") or {}) for body in sent)
    got = post(proxy, "/v1/responses", {"model": "gpt", "input": "hi", "tags": ["gold"]})
    assert got.status_code == 400 and got.json()["error"]["param"] == "tags"
    got = post(proxy, "/v1/responses", {"model": "gpt", "input": "hi", "tags": "free", "stream": True})
    assert got.status_code == 200 and "response.completed" in got.text and len(creates(fakes[0])) == 11


def test_tags_on_a_plain_config_are_accepted_and_ignored(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy("model_list:\n  - model_name: m\n    litellm_params: {model: mock/echo}\n")
    got = post(proxy, "/v1/responses", {"model": "m", "input": "hi", "tags": ["a"], "metadata": {"tags": ["b"]}})
    assert got.status_code == 200 and got.json()["metadata"] == {}
    got = post(proxy, "/v1/responses", {"model": "m", "input": "hi", "tags": 5})
    assert got.status_code == 400 and got.json()["error"]["param"] == "tags"


# -- context-window pre-call checks --------------------------------------------------------------------

def test_long_inputs_go_to_the_deployment_whose_window_fits(start_proxy: ProxyFactory,
                                                            fakes: list[FakeOpenAI]) -> None:
    windows = [", max_input_tokens: 50", ", max_input_tokens: 50", ", max_input_tokens: 100000"]
    proxy = start_proxy(f"model_list:{group(fakes, info=windows)}\n"
                        "router_settings:\n  enable_pre_call_checks: true\n")
    for _ in range(6):
        assert post(proxy, "/v1/responses", {"model": "gpt", "input": "long " * 100}).status_code == 200
    assert len(creates(fakes[2])) == 6 and not creates(fakes[0]) and not creates(fakes[1])
    for _ in range(30):
        assert post(proxy, "/v1/responses", {"model": "gpt", "input": "short"}).status_code == 200
    assert creates(fakes[0]) and creates(fakes[1])


def test_the_sdk_router_routes_by_tags() -> None:
    import respgate

    router = respgate.Router(model_list=[
        {"model_name": "m", "litellm_params": {"model": "mock/echo", "tags": ["free"]}, "model_info": {"id": "f"}},
        {"model_name": "m", "litellm_params": {"model": "mock/echo", "tags": ["paid"]}, "model_info": {"id": "p"}}],
        enable_tag_filtering=True)
    try:
        assert {made_by(router.responses(model="m", input="hi", tags=["paid"]).model_dump()) for _ in range(5)} == {"p"}
        answer = router.responses(model="m", input="hi", metadata={"tags": ["free"]})
        assert made_by(answer.model_dump()) == "f" and answer.metadata == {}
    finally:
        router.close()
