"""The Anthropic adapter end to end: the official openai SDK -> the proxy -> a strict fake Messages API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI
from openai.types.responses import Response

import compliance as c
from conftest import MASTER_KEY, ProxyFactory
from fakes.anthropic_upstream import FakeAnthropic
from fakes.server import ServerThread
from grammar import check_stream
from respgate.providers import registry
from respgate.providers.anthropic import PROVIDER_FACTORIES
from sse import post_stream

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
KEY = "sk-ant-upstream-secret"
TOOLS: list[Any] = [
    {"type": "function", "name": "lookup", "description": "Look something up",
     "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}, "strict": False},
    {"type": "function", "name": "clock", "parameters": {"type": "object", "properties": {}}, "strict": False},
]


@pytest.fixture(autouse=True)
def _registered() -> None:
    assert {name: registry._FACTORIES[name] for name in PROVIDER_FACTORIES} == PROVIDER_FACTORIES


@pytest.fixture
def fake() -> Iterator[tuple[FakeAnthropic, str]]:
    upstream = FakeAnthropic(api_key=KEY)
    with ServerThread(upstream.app) as server:
        yield upstream, server.url


def config(url: str, extra: str = "") -> str:
    return f"""
model_list:
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{url}", api_key: "{KEY}"{extra}}}
  - model_name: mock/echo
    litellm_params: {{model: mock/echo}}
