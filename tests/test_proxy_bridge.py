"""The Chat Completions bridge end to end: the official openai SDK -> the proxy -> a strict fake chat upstream.

Through the bridge a chat provider must look exactly like OpenAI's Responses API: the same object, the
same event grammar, chains by previous_response_id, tool round trips, errors with the right status.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI
from openai.types.responses import Response

from conftest import MASTER_KEY, ProxyFactory
from fakes.chat_upstream import FakeChat
from fakes.server import ServerThread
from grammar import check_stream
from sse import post_stream

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
KEY = "sk-chat-upstream-secret"
TOOLS = [
    {"type": "function", "name": "lookup", "description": "Look something up",
     "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"],
                    "additionalProperties": False}, "strict": True},
    {"type": "function", "name": "clock", "parameters": {"type": "object", "properties": {}}, "strict": False},
]


@pytest.fixture
def chat() -> Iterator[tuple[FakeChat, str]]:
    fake = FakeChat(api_key=KEY, reasoning_field="reasoning_content")
    with ServerThread(fake.app) as server:
        yield fake, server.url


def config(url: str, *, timeout: float | None = None) -> str:
    extra = f", timeout: {timeout}" if timeout else ""
    return f"""
model_list:
  - model_name: ds
    litellm_params: {{model: deepseek/deepseek-chat, api_base: "{url}/v1", api_key: "{KEY}"{extra}}}
  - model_name: vllm
    litellm_params: {{model: hosted_vllm/qwen3, api_base: "{url}/v1", api_key: "{KEY}"}}
  - model_name: mock/recall
    litellm_params: {{model: mock/recall}}
