"""The mock provider: every mode streams in grammar, and create agrees with stream."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from openai.types.responses import Response

from grammar import check_stream, validate_openai_event
from respgate.deployments import Deployment
from respgate.providers.base import ProviderRequest
from respgate.providers.mock import MockProvider, count_tokens
from respgate.shell import response_shell

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                           "days": {"type": "integer"}},
                          "required": ["city", "days"]}}
TIME = {"type": "function", "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def request(mode: str, items: list[dict[str, Any]], extra: dict[str, Any] | None = None,
            **body: Any) -> ProviderRequest:
    deployment = Deployment(model_name=f"mock-{mode}", provider="mock", upstream_model=mode,
                            extra=extra or {})
    full = {"model": f"mock-{mode}", "input": items, **body}
    return ProviderRequest(deployment=deployment, body=full, response_id="resp_test",
                           shell=response_shell(full, response_id="resp_test", model=f"mock-{mode}",
                                                created_at=1000),
                           input_items=items)


class Sleeps:
    """An injected sleep that records instead of waiting (tests never measure wall-clock time)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def provider(sleeps: Sleeps | None = None) -> MockProvider:
    return MockProvider(clock=lambda: 2000.0, sleep=sleeps or Sleeps())


async def stream_events(req: ProviderRequest, mock: MockProvider | None = None) -> list[dict[str, Any]]:
    return [event.obj async for event in (mock or provider()).stream(req)]


def without_ids(response: dict[str, Any]) -> dict[str, Any]:
    """The response with item ids and call ids replaced by their positions."""
    output = [{**item, **{k: f"<{k}{n}>" for k in ("id", "call_id") if k in item}}
              for n, item in enumerate(response["output"])]
    return {**response, "output": output}


async def run(req: ProviderRequest) -> dict[str, Any]:
    """Stream and create the same request; check grammar, types and agreement; the final response."""
    events = await stream_events(req)
    for event in events:
        validate_openai_event(event)
    streamed = check_stream(events)
    Response.model_validate(streamed)
    created = await provider().create(req)
    assert without_ids(created) == without_ids(streamed)
    return streamed


