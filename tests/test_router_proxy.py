"""The router through the proxy: three fake OpenAI deployments in one group, failing on command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, ProxyFactory
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from grammar import check_stream
from sse import parse_sse, post_stream

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
KEY = "sk-upstream-router-123456"


@pytest.fixture
def fakes() -> Iterator[list[FakeOpenAI]]:
    with ExitStack() as stack:
        found = []
        for _ in range(3):
            f = FakeOpenAI(api_key=KEY)
            f.url = stack.enter_context(ServerThread(f.app)).url  # type: ignore[attr-defined]
            found.append(f)
        yield found


def config(fakes: list[FakeOpenAI], router: str = "", extra: str = "") -> str:
    entries = "".join(f"""
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{f.url}/v1", api_key: "{KEY}"{extra}}}
    model_info: {{id: dep{n}}}""" for n, f in enumerate(fakes))  # type: ignore[attr-defined]
    return f"""
model_list:{entries}
  - model_name: backup
    litellm_params: {{model: mock/echo}}
router_settings:
  allowed_fails: 10
{router}"""


def creates(f: FakeOpenAI) -> list[Any]:
    return [r for r in f.requests if r.method == "POST" and r.path.endswith("/responses")]


def post(proxy: ServerThread, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body, timeout=30)


def test_requests_are_spread_over_the_group(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes))
    for _ in range(30):
        assert post(proxy, {"model": "gpt", "input": "hi"}).status_code == 200
    assert all(creates(f) for f in fakes)


def test_server_errors_are_retried_on_other_deployments(start_proxy: ProxyFactory,
                                                        fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes, "  num_retries: 3\n"))
    for f in fakes:
        f.fail_next(500)
    got = post(proxy, {"model": "gpt", "input": "hi"})
    assert got.status_code == 200 and got.json()["model"] == "gpt"
    assert sum(len(creates(f)) for f in fakes) == 4


def test_client_errors_are_not_retried(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes, "  num_retries: 3\n  fallbacks: [{gpt: [backup]}]\n"))
    bad = {"error": {"message": "Invalid value for 'temperature'.", "type": "invalid_request_error",
                     "param": "temperature", "code": "invalid_value"}}
    for f in fakes:
        f.fail_next(400, bad)
    got = post(proxy, {"model": "gpt", "input": "hi"})
    assert got.status_code == 400 and got.json()["error"]["param"] == "temperature"
    assert sum(len(creates(f)) for f in fakes) == 1


def test_fallback_group_answers_when_the_group_fails(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes, "  fallbacks: [{gpt: [backup]}]\n"))
    for f in fakes:
        f.fail_next(503)
    got = post(proxy, {"model": "gpt", "input": "hi"})
    assert got.status_code == 200 and got.json()["model"] == "backup"


def test_context_window_fallback(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes, "  context_window_fallbacks: [{gpt: [backup]}]\n"))
    too_long = {"error": {"message": "Your input exceeds the context window of this model.",
                          "type": "invalid_request_error", "param": "input", "code": "context_length_exceeded"}}
    for f in fakes:
        f.fail_next(400, too_long)
    got = post(proxy, {"model": "gpt", "input": "hi"})
    assert got.status_code == 200 and got.json()["model"] == "backup"


def test_per_request_fallbacks_are_taken_from_the_body(start_proxy: ProxyFactory,
                                                       fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes))
    for f in fakes:
        f.fail_next(500)
    got = post(proxy, {"model": "gpt", "input": "hi", "fallbacks": ["backup"]})
    assert got.status_code == 200 and got.json()["model"] == "backup"
    assert all("fallbacks" not in r.body for f in fakes for r in creates(f))


def test_a_stream_fails_over_before_its_first_event(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes, "  num_retries: 3\n"))
    for f in fakes:
        f.fail_next(502)
    final = check_stream(post_stream(proxy.url, MASTER_KEY, {"model": "gpt", "input": "stream this"}))
    assert final["status"] == "completed"
    assert sum(len(creates(f)) for f in fakes) == 4


def test_a_stream_never_fails_over_after_its_first_event(start_proxy: ProxyFactory,
                                                         fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes, "  num_retries: 3\n  fallbacks: [{gpt: [backup]}]\n"))
    for f in fakes:
        f.drop_stream_after(2)
    with httpx.stream("POST", proxy.url + "/v1/responses", headers=AUTH, timeout=30,
                      json={"model": "gpt", "input": "stream this", "stream": True}) as resp:
        events = parse_sse(resp.read().decode())
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.failed"
    assert sum(len(creates(f)) for f in fakes) == 1


def test_session_continuity_with_three_deployments(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes))
    first = post(proxy, {"model": "gpt", "input": "my name is Ada"}).json()
    owner = next(f for f in fakes if creates(f))
    prev = first["id"]
    for n in range(6):
        turn = post(proxy, {"model": "gpt", "input": f"turn {n}", "previous_response_id": prev}).json()
        sent = creates(owner)[-1].body
        assert sent["previous_response_id"] != prev and sent["previous_response_id"].startswith("resp_")
        prev = turn["id"]
    assert len(creates(owner)) == 7 and all(not creates(f) for f in fakes if f is not owner)


def test_a_follow_up_whose_deployment_is_down_replays_the_chain_elsewhere(
        start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes, "  num_retries: 1\n  allowed_fails: 0\n  cooldown_time: 600\n"))
    first = post(proxy, {"model": "gpt", "input": "my name is Ada"}).json()
    owner = next(f for f in fakes if creates(f))
    owner.fail_next(500)
    got = post(proxy, {"model": "gpt", "input": "what is my name?", "previous_response_id": first["id"]})
    assert got.status_code == 200
    other = next(f for f in fakes if f is not owner and creates(f))
    sent = creates(other)[-1].body
    assert "previous_response_id" not in sent
    texts = str(sent["input"])
    assert "my name is Ada" in texts and "what is my name?" in texts


def test_rpm_limit_answers_429_with_retry_after(start_proxy: ProxyFactory, fakes: list[FakeOpenAI]) -> None:
    proxy = start_proxy(config(fakes[:1], extra=", rpm: 2"))
    answers = [post(proxy, {"model": "gpt", "input": "x"}) for _ in range(5)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and all(a.status_code in (200, 429) for a in answers)
    assert len(creates(fakes[0])) <= 4  # 2 per minute; the five may straddle one minute boundary
    got = limited[0]
    assert int(got.headers["retry-after"]) >= 1
    assert got.json()["error"]["type"] == "rate_limit_exceeded" and "rpm" in got.json()["error"]["message"]
