"""Anthropic Messages -> Responses: whole messages and stream events through the StreamBuilder.

Messages and event sequences are made by the strict fake's own encoder (validated with
anthropic.types), so the translation is checked against Anthropic's real shapes.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from anthropic.types import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.anthropic_upstream import stream_events
from grammar import check_stream
from respgate.providers.anthropic.request import REDACTED_PREFIX, SIGNATURE_PREFIX
from respgate.providers.anthropic.response import REFUSAL_TEXT, MessagesToResponses, usage_of
from respgate.shell import response_shell
from respgate.streaming import StreamBuilder

Json = dict[str, Any]
USAGE = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 2}


def message(content: list[Json], stop: str = "end_turn", usage: Json | None = None) -> Json:
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": usage or USAGE}
    Message.model_validate(body)
    return body


def builder() -> StreamBuilder:
    return StreamBuilder(response_shell({"model": "claude", "input": "x"}, response_id="resp_1", model="claude",
                                        created_at=1.0), clock=lambda: 2.0)


def from_json(msg: Json) -> Json:
    b = builder()
    b.start()
    MessagesToResponses(b).message(msg)
    return b.response


def from_stream(events: list[Json]) -> tuple[list[Json], Json]:
    b = builder()
    translate = MessagesToResponses(b)
    out = b.start()
    for event in events:
        out += translate.event(event)
    out += translate.finish()
    return out, b.response


def shape(response: Json) -> list[Json]:
    """Output items without ids; arguments parsed (Anthropic streams `{"a": 1}` where JSON has `{"a":1}`)."""
    return [{k: (orjson.loads(v) if k == "arguments" else v) for k, v in item.items() if k != "id"}
            for item in response["output"]]


THINKING = {"type": "thinking", "thinking": "hmm", "signature": "SIG"}
CASES: dict[str, tuple[Json, list[Json], str, str | None]] = {
    "text": (message([{"type": "text", "text": "Hi"}]),
             [{"type": "message", "text": "Hi"}], "completed", None),
    "thinking_then_tool": (message([THINKING, {"type": "tool_use", "id": "toolu_1", "name": "f",
                                                "input": {"a": 1}}], "tool_use"),
                           [{"type": "reasoning", "summary": "hmm", "encrypted_content": SIGNATURE_PREFIX + "SIG"},
                            {"type": "function_call", "call_id": "toolu_1", "arguments": '{"a":1}'}],
                           "completed", None),
    "redacted": (message([{"type": "redacted_thinking", "data": "D"}, {"type": "text", "text": "ok"}]),
                 [{"type": "reasoning", "summary": None, "encrypted_content": REDACTED_PREFIX + "D"},
                  {"type": "message", "text": "ok"}], "completed", None),
    "two_thinking_blocks_two_items": (
        message([THINKING, {**THINKING, "signature": "S2"}]),
        [{"type": "reasoning", "summary": "hmm", "encrypted_content": SIGNATURE_PREFIX + "SIG"},
         {"type": "reasoning", "summary": "hmm", "encrypted_content": SIGNATURE_PREFIX + "S2"}],
        "completed", None),
    "empty_tool_input": (message([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "tool_use"),
                         [{"type": "function_call", "call_id": "t", "arguments": "{}"}], "completed", None),
    "max_tokens": (message([{"type": "text", "text": "cut"}], "max_tokens"),
                   [{"type": "message", "text": "cut"}], "incomplete", "max_output_tokens"),
    "refusal": (message([], "refusal"), [{"type": "message", "refusal": REFUSAL_TEXT}], "completed", None),
}


def _summarise(item: Json) -> Json:
    if item["type"] == "message":
        part = item["content"][-1]
        return {"type": "message", part["type"].replace("output_", ""): part.get("text", part.get("refusal"))}
    if item["type"] == "reasoning":
        return {"type": "reasoning", "summary": item["summary"][0]["text"] if item["summary"] else None,
                "encrypted_content": item.get("encrypted_content")}
    return {"type": "function_call", "call_id": item["call_id"], "arguments": item["arguments"]}


@pytest.mark.parametrize("name", CASES)
def test_message_and_its_stream_map_to_the_same_response(name: str) -> None:
    msg, items, status, reason = CASES[name]
    as_json = from_json(msg)
    assert [_summarise(i) for i in as_json["output"]] == items
    assert as_json["status"] == status
    assert (as_json["incomplete_details"] or {}).get("reason") == reason
    events, streamed = from_stream(stream_events(msg))
    assert check_stream(events)["status"] == status
    assert shape(streamed) == shape(as_json) and streamed["usage"] == as_json["usage"]


def test_usage_counts_cached_tokens_as_input() -> None:
    assert usage_of(USAGE) == {"input_tokens": 15,
                               "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 2},
                               "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                               "total_tokens": 20}
    assert usage_of({}) is None


def test_error_event_fails_with_usage_so_far() -> None:
    msg = message([{"type": "text", "text": "partial answer"}])
    events = [*stream_events(msg)[:5], {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}]
    out, response = from_stream(events)
    final = check_stream(out)
    assert final["status"] == "failed" and final["error"] == {"code": "rate_limit_exceeded", "message": "slow"}
    assert response["usage"]["input_tokens"] == 15


TEXT = st.text(min_size=1, max_size=30)


def split(data: st.DataObject, text: str) -> list[str]:
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(text) - 1, 1)), max_size=6)))
    bounds = [0, *[c for c in cuts if c < len(text)], len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if text[a:b]]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), thinking=TEXT, text=TEXT, with_tool=st.booleans(),
       args=st.dictionaries(st.text(max_size=5), st.integers(-1000, 1000), max_size=3))
def test_any_split_of_a_stream_gives_the_messages_response(data: st.DataObject, thinking: str, text: str,
                                                           args: Json, with_tool: bool) -> None:
    content: list[Json] = [{"type": "thinking", "thinking": thinking, "signature": "S"}, {"type": "text", "text": text}]
    if with_tool:
        content.append({"type": "tool_use", "id": "toolu_1", "name": "f", "input": args})
    msg = message(content, "tool_use" if with_tool else "end_turn")
    events: list[Json] = [{"type": "message_start", "message": {**msg, "content": [], "stop_reason": None}}]
    for index, block in enumerate(content):
        kind = block["type"]
        opening = {"thinking": {"type": "thinking", "thinking": "", "signature": ""},
                   "text": {"type": "text", "text": ""}, "tool_use": {**block, "input": {}}}[kind]
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        if kind == "thinking":
            events += [{"type": "content_block_delta", "index": index,
                        "delta": {"type": "thinking_delta", "thinking": p}} for p in split(data, thinking)]
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "signature_delta", "signature": "S"}})
        elif kind == "text":
            events += [{"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}
                       for p in split(data, text)]
        else:
            events += [{"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": p}}
                       for p in split(data, orjson.dumps(args).decode())]
        events.append({"type": "content_block_stop", "index": index})
    events += [{"type": "message_delta", "delta": {"stop_reason": msg["stop_reason"]}, "usage": msg["usage"]},
               {"type": "message_stop"}]
    out, streamed = from_stream(events)
    check_stream(out)
    assert shape(streamed) == shape(from_json(msg))
