"""`POST /v1/chat/completions` and `respgate.completion` for models that speak only Responses:
the mock models and the native OpenAI passthrough (against the strict fake upstream).

Every completion and chunk is validated with `openai.types.chat`'s models (strict pydantic, not the
client's lenient construction), and the stream must agree with the JSON answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pydantic
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import respgate
from conftest import MASTER_KEY, ProxyFactory
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from respgate import Client

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
UPSTREAM_KEY = "sk-chat-upstream-42"

WEATHER: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def post_chat(proxy: ServerThread, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/chat/completions", headers=AUTH, json=body, timeout=30)


def chat_json(proxy: ServerThread, body: dict[str, Any]) -> ChatCompletion:
    r = post_chat(proxy, body)
    assert r.status_code == 200, r.text
    return ChatCompletion.model_validate(r.json())


def chat_stream(proxy: ServerThread, body: dict[str, Any]) -> list[ChatCompletionChunk]:
    """The raw SSE of a stream: `data:` lines only, ending with `[DONE]`; each chunk validated."""
    r = post_chat(proxy, {**body, "stream": True})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in r.text.split("\n\n") if f.strip()]
    assert all(f.startswith("data: ") and "\n" not in f for f in frames), frames
    assert frames[-1] == "data: [DONE]"
    return [ChatCompletionChunk.model_validate(orjson.loads(f[6:])) for f in frames[:-1]]


def stream_text(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def stream_tool_calls(chunks: list[ChatCompletionChunk]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for c in chunks:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += tc.id or ""
            call["name"] += (tc.function.name or "") if tc.function else ""
            call["arguments"] += (tc.function.arguments or "") if tc.function else ""
    return calls


@pytest.fixture
def oai(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


# --- mock models through the proxy ----------------------------------------------------------------

def test_echo_completion_has_openai_shape(proxy: ServerThread, oai: OpenAI) -> None:
    c = chat_json(proxy, {"model": "mock/echo", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello chat"}]})
    assert c.object == "chat.completion" and c.id.startswith("chatcmpl-") and c.model == "mock/echo"
    assert c.created > 0
    choice = c.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == "hello chat"
    assert choice.message.refusal is None and not choice.message.tool_calls
    assert choice.finish_reason == "stop" and choice.index == 0
    assert c.usage is not None and c.usage.completion_tokens == 3  # ceil(10 chars / 4)
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
    via_sdk = oai.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "via sdk"}])
    assert via_sdk.choices[0].message.content == "via sdk"


def test_user_content_parts_reach_the_model(oai: OpenAI) -> None:
    c = oai.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": [
        {"type": "text", "text": "part one"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "part two"}]}])
    assert c.choices[0].message.content == "part one part two"


def test_stream_agrees_with_json_and_ends_with_usage(proxy: ServerThread, oai: OpenAI) -> None:
    text = "the quick brown fox jumps"
    body: dict[str, Any] = {"model": "mock/echo", "messages": [{"role": "user", "content": text}]}
    whole = chat_json(proxy, body)
    chunks = chat_stream(proxy, {**body, "stream_options": {"include_usage": True}})
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" and c.model == "mock/echo" for c in chunks)
    assert stream_text(chunks) == whole.choices[0].message.content == text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    finish, usage = chunks[-2], chunks[-1]
    assert finish.choices[0].finish_reason == "stop" and finish.choices[0].delta.content is None
    assert [c for c in chunks if c.choices and c.choices[0].finish_reason] == [finish]
    assert usage.choices == [] and usage.usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])
    # without include_usage no usage chunk; the openai client reads the same stream
    sdk_chunks = list(oai.chat.completions.create(model="mock/echo", messages=body["messages"], stream=True))
    assert stream_text(sdk_chunks) == text and sdk_chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in sdk_chunks)


def test_tool_call_round_trip(oai: OpenAI, proxy: ServerThread) -> None:
    messages: list[Any] = [{"role": "user", "content": "get_weather Paris"}]
    first = oai.chat.completions.create(model="mock/tool", messages=messages, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert orjson.loads(call.function.arguments) == {"city": "get_weather Paris"}
    messages += [choice.message.model_dump(),  # as clients append it: with annotations and nulls
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"}]
    second = oai.chat.completions.create(model="mock/tool", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Tool result: sunny, 21C"
    assert second.choices[0].finish_reason == "stop"
    # the same call streamed: one tool call, index 0, with the id and name first and the arguments after
    chunks = chat_stream(proxy, {"model": "mock/tool", "messages": messages[:1], "tools": [WEATHER]})
    calls = stream_tool_calls(chunks)
    assert list(calls) == [0] and calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert orjson.loads(calls[0]["arguments"]) == {"city": "get_weather Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_reasoning_content_and_tokens(proxy: ServerThread) -> None:
    body = {"model": "mock/reasoning", "messages": [{"role": "user", "content": "why"}], "reasoning_effort": "low"}
    c = chat_json(proxy, body)
    message = c.choices[0].message
    assert message.content == "why"
    assert getattr(message, "reasoning_content", None) == "The user said: why. I will repeat it."
    assert c.usage is not None and c.usage.completion_tokens_details is not None
    assert c.usage.completion_tokens_details.reasoning_tokens == 10
    chunks = chat_stream(proxy, body)
    reasoning = "".join(getattr(ch.choices[0].delta, "reasoning_content", None) or "" for ch in chunks if ch.choices)
    assert reasoning == getattr(message, "reasoning_content", None) and stream_text(chunks) == "why"


def test_length_and_logprobs(proxy: ServerThread) -> None:
    long = "word " * 40
    c = chat_json(proxy, {"model": "mock/echo", "messages": [{"role": "user", "content": long}],
                          "max_completion_tokens": 16, "logprobs": True, "top_logprobs": 2})
    assert c.choices[0].finish_reason == "length"
    assert c.choices[0].message.content == long[:64]
    assert c.choices[0].logprobs is not None and c.choices[0].logprobs.content == []
    chunks = chat_stream(proxy, {"model": "mock/echo", "messages": [{"role": "user", "content": long}],
                                 "max_tokens": 16})
    assert chunks[-1].choices[0].finish_reason == "length" and stream_text(chunks) == long[:64]


def test_failed_model_is_an_error(oai: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model="mock/fail", messages=[{"role": "user", "content": "x"}])
    assert "fails" in info.value.message or "failed" in info.value.message
    with pytest.raises(openai.APIError, match="failed"):  # raised mid-stream, by the error frame
        for _ in oai.chat.completions.create(model="mock/fail", messages=[{"role": "user", "content": "x"}],
                                             stream=True):
            pass


def test_structured_output_parse(oai: OpenAI) -> None:
    class Greeting(pydantic.BaseModel):
        text: str
        name: str

    parsed = oai.chat.completions.parse(model="mock/echo", messages=[{"role": "user", "content": "hi there"}],
                                        response_format=Greeting)
    assert parsed.choices[0].message.parsed == Greeting(text="hi there", name="hi there")


def test_stored_only_when_asked(proxy: ServerThread) -> None:
    messages = [{"role": "user", "content": "keep me"}]
    kept = chat_json(proxy, {"model": "mock/echo", "messages": messages, "store": True, "metadata": {"k": "v"}})
    assert kept.metadata == {"k": "v"}
    rid = "resp_" + kept.id.removeprefix("chatcmpl-")
    stored = httpx.get(proxy.url + f"/v1/responses/{rid}", headers=AUTH).json()
    assert stored["output"][0]["content"][0]["text"] == "keep me" and stored["metadata"] == {"k": "v"}
    gone = chat_json(proxy, {"model": "mock/echo", "messages": messages})
    rid = "resp_" + gone.id.removeprefix("chatcmpl-")
    assert httpx.get(proxy.url + f"/v1/responses/{rid}", headers=AUTH).status_code == 404


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("patch", "param", "code"), [
    ({"bogus": 1}, "bogus", "unknown_parameter"),
    ({"n": 2}, "n", "unsupported_value"),
    ({"seed": 7}, "seed", "unsupported_parameter"),
    ({"stop": ["\n"]}, "stop", "unsupported_parameter"),
    ({"temperature": 3}, "temperature", "decimal_above_max_value"),
    ({"max_tokens": 5}, "max_tokens", "integer_below_min_value"),  # Responses' minimum is 16
    ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
    ({"messages": []}, "messages", "empty_array"),
    ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
    ({"messages": [{"role": "user", "content": "x", "extra": 1}]}, "messages[0].extra", "unknown_parameter"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
    ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
])
def test_bad_input_is_a_400_naming_the_field(proxy: ServerThread, patch: dict[str, Any], param: str,
                                             code: str) -> None:
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "x"}], **patch}
    r = post_chat(proxy, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["code"] == code and err["type"] == "invalid_request_error"
    assert param.split("[")[0].split(".")[0] in err["message"] or "'robot'" in err["message"]


def test_openai_client_sees_openai_errors(proxy: ServerThread, oai: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "x"}], n=3)
    assert info.value.param == "n"
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="no/such-model", messages=[{"role": "user", "content": "x"}])
    assert httpx.post(proxy.url + "/chat/completions", json={}).status_code == 401
    r = httpx.post(proxy.url + "/chat/completions", headers=AUTH, content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_drop_params_drops_what_has_no_counterpart(start_proxy: ProxyFactory) -> None:
    from conftest import MOCK_MODELS

    proxy = start_proxy(MOCK_MODELS + "\nlitellm_settings:\n  drop_params: true\n")
    c = chat_json(proxy, {"model": "mock/echo", "messages": [{"role": "user", "content": "ok"}], "seed": 1,
                          "frequency_penalty": 0.5})
    assert c.choices[0].message.content == "ok"


# --- native passthrough against the strict fake OpenAI --------------------------------------------

@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    f = FakeOpenAI(api_key=UPSTREAM_KEY)
    with ServerThread(f.app) as server:
        f.url = server.url  # type: ignore[attr-defined]
        yield f


@pytest.fixture
def native(start_proxy: ProxyFactory, fake: FakeOpenAI) -> ServerThread:
    url = fake.url  # type: ignore[attr-defined]
    return start_proxy(f"""
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{url}/v1", api_key: "{UPSTREAM_KEY}"}}
""")


def test_native_request_translation_is_what_openai_accepts(native: ServerThread, fake: FakeOpenAI) -> None:
    c = chat_json(native, {
        "model": "gpt-4o", "max_tokens": 100, "temperature": 0.5, "user": "u1", "prompt_cache_key": "pk",
        "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False, "response_format": {"type": "json_object"},
        "messages": [
            {"role": "developer", "content": "Answer in JSON."},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": "https://x.test/a.png",
                                                                             "detail": "low"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
            {"role": "user", "content": "thanks"}]})
    assert c.choices[0].message.content == "Echo: thanks" and c.model == "gpt-4o"
    sent: dict[str, Any] = [r for r in fake.requests if r.method == "POST"][-1].body
    assert sent["input"] == [
        {"type": "message", "role": "developer", "content": "Answer in JSON."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
        {"type": "message", "role": "user", "content": "thanks"}]
    assert sent["tools"] == [{"type": "function", "name": "get_weather", "description": "Weather in a city",
                              "parameters": WEATHER["function"]["parameters"], "strict": False}]
    assert sent["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert sent["text"] == {"format": {"type": "json_object"}} and sent["max_output_tokens"] == 100
    assert sent["store"] is False and sent["parallel_tool_calls"] is False
    assert (sent["temperature"], sent["user"], sent["prompt_cache_key"]) == (0.5, "u1", "pk")
    assert "messages" not in sent and "max_tokens" not in sent


def test_native_stream_and_tool_call(native: ServerThread, fake: FakeOpenAI) -> None:
    chunks = chat_stream(native, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi native"}],
                                  "stream_options": {"include_usage": True}})
    assert stream_text(chunks) == "Echo: hi native" and chunks[-1].usage is not None
    assert [r for r in fake.requests if r.method == "POST"][-1].body["stream"] is True
    c = chat_json(native, {"model": "gpt-4o", "messages": [{"role": "user", "content": "call it"}],
                           "tools": [WEATHER]})
    assert c.choices[0].finish_reason == "tool_calls"
    (call,) = c.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    chunks = chat_stream(native, {"model": "gpt-4o", "messages": [{"role": "user", "content": "call it"}],
                                  "tools": [WEATHER]})
    assert stream_tool_calls(chunks)[0]["name"] == "get_weather"


def test_native_upstream_error_keeps_openai_shape(native: ServerThread, fake: FakeOpenAI) -> None:
    fake.fail_next(429, {"error": {"message": "slow down", "type": "requests", "param": None,
                                   "code": "rate_limit_exceeded"}})
    r = post_chat(native, {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 429 and r.json()["error"]["message"] == "slow down"


# --- the SDK ---------------------------------------------------------------------------------------

@pytest.fixture
def sdk() -> Iterator[Client]:
    c = Client()
    yield c
    c.close()


def test_sdk_completion_sync_stream_and_parse(sdk: Client) -> None:
    messages = [{"role": "user", "content": "sdk says hi"}]
    c = sdk.completion(model="mock/echo", messages=messages)
    assert isinstance(c, ChatCompletion) and c.choices[0].message.content == "sdk says hi"
    chunks = list(sdk.completion(model="mock/echo", messages=messages, stream=True,
                                 stream_options={"include_usage": True}))
    assert all(isinstance(ch, ChatCompletionChunk) for ch in chunks)
    assert stream_text(chunks) == "sdk says hi" and chunks[-1].usage == c.usage

    class Reply(pydantic.BaseModel):
        answer: str

    parsed = sdk.completion(model="mock/echo", messages=messages, response_format=Reply)
    assert parsed.choices[0].message.parsed == Reply(answer="sdk says hi")
    with pytest.raises(respgate.InvalidRequestError, match="seed"):
        sdk.completion(model="mock/echo", messages=messages, seed=3)
    with pytest.raises(respgate.RespgateError, match="failed"):
        list(sdk.completion(model="mock/fail", messages=messages, stream=True))


async def test_sdk_acompletion(sdk: Client) -> None:
    messages = [{"role": "user", "content": "async hi"}]
    c = await sdk.acompletion(model="mock/echo", messages=messages)
    assert c.choices[0].message.content == "async hi"
    stream = await sdk.acompletion(model="mock/echo", messages=messages, stream=True)
    chunks = [ch async for ch in stream]
    assert stream_text(chunks) == "async hi" and chunks[-1].choices[0].finish_reason == "stop"


def test_module_level_completion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(respgate.sdk, "_default", None)  # a default client of this test's own, closed after
    c = respgate.completion(model="mock/echo", messages=[{"role": "user", "content": "module"}])
    assert c.choices[0].message.content == "module"
    respgate.sdk.default_client().close()
    assert {"completion", "acompletion"} <= set(respgate.__all__)