"""


@pytest.fixture
def proxy(start_proxy: ProxyFactory, fake: tuple[FakeAnthropic, str]) -> ServerThread:
    return start_proxy(config(fake[1]))


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as cl:
        yield cl


def sent(fake: tuple[FakeAnthropic, str]) -> dict[str, Any]:
    body: dict[str, Any] = fake[0].requests[-1].body
    return body


def test_json_create(client: OpenAI, proxy: ServerThread, fake: tuple[FakeAnthropic, str]) -> None:
    raw = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                     json={"model": "claude", "input": "hello", "instructions": "Be brief."}).json()
    Response.model_validate(raw)
    assert raw["status"] == "completed" and raw["output"][0]["content"][0]["text"] == "Echo: hello"
    body = sent(fake)
    assert body["system"] == "Be brief." and body["max_tokens"] == 4096 and body["model"] == "claude-sonnet-4-5"
    headers = fake[0].requests[-1].headers
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert raw["usage"]["input_tokens"] > 0 and raw["usage"]["total_tokens"] > raw["usage"]["input_tokens"]
    assert httpx.get(proxy.url + f"/v1/responses/{raw['id']}", headers=AUTH).json() == raw


def test_stream_agrees_with_json(proxy: ServerThread, fake: tuple[FakeAnthropic, str]) -> None:
    body = {"model": "claude", "input": "a longer sentence to split", "reasoning": {"effort": "low"}}
    final = check_stream(post_stream(proxy.url, MASTER_KEY, body))
    assert sent(fake)["stream"] is True
    assert sent(fake)["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    as_json = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body).json()
    strip = lambda r: [{k: v for k, v in o.items() if k not in ("id", "encrypted_content")}  # noqa: E731
                       for o in r["output"]]
    assert strip(final) == strip(as_json)
    assert [o["type"] for o in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["summary"][0]["text"] == "Thinking about: a longer sentence to split"
    assert final["output"][0]["encrypted_content"].startswith("anthropic-signature:EqQB")
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] > 0


@pytest.mark.parametrize("prompt", ["call all", "call lookup redact"])
def test_tool_and_thinking_round_trip_with_previous_response_id(
        client: OpenAI, proxy: ServerThread, fake: tuple[FakeAnthropic, str], prompt: str) -> None:
    first = check_stream(post_stream(proxy.url, MASTER_KEY, {"model": "claude", "input": prompt, "tools": TOOLS,
                                                             "reasoning": {"effort": "medium"}}))
    calls = [o for o in first["output"] if o["type"] == "function_call"]
    assert first["output"][0]["type"] == "reasoning"
    assert orjson.loads(calls[0]["arguments"]) == {"q": prompt}
    second = client.responses.create(
        model="claude", previous_response_id=first["id"], tools=TOOLS, reasoning={"effort": "medium"},
        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": f"r{i}"}
               for i, call in enumerate(calls)])
    assert second.output_text == "Tool results: " + "; ".join(f"r{i}" for i in range(len(calls)))
    messages = sent(fake)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][0]["type"] in ("thinking", "redacted_thinking")  # sent back exactly
    assert [b["tool_use_id"] for b in messages[2]["content"]] == [call["call_id"] for call in calls]


def test_altered_thinking_is_refused_by_the_fake(client: OpenAI, fake: tuple[FakeAnthropic, str]) -> None:
    first = client.responses.create(model="claude", input="call lookup", tools=TOOLS, reasoning={"effort": "low"})
    items: list[Any] = [o.model_dump(exclude_none=True) for o in first.output]
    items[0]["summary"][0]["text"] = "something else"
    call = next(o for o in items if o["type"] == "function_call")
    with pytest.raises(openai.BadRequestError, match="signature"):
        client.responses.create(model="claude", tools=TOOLS, reasoning={"effort": "low"},
                                input=[{"role": "user", "content": "call lookup"}, *items,
                                       {"type": "function_call_output", "call_id": call["call_id"], "output": "x"}])


def test_cross_provider_chain_mock_then_anthropic(client: OpenAI, fake: tuple[FakeAnthropic, str]) -> None:
    first = client.responses.create(model="mock/echo", input="first turn")
    second = client.responses.create(model="claude", previous_response_id=first.id, input="second turn")
    assert second.output_text == "Echo: second turn"
    assert [m["role"] for m in sent(fake)["messages"]] == ["user", "assistant", "user"]


def test_structured_output_and_parallel_off(client: OpenAI, fake: tuple[FakeAnthropic, str]) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    r = client.responses.create(model="claude", input="Paris",
                                text={"format": {"type": "json_schema", "name": "c", "schema": schema}})
    assert orjson.loads(r.output_text) == {"city": "Paris"}
    assert sent(fake)["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    r = client.responses.create(model="claude", input="call all", tools=TOOLS, parallel_tool_calls=False)
    assert len([o for o in r.output if o.type == "function_call"]) == 1
    assert sent(fake)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_max_tokens_gives_incomplete_and_refusal_gives_refusal(client: OpenAI) -> None:
    r = client.responses.create(model="claude", input="x" * 200, max_output_tokens=16)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    r = client.responses.create(model="claude", input="refuse this")
    assert r.output[0].type == "message" and r.output[0].content[-1].type == "refusal"


def test_prompt_caching_reports_cache_write_then_read(start_proxy: ProxyFactory,
                                                      fake: tuple[FakeAnthropic, str]) -> None:
    proxy = start_proxy(config(fake[1], ", prompt_caching: true, top_k: 5, anthropic_beta: b1"))
    body = {"model": "claude", "input": "cache me please", "instructions": "A long system prompt."}
    one = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body).json()
    two = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body).json()
    assert one["usage"]["input_tokens_details"]["cache_write_tokens"] > 0
    assert two["usage"]["input_tokens_details"]["cached_tokens"] > 0
    assert sent(fake)["system"][0]["cache_control"] == {"type": "ephemeral"} and sent(fake)["top_k"] == 5
    assert fake[0].requests[-1].headers["anthropic-beta"] == "b1"


@pytest.mark.parametrize(("status", "expected", "kind"), [
    (529, 503, "server_error"), (429, 429, "rate_limit_exceeded"), (400, 400, "invalid_request_error"),
    (401, 502, "upstream_error"), (500, 500, "server_error")])
def test_error_mapping(proxy: ServerThread, fake: tuple[FakeAnthropic, str], status: int, expected: int,
                       kind: str) -> None:
    fake[0].fail_next(status)
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "claude", "input": "hi"})
    assert r.status_code == expected and r.json()["error"]["type"] == kind
    assert KEY not in r.text
    fake[0].fail_next(status)
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "claude", "input": "hi", "stream": True})
    assert r.status_code == expected


def test_error_event_midway_fails_the_stream(proxy: ServerThread, fake: tuple[FakeAnthropic, str]) -> None:
    fake[0].error_event_next()
    final = check_stream(post_stream(proxy.url, MASTER_KEY, {"model": "claude", "input": "some words to say"}))
    assert final["status"] == "failed" and final["error"]["message"] == "Overloaded"


def test_unsupported_field_is_a_400_naming_it(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        client.responses.create(model="claude", input="hi", top_logprobs=2)


@pytest.fixture
def compliance_client(proxy: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url + "/v1", timeout=30, headers=AUTH) as http:
        yield http


@pytest.mark.parametrize("check", c.ALL_CHECKS)
def test_compliance(compliance_client: httpx.Client, check: str) -> None:
    prompts = c.Prompts(tool="call get_weather for San Francisco")
    assert c.run_check(compliance_client, check, "claude", prompts) == []