def output_text(response: dict[str, Any]) -> str:
    return "".join(part["text"] for item in response["output"] if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")


@pytest.mark.parametrize("mode", ["echo", "recall", "tool", "reasoning", "something-else"])
async def test_every_mode_streams_in_grammar_and_agrees_with_create(mode: str) -> None:
    response = await run(request(mode, [user("What is the weather in Paris?")], tools=[WEATHER]))
    assert response["status"] == "completed" and response["output"]


async def test_echo_answers_with_the_last_user_text_in_word_deltas() -> None:
    req = request("echo", [user("first"), assistant("ok"), user("say  this back")])
    events = await stream_events(req)
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas == ["say  ", "this ", "back"]
    assert output_text(check_stream(events)) == "say  this back"


async def test_unknown_model_behaves_as_echo() -> None:
    assert output_text(await run(request("gpt-imaginary", [user("hello there")]))) == "hello there"


async def test_recall_joins_every_user_message_of_the_conversation() -> None:
    items = [user("My name is Alice."), assistant("Hi Alice"), user("I like tea."), assistant("Noted"),
             user("What do you know?")]
    answer = output_text(await run(request("recall", items)))
    assert answer == "My name is Alice. | I like tea. | What do you know?"


async def test_tool_calls_the_named_function_with_required_strings_filled() -> None:
    response = await run(request("tool", [user("use get_time please")], tools=[WEATHER, TIME]))
    (call,) = response["output"]
    assert call["type"] == "function_call" and call["name"] == "get_time"
    assert json.loads(call["arguments"]) == {"zone": "use get_time please"}
    assert call["call_id"].startswith("call_")


async def test_tool_defaults_to_the_first_function_and_skips_non_string_properties() -> None:
    response = await run(request("tool", [user("Paris")], tools=[{"type": "web_search"}, WEATHER, TIME]))
    (call,) = response["output"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}


async def test_tool_answers_with_the_function_output() -> None:
    items = [user("Paris"), {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                             "arguments": '{"city":"Paris"}'},
             {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"}]
    response = await run(request("tool", items, tools=[WEATHER]))
    assert output_text(response) == "Tool result: sunny, 21C"


async def test_tool_without_tools_echoes() -> None:
    assert output_text(await run(request("tool", [user("no tools here")]))) == "no tools here"


async def test_reasoning_streams_a_summary_then_the_answer() -> None:
    req = request("reasoning", [user("Why is the sky blue?")], include=["reasoning.encrypted_content"])
    response = await run(req)
    reasoning, message = response["output"]
    assert reasoning["type"] == "reasoning" and "Why is the sky blue?" in reasoning["summary"][0]["text"]
    assert reasoning["encrypted_content"] and message["type"] == "message"
    assert output_text(response) == "Why is the sky blue?"
    summary_chars = len(reasoning["summary"][0]["text"])
    assert response["usage"]["output_tokens_details"]["reasoning_tokens"] == math.ceil(summary_chars / 4)


async def test_fail_ends_with_a_server_error() -> None:
    req = request("fail", [user("anything")])
    events = await stream_events(req)
    response = check_stream(events)
    assert events[-1]["type"] == "response.failed"
    assert response["error"]["code"] == "server_error" and response["output"] == []
    Response.model_validate(response)
    assert without_ids(await provider().create(req)) == without_ids(response)


async def test_json_schema_echoes_json_input() -> None:
    fmt = {"format": {"type": "json_schema", "name": "answer", "strict": True,
                      "schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"], "additionalProperties": False}}}
    text = '{"city": "Oslo"}'
    assert output_text(await run(request("echo", [user(text)], text=fmt))) == text
    filled = output_text(await run(request("echo", [user("Bergen")], text=fmt)))
    assert json.loads(filled) == {"city": "Bergen"}


async def test_max_output_tokens_truncates_and_ends_incomplete() -> None:
    words = "one two three four five six seven eight nine ten"
    events = await stream_events(request("echo", [user(words)], max_output_tokens=3))
    assert events[-1]["type"] == "response.incomplete"
    response = check_stream(events)
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert output_text(response) == words[:12]
    assert response["output"][0]["status"] == "incomplete"
    assert response["usage"]["output_tokens"] == 3
    assert without_ids(await provider().create(request("echo", [user(words)], max_output_tokens=3))) \
        == without_ids(response)
    untouched = await run(request("echo", [user(words)], max_output_tokens=100))
    assert untouched["status"] == "completed" and output_text(untouched) == words


async def test_max_output_tokens_can_cut_reasoning_before_any_answer() -> None:
    response = check_stream(await stream_events(request("reasoning", [user("a long question")],
                                                        max_output_tokens=2)))
    assert response["status"] == "incomplete"
    assert [item["type"] for item in response["output"]] == ["reasoning"]


async def test_mock_response_fixes_the_answer() -> None:
    response = await run(request("recall", [user("ignored")], extra={"mock_response": "Fixed answer."}))
    assert output_text(response) == "Fixed answer."


async def test_usage_counts_four_characters_a_token() -> None:
    items = [user("12345678"), assistant("abcd")]
    req = request("echo", items, instructions="abcd")
    usage = (await run(req))["usage"]
    assert usage["input_tokens"] == math.ceil((8 + 4 + 4) / 4) == count_tokens(items, "abcd")
    assert usage["output_tokens"] == math.ceil(len("12345678") / 4)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    call = {"type": "function_call", "call_id": "c", "name": "fn", "arguments": "{}"}
    assert count_tokens([call, {"type": "function_call_output", "call_id": "c", "output": "xyz"}]) == 2


async def test_latency_and_pace_are_slept_at_the_right_places() -> None:
    sleeps = Sleeps()
    mock = provider(sleeps)
    stream = mock.stream(request("echo", [user("a b c")], extra={"mock_latency_ms": 250,
                                                                  "mock_tokens_per_second": 4}))
    first = await anext(stream)
    assert first.type == "response.created" and sleeps.calls == []
    await anext(stream)
    assert sleeps.calls == [0.25]
    rest = [e async for e in stream]
    assert rest[-1].type == "response.completed"
    assert sleeps.calls == [0.25, 0.25, 0.25, 0.25]  # latency, then one pause per delta
    create_sleeps = Sleeps()
    await provider(create_sleeps).create(request("echo", [user("a b c")], extra={
        "mock_latency_ms": 250, "mock_tokens_per_second": 4}))
    assert create_sleeps.calls == [0.25, 0.75]


async def test_no_pacing_means_no_sleeping() -> None:
    sleeps = Sleeps()
    await stream_events(request("echo", [user("a b c")]), provider(sleeps))
    assert sleeps.calls == []


async def test_the_request_shell_is_not_mutated() -> None:
    req = request("echo", [user("x")])
    before = json.dumps(req.shell, sort_keys=True)
    await run(req)
    assert json.dumps(req.shell, sort_keys=True) == before
