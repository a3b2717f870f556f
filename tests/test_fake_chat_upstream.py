"""The fake Chat Completions upstream, driven by the official `openai` SDK and by raw HTTP."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionToolParam

from fakes.chat_upstream import FakeChat
from fakes.server import ServerThread

KEY = "sk-chat"
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
LOOKUP: ChatCompletionToolParam = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}
SEARCH: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}

Start = Callable[..., ServerThread]


@pytest.fixture
def start() -> Iterator[Start]:
    """`start(**FakeChat options)` -> (a running server); `.fake` on it is the FakeChat."""
    servers: list[ServerThread] = []

    def run(**options: Any) -> ServerThread:
        fake = FakeChat(KEY, **options)
        server = ServerThread(fake.app).start()
        server.fake = fake  # type: ignore[attr-defined]
        servers.append(server)
        return server

    yield run
    for server in servers:
        server.stop()


@pytest.fixture
def server(start: Start) -> ServerThread:
    return start()


@pytest.fixture
def fake(server: ServerThread) -> FakeChat:
    return server.fake  # type: ignore[attr-defined, no-any-return]


def sdk(server: ServerThread, **options: Any) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, **options)


@pytest.fixture
def client(server: ServerThread) -> Iterator[OpenAI]:
    with sdk(server) as c:
        yield c


@pytest.fixture
def http(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {KEY}"}) as c:
        yield c


def post(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"model": "m", "messages": USER, **body})


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


def sse_data(response: httpx.Response) -> list[str]:
    """The `data:` payloads of a raw SSE body; any other non-blank line fails the test."""
    lines = [line for line in response.text.split("\n") if line]
    assert all(line.startswith("data: ") for line in lines), lines
    return [line.removeprefix("data: ") for line in lines]


def tokens(chars: int) -> int:
    return math.ceil(chars / 4)


# ---------------------------------------------------------------- the echo model


def test_echo_answers_the_last_user_text_with_usage(client: OpenAI) -> None:
    messages: Any = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "turn"}]},
    ]
    completion = client.chat.completions.create(model="gpt-4o", messages=messages)
    choice = completion.choices[0]
    assert choice.message.content == "Echo: second turn"
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == tokens(len("be brief" + "first" + "ok" + "second turn"))
    assert usage.completion_tokens == tokens(len("Echo: second turn"))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 0


def test_unversioned_path_and_request_recording(server: ServerThread, fake: FakeChat) -> None:
    body = {"model": "m", "messages": USER}
    response = httpx.post(server.url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Echo: hello there"
    method, path, headers, recorded = fake.requests[-1]
    assert (method, path, recorded) == ("POST", "/chat/completions", body)
    assert headers["authorization"] == f"Bearer {KEY}"
    assert all(name == name.lower() for name in headers)


def test_call_names_one_tool(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "call search"}], tools=[LOOKUP, SEARCH]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.type, c.function.name, c.function.arguments) for c in calls if c.type == "function"] == [
        ("function", "search", json.dumps({"q": "call search"}))
    ]
    assert calls[0].id.startswith("call_")


def test_call_all_calls_every_tool_in_parallel(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "call all"}], tools=[LOOKUP, SEARCH]
    )
    calls = [c for c in completion.choices[0].message.tool_calls or [] if c.type == "function"]
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("lookup", "{}"),
        ("search", '{"q": "call all"}'),
    ]
    assert len({c.id for c in calls}) == 2
    single = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "call all"}], tools=[LOOKUP, SEARCH], parallel_tool_calls=False
    )
    assert len(single.choices[0].message.tool_calls or []) == 1


def test_call_without_tools_is_an_echo(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "call all"}])
    assert completion.choices[0].message.content == "Echo: call all"
    assert completion.choices[0].message.tool_calls is None


def test_tool_results_are_reported(client: OpenAI) -> None:
    messages: Any = [
        {"role": "user", "content": "call all"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": "{}"}},
                {"id": "call_b", "type": "function", "function": {"name": "search", "arguments": '{"q":"x"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "42"}]},
    ]
    completion = client.chat.completions.create(model="m", messages=messages, tools=[LOOKUP, SEARCH])
    assert completion.choices[0].message.content == "Tool results: sunny; 42"
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    chars = len("call all") + len("lookup{}") + len('search{"q":"x"}') + len("sunny") + len("42")
    assert usage.prompt_tokens == tokens(chars)


def test_json_schema_answer_fills_required_fields(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "count": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"},
        },
        "required": ["title", "count", "tags"],
        "additionalProperties": False,
    }
    completion = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "a book"}],
        response_format={"type": "json_schema", "json_schema": {"name": "book", "schema": schema, "strict": True}},
    )
    content = completion.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"title": "a book", "count": 0, "tags": []}


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_field_carries_thinking(start: Start, field: str) -> None:
    with sdk(start(reasoning_field=field)) as client:
        completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "why"}])
    message = completion.choices[0].message.model_dump()
    assert message[field] == "Thinking about: why"
    other = "reasoning" if field == "reasoning_content" else "reasoning_content"
    assert other not in message
    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    reasoning_tokens = tokens(len("Thinking about: why"))
    assert usage.completion_tokens_details.reasoning_tokens == reasoning_tokens
    assert usage.completion_tokens == tokens(len("Echo: why")) + reasoning_tokens


def test_no_reasoning_field_by_default(client: OpenAI) -> None:
    message = client.chat.completions.create(model="m", messages=USER).choices[0].message.model_dump()
    assert "reasoning_content" not in message and "reasoning" not in message


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_small_output_limit_truncates(http: httpx.Client, param: str) -> None:
    text = "a rather long sentence that cannot fit"
    body = post(http, messages=[{"role": "user", "content": text}], **{param: 2}).json()
    choice = body["choices"][0]
    assert choice["message"]["content"] == ("Echo: " + text)[:8]
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2
    roomy = post(http, messages=[{"role": "user", "content": text}], **{param: 100}).json()["choices"][0]
    assert (roomy["message"]["content"], roomy["finish_reason"]) == ("Echo: " + text, "stop")


# ---------------------------------------------------------------- streaming


def test_stream_matches_the_non_streamed_answer(client: OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "stream these few words please"}]
    whole = client.chat.completions.create(model="m", messages=messages)
    chunks = list(client.chat.completions.create(model="m", messages=messages, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 2
    assert "".join(pieces) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    assert all(c.usage is None for c in chunks)
    assert len({c.id for c in chunks}) == 1


def test_stream_raw_bytes_usage_chunk_and_done(http: httpx.Client) -> None:
    response = post(http, stream=True, stream_options={"include_usage": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    *body, usage_chunk = chunks
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == tokens(len("Echo: hello there"))
    assert usage_chunk["usage"]["prompt_tokens"] == tokens(len("hello there"))
    assert all(c["usage"] is None for c in body)
    assert body[-1]["choices"][0]["finish_reason"] == "stop"
    assert body[-1]["choices"][0]["delta"] == {}


def test_stream_tool_calls_interleave_and_reassemble(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "call all"}], tools=[LOOKUP, SEARCH], stream=True
    )
    deltas = [d for c in stream if c.choices for d in c.choices[0].delta.tool_calls or []]
    indexes = [d.index for d in deltas]
    assert sorted(set(indexes)) == [0, 1]
    assert indexes != sorted(indexes), "fragments of the two calls should interleave"
    calls: dict[int, dict[str, str]] = {}
    for delta in deltas:
        if delta.index not in calls:
            assert delta.id and delta.type == "function" and delta.function and delta.function.name
            calls[delta.index] = {"id": delta.id, "name": delta.function.name, "arguments": ""}
        else:
            assert delta.id is None and delta.function is not None and delta.function.name is None
        calls[delta.index]["arguments"] += (delta.function and delta.function.arguments) or ""
    assert [(c["name"], c["arguments"]) for c in calls.values()] == [("lookup", "{}"), ("search", '{"q": "call all"}')]


def test_stream_tool_calls_finish_reason(http: httpx.Client) -> None:
    chunks = [json.loads(d) for d in sse_data(post(http, stream=True, tools=[LOOKUP], messages=[
        {"role": "user", "content": "call lookup"}]))[:-1]]  # fmt: skip
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"


def test_stream_reasoning_deltas(start: Start) -> None:
    with sdk(start(reasoning_field="reasoning_content")) as client:
        stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "why"}], stream=True)
        deltas = [c.choices[0].delta.model_dump() for c in stream if c.choices]
    reasoning = [d["reasoning_content"] for d in deltas if d.get("reasoning_content")]
    assert len(reasoning) > 1
    assert "".join(reasoning) == "Thinking about: why"
    content_at = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert max(i for i, d in enumerate(deltas) if d.get("reasoning_content")) < content_at


# ---------------------------------------------------------------- validation


def test_unknown_parameter_has_the_chat_wording(http: httpx.Client) -> None:
    response = post(http, foo=1)
    assert response.json() == {
        "error": {
            "message": "Unrecognized request argument supplied: foo",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert response.status_code == 400


def test_unknown_nested_key(http: httpx.Client) -> None:
    error = error_of(post(http, messages=[{"role": "user", "content": "x", "id": "m1"}]))
    assert error["message"] == "Additional properties are not allowed ('id' was unexpected) - 'messages.0'"
    assert error["param"] is None


def test_unknown_parameter_through_the_sdk(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=USER, extra_body={"thinking": True})
    assert caught.value.message.endswith("Unrecognized request argument supplied: thinking")


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [
        ({"temperature": "hot"}, "temperature", "expected a decimal, but got a string instead."),
        ({"messages": [{"role": "user", "content": 7}]}, "messages[0].content", "but got an integer instead."),
        ({"stream": "yes"}, "stream", "expected a boolean, but got a string instead."),
        ({"tools": {"type": "function"}}, "tools", "expected an array, but got an object instead."),
    ],
)
def test_wrong_types_name_the_param(http: httpx.Client, extra: dict[str, Any], param: str, message: str) -> None:
    error = error_of(post(http, **extra))
    assert error["param"] == param
    assert error["code"] == "invalid_type"
    assert error["message"].startswith(f"Invalid type for '{param}'")
    assert error["message"].endswith(message)


def test_missing_model_and_messages(http: httpx.Client) -> None:
    error = error_of(http.post("/v1/chat/completions", json={"messages": USER}))
    assert (error["message"], error["param"]) == ("you must provide a model parameter", None)
    error = error_of(http.post("/v1/chat/completions", json={"model": "m"}))
    assert error["message"] == "Missing required parameter: 'messages'."
    assert (error["param"], error["code"]) == ("messages", "missing_required_parameter")
    assert error_of(post(http, messages=[]))["code"] == "empty_array"


ASSISTANT_CALL = {
    "role": "assistant",
    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
}


def test_tool_message_without_tool_call_id(http: httpx.Client) -> None:
    error = error_of(post(http, messages=[*USER, ASSISTANT_CALL, {"role": "tool", "content": "r"}]))
    assert error["message"] == "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'."
    assert error["param"] == "messages.[2].tool_call_id"


def test_tool_message_must_answer_a_preceding_tool_call(http: httpx.Client) -> None:
    error = error_of(post(http, messages=[*USER, {"role": "tool", "tool_call_id": "call_1", "content": "r"}]))
    assert error["message"] == (
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
    )
    assert (error["param"], error["code"]) == ("messages.[1].role", None)
    tool = {"role": "tool", "tool_call_id": "call_1", "content": "r"}
    late = error_of(post(http, messages=[*USER, ASSISTANT_CALL, tool, *USER, tool]))
    assert late["param"] == "messages.[4].role"
    wrong = error_of(post(http, messages=[*USER, ASSISTANT_CALL, {**tool, "tool_call_id": "call_9"}]))
    assert (
        wrong["message"]
        == "Invalid parameter: 'tool_call_id' of 'call_9' not found in 'tool_calls' of previous message."
    )
    assert wrong["param"] == "messages.[2].tool_call_id"


def test_tool_calls_must_all_be_answered(http: httpx.Client) -> None:
    error = error_of(post(http, messages=[*USER, ASSISTANT_CALL, *USER]))
    assert error["message"].endswith("The following tool_call_ids did not have response messages: call_1")
    assert error["param"] == "messages.[1].role"
    assert post(http, messages=[*USER, ASSISTANT_CALL, {"role": "tool", "tool_call_id": "call_1", "content": "r"}])


@pytest.mark.parametrize(
    ("accepted", "refused"), [("max_tokens", "max_completion_tokens"), ("max_completion_tokens", "max_tokens")]
)
def test_max_tokens_param_refuses_the_other(start: Start, accepted: str, refused: str) -> None:
    server = start(max_tokens_param=accepted)
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {KEY}"}) as http:
        assert post(http, **{accepted: 50}).status_code == 200
        error = error_of(post(http, **{refused: 50}))
    assert error["message"] == (
        f"Unsupported parameter: '{refused}' is not supported with this model. Use '{accepted}' instead."
    )
    assert (error["param"], error["code"]) == (refused, "unsupported_parameter")


def test_both_limits_accepted_by_default(http: httpx.Client) -> None:
    assert post(http, max_tokens=50).status_code == 200
    assert post(http, max_completion_tokens=50).status_code == 200


STRICT_TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}, "strict": True}}
STRICT_FORMAT = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True}}


def test_strict_refused_when_unsupported(start: Start, http: httpx.Client) -> None:
    assert post(http, tools=[STRICT_TOOL]).status_code == 200
    assert post(http, response_format=STRICT_FORMAT).status_code == 200
    server = start(strict_supported=False)
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {KEY}"}) as lax:
        tool_error = error_of(post(lax, tools=[STRICT_TOOL]))
        format_error = error_of(post(lax, response_format=STRICT_FORMAT))
        loose = {**STRICT_TOOL, "function": {"name": "lookup", "parameters": {"type": "object"}}}
        assert post(lax, tools=[loose]).status_code == 200
    assert (
        tool_error["message"] == "Additional properties are not allowed ('strict' was unexpected) - 'tools.0.function'"
    )
    assert "'response_format.json_schema'" in format_error["message"]


def test_reasoning_content_accepted_only_in_that_dialect(start: Start, http: httpx.Client) -> None:
    history = [*USER, {"role": "assistant", "content": "hi", "reasoning_content": "hmm"}, *USER]
    error = error_of(post(http, messages=history))
    assert (
        error["message"] == "Additional properties are not allowed ('reasoning_content' was unexpected) - 'messages.1'"
    )
    server = start(reasoning_field="reasoning")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {KEY}"}) as other:
        assert post(other, messages=history).status_code == 400
    server = start(reasoning_field="reasoning_content")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {KEY}"}) as deepseek:
        response = post(deepseek, messages=history)
        assert response.status_code == 200
        assert response.json()["usage"]["prompt_tokens"] == tokens(len("hello there" + "hi" + "hmm" + "hello there"))
        bad = error_of(post(deepseek, messages=[*USER, {"role": "assistant", "content": "hi", "reasoning_content": 3}]))
        assert bad["param"] == "messages[1].reasoning_content"


def test_stream_options_need_stream(http: httpx.Client) -> None:
    assert error_of(post(http, stream_options={"include_usage": True}))["param"] == "stream_options"


def test_unparseable_body_and_unknown_url(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
    assert error_of(response)["message"].startswith("We could not parse the JSON body")
    missing = http.post("/v1/chat/complete", json={})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (POST /v1/chat/complete)"


# ---------------------------------------------------------------- auth


def test_bearer_auth(server: ServerThread) -> None:
    wrong = OpenAI(base_url=server.url + "/v1", api_key="sk-wrong-key-123456", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model="m", messages=USER)
    assert "sk-wrong-key-123456" not in str(caught.value)
    response = httpx.post(server.url + "/v1/chat/completions", json={"model": "m", "messages": USER})
    assert response.status_code == 401


def test_custom_auth_header(start: Start) -> None:
    server = start(auth_header="api-key")
    url = server.url + "/v1/chat/completions"
    body = {"model": "m", "messages": USER}
    assert httpx.post(url, json=body, headers={"api-key": KEY}).status_code == 200
    assert httpx.post(url, json=body, headers={"authorization": f"Bearer {KEY}"}).status_code == 401
    assert httpx.post(url, json=body, headers={"api-key": "other"}).status_code == 401


# ---------------------------------------------------------------- fault knobs


def test_fail_next_is_one_shot(client: OpenAI, fake: FakeChat) -> None:
    fake.fail_next(429)
    fake.fail_next(400, {"error": {"message": "custom", "type": "invalid_request_error", "param": None, "code": None}})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=USER)
    assert caught.value.message.endswith("custom")
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "Echo: hello there"


def test_delay_next_trips_a_client_timeout(server: ServerThread, fake: FakeChat) -> None:
    fake.delay_next(1.0)
    with sdk(server, timeout=0.1) as impatient, pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="m", messages=USER)


def test_drop_stream_after_cuts_the_connection(http: httpx.Client, client: OpenAI, fake: FakeChat) -> None:
    fake.drop_stream_after(2)
    with (
        http.stream("POST", "/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True}) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        response.read()
    fake.drop_stream_after(1)
    seen: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError):
        seen.extend(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert len(seen) == 1
    assert sse_data(post(http, stream=True))[-1] == "[DONE]"


def test_garbage_next(http: httpx.Client, fake: FakeChat) -> None:
    fake.garbage_next()
    response = post(http)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert post(http).json()["object"] == "chat.completion"


def test_error_chunk_next(client: OpenAI, http: httpx.Client, fake: FakeChat) -> None:
    fake.error_chunk_next()
    data = sse_data(post(http, stream=True))
    assert "[DONE]" not in data
    assert json.loads(data[-1])["error"]["message"] == "The model stopped unexpectedly."
    assert all("error" not in json.loads(d) for d in data[:-1]) and len(data) > 1
    fake.error_chunk_next()
    with pytest.raises(openai.APIError) as caught:
        list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert "stopped unexpectedly" in caught.value.message


def test_fault_knobs_are_thread_safe(client: OpenAI, fake: FakeChat) -> None:
    threads = [threading.Thread(target=fake.fail_next, args=(503,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = []
    for _ in range(9):
        try:
            client.chat.completions.create(model="m", messages=USER)
            statuses.append(200)
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
    assert statuses == [503] * 8 + [200]