"""


@pytest.fixture
def proxy(start_proxy: ProxyFactory, chat: tuple[FakeChat, str]) -> ServerThread:
    return start_proxy(config(chat[1]))


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


def sent(chat: tuple[FakeChat, str]) -> dict[str, Any]:
    body: dict[str, Any] = chat[0].requests[-1].body
    return body


def test_json_create_is_a_complete_responses_object(client: OpenAI, proxy: ServerThread,
                                                    chat: tuple[FakeChat, str]) -> None:
    raw = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                     json={"model": "ds", "input": "hello", "instructions": "Be brief.", "max_output_tokens": 64,
                           "temperature": 0.5}).json()
    Response.model_validate(raw)
    assert raw["model"] == "ds" and raw["status"] == "completed"
    assert [o["type"] for o in raw["output"]] == ["reasoning", "message"]
    assert raw["output"][1]["content"][0]["text"] == "Echo: hello"
    assert raw["output"][0]["summary"][0]["text"] == "Thinking about: hello"
    assert raw["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    assert raw["instructions"] == "Be brief." and raw["temperature"] == 0.5
    body = sent(chat)
    assert body["model"] == "deepseek-chat"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    assert body["max_tokens"] == 64 or body.get("max_completion_tokens") == 64
    assert chat[0].requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert httpx.get(proxy.url + f"/v1/responses/{raw['id']}", headers=AUTH).json() == raw


def test_stream_grammar_and_agreement_with_json(proxy: ServerThread, chat: tuple[FakeChat, str]) -> None:
    events = post_stream(proxy.url, MASTER_KEY, {"model": "ds", "input": "a longer sentence to split up"})
    final = check_stream(events)
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == \
        "Echo: a longer sentence to split up"
    assert sent(chat)["stream"] is True and sent(chat)["stream_options"] == {"include_usage": True}
    assert final["usage"]["input_tokens"] > 0
    as_json = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                         json={"model": "ds", "input": "a longer sentence to split up"}).json()
    strip = lambda r: [{k: v for k, v in o.items() if k != "id"} for o in r["output"]]  # noqa: E731
    assert strip(final) == strip(as_json)


def test_parallel_tool_calls_round_trip_with_previous_response_id(client: OpenAI, chat: tuple[FakeChat, str],
                                                                   proxy: ServerThread) -> None:
    events = post_stream(proxy.url, MASTER_KEY, {"model": "vllm", "input": "call all", "tools": TOOLS})
    first = check_stream(events)
    calls = [o for o in first["output"] if o["type"] == "function_call"]
    assert [c["name"] for c in calls] == ["lookup", "clock"]
    assert orjson.loads(calls[0]["arguments"]) == {"q": "call all"}
    second = client.responses.create(
        model="vllm", previous_response_id=first["id"], tools=TOOLS,  # type: ignore[arg-type]
        input=[{"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "42"},
               {"type": "function_call_output", "call_id": calls[1]["call_id"], "output": "noon"}])
    assert second.output_text == "Tool results: 42; noon"
    messages = sent(chat)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert [t["id"] for t in messages[1]["tool_calls"]] == [c["call_id"] for c in calls]
    assert messages[1]["reasoning_content"] == "Thinking about: call all"  # vLLM takes its reasoning back
    assert messages[2]["tool_call_id"] == calls[0]["call_id"]


def test_chain_across_providers(client: OpenAI, chat: tuple[FakeChat, str]) -> None:
    first = client.responses.create(model="mock/recall", input="from the mock")
    second = client.responses.create(model="ds", input="and now", previous_response_id=first.id)
    assert second.output_text == "Echo: and now"
    assert [m["role"] for m in sent(chat)["messages"]] == ["user", "assistant", "user"]
    third = client.responses.create(model="mock/recall", input="back", previous_response_id=second.id)
    assert third.output_text == "from the mock | and now | back"


def test_structured_output(client: OpenAI, chat: tuple[FakeChat, str]) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
              "additionalProperties": False}
    r = client.responses.create(model="vllm", input="Ada", text={
        "format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}})
    assert orjson.loads(r.output_text) == {"name": "Ada"}
    assert sent(chat)["response_format"]["json_schema"]["name"] == "person"
    with pytest.raises(openai.BadRequestError) as refused:  # DeepSeek has json_object only
        client.responses.create(model="ds", input="Ada", text={
            "format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}})
    assert refused.value.body["param"] == "text.format"  # type: ignore[index]


def test_truncation_by_length_is_incomplete(client: OpenAI) -> None:
    r = client.responses.create(model="ds", input="x " * 200, max_output_tokens=16)
    assert r.status == "incomplete"
    assert r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"


def test_unsupported_field_is_refused_or_dropped(start_proxy: ProxyFactory, chat: tuple[FakeChat, str],
                                                 proxy: ServerThread) -> None:
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                   json={"model": "ds", "input": [{"role": "user", "content": [
                       {"type": "input_image", "image_url": "https://example.com/a.png"}]}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[0].content[0]"
    dropping = start_proxy(config(chat[1]).replace("litellm_params: {model: deepseek/deepseek-chat,",
                                                  "litellm_params: {drop_params: true, model: deepseek/deepseek-chat,"))
    ok = httpx.post(dropping.url + "/v1/responses", headers=AUTH,
                    json={"model": "ds", "input": "hi", "tools": [{"type": "web_search"}]})
    assert ok.status_code == 200, ok.text
    assert "tools" not in sent(chat)


@pytest.mark.parametrize(("status", "expected"), [(400, 400), (401, 502), (429, 429), (500, 500), (503, 503)])
def test_upstream_errors_map_to_statuses(proxy: ServerThread, chat: tuple[FakeChat, str], status: int,
                                         expected: int) -> None:
    for stream in (False, True):
        chat[0].fail_next(status)
        r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "ds", "input": "x", "stream": stream})
        assert r.status_code == expected, r.text
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        assert KEY not in r.text


def test_slow_upstream_is_504(start_proxy: ProxyFactory, chat: tuple[FakeChat, str]) -> None:
    proxy = start_proxy(config(chat[1], timeout=0.3))
    chat[0].delay_next(2.0)
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "ds", "input": "x"}, timeout=10)
    assert r.status_code == 504


@pytest.mark.parametrize("fault", ["drop", "error_chunk"])
def test_a_broken_stream_ends_in_response_failed(proxy: ServerThread, chat: tuple[FakeChat, str],
                                                 fault: str) -> None:
    if fault == "drop":
        chat[0].drop_stream_after(3)
    else:
        chat[0].error_chunk_next()
    events = post_stream(proxy.url, MASTER_KEY, {"model": "ds", "input": "several words to stream along here"})
    final = check_stream(events)
    assert final["status"] == "failed" and final["error"]["code"]
    got = httpx.get(proxy.url + f"/v1/responses/{final['id']}", headers=AUTH).json()
    assert got["status"] == "failed"


def test_retrieve_input_items_delete_for_bridged(client: OpenAI) -> None:
    r = client.responses.create(model="ds", input=[{"role": "user", "content": "one"},
                                                   {"role": "user", "content": "two"}])  # type: ignore[arg-type]
    items = client.responses.input_items.list(r.id, order="asc")
    assert [i.content[0].text for i in items.data] == ["one", "two"]  # type: ignore[union-attr]
    client.responses.delete(r.id)
    assert httpx.get(str(client.base_url) + f"responses/{r.id}", headers=AUTH).status_code == 404


def test_item_reference_resolves_from_the_chain(client: OpenAI, chat: tuple[FakeChat, str],
                                                proxy: ServerThread) -> None:
    first = client.responses.create(model="ds", input="remember this")
    answer_id = first.output[-1].id
    second = client.responses.create(model="ds", previous_response_id=first.id, input=[
        {"type": "item_reference", "id": answer_id}, {"role": "user", "content": "and this"}])
    assert second.status == "completed"
    messages = sent(chat)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "assistant", "user"]
    assert messages[2]["content"] == messages[1]["content"] == "Echo: remember this"
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={
        "model": "ds", "previous_response_id": first.id, "input": [{"type": "item_reference", "id": "msg_nope"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[0].id"
