"""Converse -> Responses: the JSON answer and its binary ConverseStream (split anyhow) give one Response;
stop reasons, usage, reasoning signatures, in-stream exceptions and error mapping."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.bedrock_upstream import FakeBedrock, encode_stream, event_frame, exception_frame, stream_events
from grammar import check_stream
from respgate.deployments import Deployment
from respgate.providers.bedrock.errors import bedrock_error
from respgate.providers.bedrock.eventstream import EventStreamDecoder
from respgate.providers.bedrock.response import ConverseToResponses
from respgate.shell import response_shell
from respgate.streaming import StreamBuilder

TOOLS = {"tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {
    "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}},
    {"toolSpec": {"name": "clock", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]}
THINK = {"thinking": {"type": "enabled", "budget_tokens": 1024}}


def _answer(text: str, **fields: Any) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": [{"text": text}]}], **fields}
    return FakeBedrock().respond(body)


ANSWERS = {
    "text": _answer("hello there, a longer sentence"),
    "tools": _answer("call all", toolConfig=TOOLS),
    "thinking_tools_redacted": _answer("call lookup secret", toolConfig=TOOLS, additionalModelRequestFields=THINK),
    "truncated": _answer("a long sentence cut short", inferenceConfig={"maxTokens": 2}),
}


def _builder() -> StreamBuilder:
    shell = response_shell({"model": "b", "input": "hi"}, response_id="resp_1", model="b", created_at=1000)
    return StreamBuilder(shell, clock=lambda: 2000.0)


def from_json(answer: dict[str, Any]) -> dict[str, Any]:
    b = _builder()
    b.start()
    ConverseToResponses(b).output(answer)
    return b.response


def from_stream(raw: bytes, cuts: list[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    b = _builder()
    t = ConverseToResponses(b)
    events = b.start()
    decoder = EventStreamDecoder()
    bounds = [0, *sorted(set(cuts)), len(raw)]
    for lo, hi in itertools.pairwise(bounds):
        for frame in decoder.feed(raw[lo:hi]):
            events += t.event(frame.name, frame.payload) if frame.kind == "event" else \
                t.fail(frame.name, frame.payload["message"])
    return b.response, events + t.finish()


def _without_ids(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "output": [{k: v for k, v in o.items() if k != "id"} for o in response["output"]]}


@pytest.mark.parametrize("name", ANSWERS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_split_of_the_stream_gives_the_json_response(name: str, data: st.DataObject) -> None:
    answer = ANSWERS[name]
    raw = encode_stream(answer, piece=data.draw(st.integers(1, 7)))
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=30))
    streamed, events = from_stream(raw, cuts)
    assert _without_ids(streamed) == _without_ids(from_json(answer))
    assert check_stream(events) == streamed


def test_tools_thinking_and_redaction_become_items() -> None:
    r = from_json(ANSWERS["thinking_tools_redacted"])
    assert [o["type"] for o in r["output"]] == ["reasoning", "reasoning", "function_call"]
    signed, redacted, call = r["output"]
    assert signed["summary"][0]["text"] == "Thinking about: call lookup secret"
    assert signed["encrypted_content"].startswith("bedrock-signature:")
    assert redacted["encrypted_content"] == "bedrock-redacted:c2VjcmV0LXRob3VnaHQ=" and redacted["summary"] == []
    assert call["name"] == "lookup" and orjson.loads(call["arguments"]) == {"q": "call lookup secret"}
    assert r["status"] == "completed"


@pytest.mark.parametrize(("stop", "status", "reason"), [
    ("end_turn", "completed", None), ("tool_use", "completed", None), ("stop_sequence", "completed", None),
    ("max_tokens", "incomplete", "max_output_tokens"), ("guardrail_intervened", "incomplete", "content_filter"),
    ("content_filtered", "incomplete", "content_filter"), ("malformed_tool_use", "failed", None)])
def test_stop_reasons(stop: str, status: str, reason: str | None) -> None:
    r = from_json({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}, "stopReason": stop,
                   "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}})
    assert r["status"] == status
    assert (r.get("incomplete_details") or {}).get("reason") == reason


def test_usage_counts_cache_tokens_as_input() -> None:
    r = from_json({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}, "stopReason": "end_turn",
                   "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 45, "cacheReadInputTokens": 20,
                             "cacheWriteInputTokens": 10}})
    assert r["usage"] == {"input_tokens": 40, "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 10},
                          "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 45}


def test_an_exception_frame_mid_stream_fails_the_response() -> None:
    frames = [event_frame(n, p) for n, p in stream_events(ANSWERS["text"])][:3]
    raw = b"".join(frames) + exception_frame("ThrottlingException", "Too many tokens, please wait.")
    response, events = from_stream(raw, [7])
    assert response["status"] == "failed"
    assert response["error"] == {"code": "rate_limit_exceeded", "message": "Too many tokens, please wait."}
    check_stream(events)


def test_a_corrupt_frame_is_a_bad_gateway() -> None:
    raw = bytearray(event_frame("messageStart", {"role": "assistant"}))
    raw[-1] ^= 0xFF
    with pytest.raises(Exception) as broken:
        EventStreamDecoder().feed(bytes(raw))
    assert getattr(broken.value, "status", None) == 502


D = Deployment("b", "bedrock", "anthropic.claude", extra={"aws_region_name": "us-east-1"})


@pytest.mark.parametrize(("status", "name", "expected"), [
    (429, "ThrottlingException", 429), (400, "ValidationException", 400), (403, "AccessDeniedException", 502),
    (403, "UnrecognizedClientException", 502), (408, "ModelTimeoutException", 504),
    (503, "ServiceUnavailableException", 503), (500, "InternalServerException", 500),
    (500, "ModelStreamErrorException", 500), (404, "ResourceNotFoundException", 404), (418, None, 418)])
def test_error_mapping(status: int, name: str | None, expected: int) -> None:
    err = bedrock_error(status, f"{name}:http://internal.amazon.com/coral/" if name else None,
                        orjson.dumps({"message": "provider says no"}), D)
    assert err.status == expected
    assert "provider says no" in err.message
