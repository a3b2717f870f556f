"""Bedrock Converse end to end: the official openai SDK -> the proxy -> the strict, SigV4-checking fake Bedrock.

"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

import compliance as c
from conftest import MASTER_KEY, ProxyFactory
from fakes.bedrock_upstream import ACCESS_KEY, SECRET_KEY, FakeBedrock
from fakes.server import ServerThread
from grammar import check_stream
from respgate.providers import registry
from respgate.providers.bedrock import PROVIDER_FACTORIES
from sse import post_stream

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"
TOOLS: list[Any] = [
    {"type": "function", "name": "lookup", "description": "Look something up",
     "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}, "strict": True},
    {"type": "function", "name": "clock", "parameters": {"type": "object", "properties": {}}, "strict": False},
]


def test_bedrock_is_registered() -> None:
    assert {name: registry._FACTORIES[name] for name in PROVIDER_FACTORIES} == PROVIDER_FACTORIES


@pytest.fixture(autouse=True)
def _no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[tuple[FakeBedrock, str]]:
    bedrock = FakeBedrock()
    with ServerThread(bedrock.app) as server:
        yield bedrock, server.url


def _entry(name: str, model: str, url: str, secret: str = SECRET_KEY) -> str:
    return (f"  - model_name: {name}\n    litellm_params: {{model: \"bedrock/{model}\", api_base: \"{url}\", "
            f"aws_access_key_id: {ACCESS_KEY}, aws_secret_access_key: \"{secret}\", aws_region_name: us-east-1}}\n")


@pytest.fixture
def proxy(start_proxy: ProxyFactory, fake: tuple[FakeBedrock, str]) -> ServerThread:
    url = fake[1]
    return start_proxy("model_list:\n" + _entry("claude", CLAUDE, url)
                       + _entry("nova", "converse/amazon.nova-pro-v1:0", url)
                       + _entry("wrong-secret", CLAUDE, url, secret="not-the-secret")
                       + "  - model_name: mock/recall\n    litellm_params: {model: mock/recall}\n")


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as cl:
        yield cl


def sent(fake: tuple[FakeBedrock, str]) -> dict[str, Any]:
    return fake[0].requests[-1].body


def test_json_create_is_signed_and_translated(client: OpenAI, proxy: ServerThread,
                                              fake: tuple[FakeBedrock, str]) -> None:
    r = client.responses.create(model="claude", input="hello", instructions="Be brief.", max_output_tokens=64)
    assert r.output_text == "Echo: hello" and r.status == "completed" and r.model == "claude"
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    received = fake[0].requests[-1]
    assert received.path == "/model/anthropic.claude-sonnet-4-20250514-v1%3A0/converse"
    assert received.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert received.body == {"messages": [{"role": "user", "content": [{"text": "hello"}]}],
                             "system": [{"text": "Be brief."}], "inferenceConfig": {"maxTokens": 64}}
    again = httpx.get(proxy.url + f"/v1/responses/{r.id}", headers=AUTH).json()
    assert again["output"][0]["content"][0]["text"] == "Echo: hello"


def test_stream_grammar_and_agreement_with_json(proxy: ServerThread, fake: tuple[FakeBedrock, str]) -> None:
    body = {"model": "nova", "input": "a longer sentence to split into frames"}
    final = check_stream(post_stream(proxy.url, MASTER_KEY, body))
    assert fake[0].requests[-1].path == "/model/amazon.nova-pro-v1%3A0/converse-stream"
    as_json = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body).json()
    strip = lambda r: [{k: v for k, v in o.items() if k != "id"} for o in r["output"]]  # noqa: E731
    assert strip(final) == strip(as_json) and final["usage"] == as_json["usage"]


def test_tool_and_thinking_round_trip_with_previous_response_id(client: OpenAI, proxy: ServerThread,
                                                                fake: tuple[FakeBedrock, str]) -> None:
    first = check_stream(post_stream(proxy.url, MASTER_KEY, {
        "model": "claude", "input": "call all", "tools": TOOLS, "reasoning": {"effort": "low"}}))
    assert [o["type"] for o in first["output"]] == ["reasoning", "function_call", "function_call"]
    assert first["output"][0]["summary"][0]["text"] == "Thinking about: call all"
    calls = first["output"][1:]
    second = client.responses.create(
        model="claude", previous_response_id=first["id"], tools=TOOLS, reasoning={"effort": "low"},
        input=[{"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "42"},
               {"type": "function_call_output", "call_id": calls[1]["call_id"], "output": "noon"}])
    assert second.output_text == "Tool results: 42; noon"
    assistant = sent(fake)["messages"][1]["content"]
    assert "reasoningText" in assistant[0]["reasoningContent"]  # the fake checked its signature
    assert [b["toolUse"]["toolUseId"] for b in assistant[1:]] == [call["call_id"] for call in calls]


def test_altered_thinking_is_refused_upstream(client: OpenAI, fake: tuple[FakeBedrock, str]) -> None:
    first = client.responses.create(model="claude", input="call lookup", tools=TOOLS, reasoning={"effort": "low"})
    items: list[Any] = [o.model_dump(exclude_none=True) for o in first.output]
    items[0]["summary"][0]["text"] = "edited"
    call = items[1]
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="claude", tools=TOOLS, reasoning={"effort": "low"}, input=[
            {"role": "user", "content": "call lookup"}, *items,
            {"type": "function_call_output", "call_id": call["call_id"], "output": "x"}])
    assert "thinking" in str(refused.value)


def test_chain_across_providers(client: OpenAI, fake: tuple[FakeBedrock, str]) -> None:
    first = client.responses.create(model="mock/recall", input="from the mock")
    second = client.responses.create(model="claude", input="and now", previous_response_id=first.id)
    assert second.output_text == "Echo: and now"
    assert [m["role"] for m in sent(fake)["messages"]] == ["user", "assistant", "user"]
    third = client.responses.create(model="mock/recall", input="back", previous_response_id=second.id)
    assert third.output_text == "from the mock | and now | back"


def test_structured_output_and_images(client: OpenAI, fake: tuple[FakeBedrock, str]) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    r = client.responses.create(model="claude", input="Ada", text={
        "format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}})
    assert orjson.loads(r.output_text) == {"name": "Ada"}
    r = client.responses.create(model="claude", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "see"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}]}])
    assert r.output_text == "Echo: see [image:png]"
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="claude", input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}]}])
    assert refused.value.body["param"] == "input[0].content[0].image_url"  # type: ignore[index]


def test_max_tokens_is_incomplete(client: OpenAI) -> None:
    r = client.responses.create(model="nova", input="a sentence that is longer than the limit", max_output_tokens=16)
    assert r.status == "completed"
    r = client.responses.create(model="nova", input="x" * 200, max_output_tokens=16)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(("name", "status", "error"), [
    ("ThrottlingException", 429, openai.RateLimitError), ("ValidationException", 400, openai.BadRequestError),
    ("AccessDeniedException", 502, openai.InternalServerError),
    ("ModelTimeoutException", 504, openai.InternalServerError),
    ("ServiceUnavailableException", 503, openai.InternalServerError),
    ("InternalServerException", 500, openai.InternalServerError)])
def test_upstream_errors_keep_the_provider_message(client: OpenAI, fake: tuple[FakeBedrock, str], name: str,
                                                   status: int, error: type[openai.APIStatusError]) -> None:
    upstream_status = {"ThrottlingException": 429, "ValidationException": 400, "AccessDeniedException": 403,
                       "ModelTimeoutException": 408}.get(name, status)
    fake[0].fail_next.append((upstream_status, name, f"{name} says no"))
    with pytest.raises(error) as raised:
        client.responses.create(model="claude", input="hi")
    assert raised.value.status_code == status and f"{name} says no" in raised.value.message


def test_stream_errors_before_and_after_the_first_byte(proxy: ServerThread, fake: tuple[FakeBedrock, str]) -> None:
    fake[0].fail_next.append((429, "ThrottlingException", "Too many requests"))
    refused = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                         json={"model": "claude", "input": "hi", "stream": True})
    assert refused.status_code == 429 and "Too many requests" in refused.json()["error"]["message"]
    fake[0].stream_exception = (3, "ModelStreamErrorException", "The model broke")
    final = check_stream(post_stream(proxy.url, MASTER_KEY, {"model": "claude", "input": "a longer text here"}))
    assert final["status"] == "failed" and final["error"]["message"] == "The model broke"


def test_a_wrong_secret_is_refused_by_the_fake_and_is_a_502(client: OpenAI, fake: tuple[FakeBedrock, str]) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        client.responses.create(model="wrong-secret", input="hi")
    assert raised.value.status_code == 502
    assert "signature" in raised.value.message and "not-the-secret" not in raised.value.message
    assert fake[0].requests == []  # refused before validation


@pytest.mark.parametrize("check", c.ALL_CHECKS)
def test_compliance(proxy: ServerThread, check: str) -> None:
    with httpx.Client(base_url=proxy.url + "/v1", timeout=30, headers=AUTH) as http:
        assert c.run_check(http, check, "claude", c.Prompts(tool="call get_weather for San Francisco")) == []
