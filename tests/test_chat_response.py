"""Chat Completions -> Responses: chunks and whole completions become one valid Responses stream.

Every chunk fed here is first validated as openai's ChatCompletionChunk (completions as
ChatCompletion); every event produced is validated as its openai ResponseStreamEvent model and the
whole sequence by the independent grammar checker.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from grammar import check_stream, validate_openai_event
from respgate.providers.chat.profiles import ChatProfile
from respgate.providers.chat.response import ChatToResponses, usage_of
from respgate.shell import response_shell
from respgate.streaming import StreamBuilder

Json = dict[str, Any]
EVENTS = TypeAdapter(ResponseStreamEvent)
DEEPSEEK = ChatProfile(name="deepseek", default_api_base=None, reasoning_field="reasoning_content")
OPENROUTER = ChatProfile(name="openrouter", default_api_base=None, reasoning_field="reasoning")


# --- helpers --------------------------------------------------------------------------------

def chunk(delta: Json | None = None, finish: str | None = None, usage: Json | None = None,
          *, choices: bool = True) -> Json:
    c: Json = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, "logprobs": None}]
               if choices else []}
    if usage is not None:
        c["usage"] = usage
    return c


def call(index: int, fragment: str, *, call_id: str | None = None, name: str | None = None) -> Json:
    function: Json = {"arguments": fragment}
    if name is not None:
        function["name"] = name
    delta: Json = {"index": index, "function": function}
    if call_id is not None:
        delta |= {"id": call_id, "type": "function"}
    return delta


def tools(*calls: Json) -> Json:
    return {"tool_calls": list(calls)}


def new_translator(profile: ChatProfile = DEEPSEEK) -> tuple[StreamBuilder, ChatToResponses]:
    shell = response_shell({"model": "m", "input": "hi"}, response_id="resp_1", model="m", created_at=1000)
    builder = StreamBuilder(shell, clock=lambda: 2000.0)
    return builder, ChatToResponses(builder, profile)


def run_stream(chunks: list[Json], profile: ChatProfile = DEEPSEEK, *, typed: bool = True) -> tuple[list[Json], Json]:
    builder, translate = new_translator(profile)
    events = builder.start()
    for c in chunks:
        if typed:
            ChatCompletionChunk.model_validate(c)
        events += translate.chunk(c)
    events += translate.finish()
    return events, checked(events)


def run_completion(completion: Json, profile: ChatProfile = DEEPSEEK) -> tuple[list[Json], Json]:
    ChatCompletion.model_validate(completion)
    builder, translate = new_translator(profile)
    events = builder.start() + translate.completion(completion)
    assert translate.finish() == []  # the terminal event was already made
    return events, checked(events)


def checked(events: list[Json]) -> Json:
    for event in events:
        validate_openai_event(event)
        EVENTS.validate_python(event)
    final = check_stream(events)
    Response.model_validate(final)
    return final


def summary(response: Json) -> list[tuple[Any, ...]]:
    """The output without item ids: what a translation must get right."""
    out: list[tuple[Any, ...]] = []
    for item in response["output"]:
        if item["type"] == "message":
            parts = [(p["type"], p.get("text", p.get("refusal"))) for p in item["content"]]
            out.append(("message", item["status"], parts))
        elif item["type"] == "reasoning":
            out.append(("reasoning", [p["text"] for p in item.get("content", [])],
                        [p["text"] for p in item["summary"]]))
        else:
            out.append(("function_call", item["status"], item["call_id"], item["name"], item["arguments"]))
    return out


def without_ids(response: Json) -> Json:
    return {**response, "output": [{**item, "id": f"item_{i}"} for i, item in enumerate(response["output"])]}


# --- the mapping, case by case ----------------------------------------------------------------

FIRST = {"role": "assistant", "content": "", "refusal": None}  # OpenAI's opening chunk
USAGE = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42,
         "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": 20, "audio_tokens": 0}}
THREE_CALLS = [
    chunk(FIRST),
    chunk(tools(call(0, "", call_id="call_a", name="get_weather"))),
    chunk(tools(call(1, '{"ci', call_id="call_b", name="get_time"))),
    chunk(tools(call(0, '{"city":'), call(2, "", call_id="call_c", name="get_news"))),
    chunk(tools(call(2, '{"topic": "ra'))),
    chunk(tools(call(1, 'ty": "Oslo"}'), call(0, ' "Paris"}'))),
    chunk(tools(call(2, 'in"}'))),
    chunk(None, "tool_calls"),
]

CASES: dict[str, tuple[list[Json], Any, list[tuple[Any, ...]], str, str | None]] = {
    "text": ([chunk(FIRST), chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk(None, "stop")], DEEPSEEK,
             [("message", "completed", [("output_text", "Hello")])], "completed", None),
    "refusal": ([chunk(FIRST), chunk({"refusal": "I can't"}), chunk({"refusal": " help."}), chunk(None, "stop")],
                DEEPSEEK, [("message", "completed", [("refusal", "I can't help.")])], "completed", None),
    "reasoning then text": (
        [chunk({"role": "assistant", "reasoning_content": "Let me "}), chunk({"reasoning_content": "think."}),
         chunk({"content": "Four."}), chunk(None, "stop")], DEEPSEEK,
        [("reasoning", [], ["Let me think."]), ("message", "completed", [("output_text", "Four.")])],
        "completed", None),
    "reasoning field named reasoning, details beside it read once": (
        [chunk({"reasoning": "Hm", "reasoning_details": [{"type": "reasoning.text", "text": "Hm"}]}),
         chunk({"content": "Yes"}), chunk(None, "stop")], OPENROUTER,
        [("reasoning", [], ["Hm"]), ("message", "completed", [("output_text", "Yes")])], "completed", None),
    "reasoning_details alone": (
        [chunk({"reasoning_details": [{"type": "reasoning.summary", "summary": "Sum"}]}),
         chunk({"reasoning_details": [{"type": "reasoning.text", "text": "raw"}]}),
         chunk({"content": "ok"}), chunk(None, "stop")], OPENROUTER,
        [("reasoning", [], ["Sum", "raw"]), ("message", "completed", [("output_text", "ok")])], "completed", None),
    "one tool call": (
        [chunk(FIRST), chunk(tools(call(0, "", call_id="call_1", name="get_weather"))),
         chunk(tools(call(0, '{"city"'))), chunk(tools(call(0, ': "Paris"}'))), chunk(None, "tool_calls")],
        DEEPSEEK, [("function_call", "completed", "call_1", "get_weather", '{"city": "Paris"}')], "completed", None),
    "text then a tool call": (
        [chunk({"content": "Checking."}), chunk(tools(call(0, "{}", call_id="call_1", name="now"))),
         chunk(None, "tool_calls")], DEEPSEEK,
        [("message", "completed", [("output_text", "Checking.")]),
         ("function_call", "completed", "call_1", "now", "{}")], "completed", None),
    "three parallel calls interleaved": (
        THREE_CALLS, DEEPSEEK,
        [("function_call", "completed", "call_a", "get_weather", '{"city": "Paris"}'),
         ("function_call", "completed", "call_b", "get_time", '{"city": "Oslo"}'),
         ("function_call", "completed", "call_c", "get_news", '{"topic": "rain"}')], "completed", None),
    "length": ([chunk({"content": "Once upon"}), chunk(None, "length")], DEEPSEEK,
               [("message", "incomplete", [("output_text", "Once upon")])], "incomplete", "max_output_tokens"),
    "length inside a tool call": (
        [chunk(tools(call(0, '{"a": 1}', call_id="c0", name="f"))), chunk(tools(call(1, '{"b"', call_id="c1",
                                                                                      name="g"))),
         chunk(None, "length")], DEEPSEEK,
        [("function_call", "completed", "c0", "f", '{"a": 1}'), ("function_call", "incomplete", "c1", "g", '{"b"')],
        "incomplete", "max_output_tokens"),
    "content_filter": ([chunk({"content": "Some"}), chunk(None, "content_filter")], DEEPSEEK,
                       [("message", "incomplete", [("output_text", "Some")])], "incomplete", "content_filter"),
}
# Sent by real servers, outside openai's types (so these chunks are not validated as ChatCompletionChunk).
OFF_SPEC_CASES: dict[str, tuple[list[Json], Any, list[tuple[Any, ...]], str, str | None]] = {
    "Mistral typed content with thinking": (
        [chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "mull"}]}]}),
         chunk({"content": [{"type": "text", "text": "Done"}]}), chunk(None, "stop")], DEEPSEEK,
        [("reasoning", [], ["mull"]), ("message", "completed", [("output_text", "Done")])], "completed", None),
    "unknown finish reason": ([chunk({"content": "x"}), chunk(None, "eos")], DEEPSEEK,
                              [("message", "completed", [("output_text", "x")])], "completed", None),
    "calls without index, or with one index reused": (
        [chunk(tools({"id": "x1", "function": {"name": "f", "arguments": "{}"}})),
         chunk(tools({"index": 0, "id": "x2", "function": {"name": "g", "arguments": '{"k"'}})),
         chunk(tools({"function": {"arguments": ": 2}"}})), chunk(None, "tool_calls")], DEEPSEEK,
        [("function_call", "completed", "x1", "f", "{}"), ("function_call", "completed", "x2", "g", '{"k": 2}')],
        "completed", None),
    "one id repeated across numbered calls": (
        [chunk(tools(call(0, '{"a": 0}', call_id="dup", name="f"))),
         chunk(tools(call(1, '{"a": 1}', call_id="dup", name="f"))), chunk(None, "tool_calls")], DEEPSEEK,
        [("function_call", "completed", "dup", "f", '{"a": 0}'), ("function_call", "completed", "dup", "f",
                                                                   '{"a": 1}')], "completed", None),
}


@pytest.mark.parametrize("name", [*CASES, *OFF_SPEC_CASES])
def test_chunks_map_to_responses_output(name: str) -> None:
    chunks, profile, output, status, reason = CASES.get(name) or OFF_SPEC_CASES[name]
    _, final = run_stream(chunks, profile, typed=name in CASES)
    assert summary(final) == output
    assert final["status"] == status
    assert (final["incomplete_details"] or {}).get("reason") == reason


def test_interleaved_calls_stream_each_call_in_index_order() -> None:
    events, _ = run_stream(THREE_CALLS)
    added = [e["item"]["call_id"] for e in events if e["type"] == "response.output_item.added"]
    assert added == ["call_a", "call_b", "call_c"]
    # call_a went live at its first chunk: its item was added before call_b's fragments were seen
    types = [e["type"] for e in events]
    assert types.index("response.output_item.added") < types.index("response.function_call_arguments.delta")


def test_sequential_calls_stream_live() -> None:
    builder, translate = new_translator()
    builder.start()
    translate.chunk(chunk(tools(call(0, '{"a":', call_id="c0", name="f"))))
    live = translate.chunk(chunk(tools(call(0, " 1}"))))
    assert [e["type"] for e in live] == ["response.function_call_arguments.delta"]
    second = translate.chunk(chunk(tools(call(1, "{", call_id="c1", name="g"))))
    assert [e["type"] for e in second] == [
        "response.function_call_arguments.done", "response.output_item.done", "response.output_item.added",
        "response.function_call_arguments.delta"]


def test_text_while_a_call_grows_is_said_after_the_calls() -> None:
    _, final = run_stream([chunk(tools(call(0, '{"q": ', call_id="c0", name="f"))), chunk({"content": "Also"}),
                           chunk(tools(call(0, '"x"}'))), chunk(None, "stop")])
    assert summary(final) == [("function_call", "completed", "c0", "f", '{"q": "x"}'),
                              ("message", "completed", [("output_text", "Also")])]


def test_legacy_function_call_gets_a_call_id() -> None:
    _, final = run_stream([chunk({"function_call": {"name": "h", "arguments": ""}}),
                           chunk({"function_call": {"arguments": '{"x": 1}'}}), chunk(None, "function_call")])
    (item,) = final["output"]
    assert (item["name"], item["arguments"], item["status"]) == ("h", '{"x": 1}', "completed")
    assert item["call_id"].startswith("call_")


def test_a_call_that_speaks_before_a_lower_index_waits_for_it() -> None:
    _, final = run_stream([chunk(tools(call(1, '{"b": 1}', call_id="c1", name="g"))),
                           chunk(tools(call(0, '{"a": 0}', call_id="c0", name="f"))), chunk(None, "tool_calls")])
    assert [i["call_id"] for i in final["output"]] == ["c0", "c1"]


def test_usage_with_cached_and_reasoning_tokens() -> None:
    _, final = run_stream([chunk({"content": "Hi"}), chunk(None, "stop", USAGE)])
    assert final["usage"] == {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 0},
                              "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 20},
                              "total_tokens": 42}


def test_usage_only_final_chunk() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    events, final = run_stream([chunk({"content": "Hi"}, usage=None), chunk(None, "stop"),
                                chunk(usage=usage, choices=False)])
    assert final["usage"] == {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                              "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0},
                              "total_tokens": 7}
    assert events[-1]["type"] == "response.completed"


@pytest.mark.parametrize(("usage", "expected"), [
    (None, None),
    ({"prompt_tokens": 10, "completion_tokens": 1, "prompt_cache_hit_tokens": 6, "prompt_cache_miss_tokens": 4},
     (6, 0, 11)),  # DeepSeek's own cache fields; total computed
    ({"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11,
      "prompt_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 3}}, (2, 3, 11)),  # OpenRouter
    ({"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": None,
      "completion_tokens_details": None, "cache_creation_input_tokens": 4}, (0, 4, 11)),
])
def test_usage_of(usage: Json | None, expected: tuple[int, int, int] | None) -> None:
    got = usage_of(usage)
    if expected is None:
        assert got is None
        return
    assert got is not None
    details = got["input_tokens_details"]
    assert (details["cached_tokens"], details["cache_write_tokens"], got["total_tokens"]) == expected


@pytest.mark.parametrize(("error", "code"), [
    ({"message": "upstream exploded", "type": "server_error", "code": 500}, "server_error"),
    ({"message": "slow down", "type": "rate_limit_error", "code": None}, "rate_limit_exceeded"),
    ({"message": "slow down", "code": 429}, "rate_limit_exceeded"),
    ("bare string", "server_error"),
])
def test_error_chunk_fails_the_response(error: Any, code: str) -> None:
    builder, translate = new_translator()
    events = builder.start() + translate.chunk(chunk({"content": "Part"}))
    events += translate.chunk({"error": error})
    assert translate.chunk(chunk({"content": "more"})) == [] and translate.finish() == []
    final = checked(events)
    assert final["status"] == "failed" and final["error"]["code"] == code
    assert final["error"]["message"] == (error["message"] if isinstance(error, dict) else error)
    assert summary(final) == [("message", "incomplete", [("output_text", "Part")])]


def test_other_choices_are_ignored() -> None:
    c = chunk({"content": "A"})
    c["choices"].append({"index": 1, "delta": {"content": "B"}, "finish_reason": None})
    _, final = run_stream([c, chunk(None, "stop")])
    assert summary(final) == [("message", "completed", [("output_text", "A")])]


def test_completion_equals_its_stream() -> None:
    message = {"role": "assistant", "content": "Four.", "refusal": None, "reasoning_content": "2+2",
               "tool_calls": [{"id": "call_1", "type": "function",
                               "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'}}]}
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                  "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls", "logprobs": None}],
                  "usage": USAGE}
    _, from_json = run_completion(completion)
    _, from_stream = run_stream([chunk({"reasoning_content": "2"}), chunk({"reasoning_content": "+2"}),
                                 chunk({"content": "Four."}), chunk(tools(call(0, '{"a": 2, ', call_id="call_1",
                                                                               name="add"))),
                                 chunk(tools(call(0, '"b": 2}'))), chunk(None, "tool_calls", USAGE)])
    assert without_ids(from_json) == without_ids(from_stream)
    assert summary(from_json)[0] == ("reasoning", [], ["2+2"])


def test_completion_error_body_fails() -> None:
    builder, translate = new_translator()
    events = builder.start() + translate.completion({"error": {"message": "nope", "code": "invalid_prompt"}})
    final = checked(events)
    assert final["error"] == {"code": "invalid_prompt", "message": "nope"}


# --- property: any split of a stream gives the completion's Response ---------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | TEXT,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                           max_leaves=6)
ARGUMENTS = st.builds(lambda obj, compact: json.dumps(obj, separators=(",", ":") if compact else None),
                      st.dictionaries(TEXT, JSON_VALUES, max_size=4), st.booleans())
TOOL_CALLS = st.lists(st.tuples(st.sampled_from(["get_weather", "lookup", "send_mail"]), ARGUMENTS), max_size=3)
_RANK = {"reasoning_content": 0, "content": 1, "refusal": 2, "tool_calls": 3}


def split(data: st.DataObject, text: str) -> list[str]:
    if len(text) < 2:
        return [text] if text else []
    cuts = sorted(data.draw(st.sets(st.integers(1, len(text) - 1), max_size=6)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def interleave(data: st.DataObject, queues: list[list[Json]]) -> list[Json]:
    """One random merge of the queues, each queue's order kept."""
    queues = [list(q) for q in queues if q]
    out: list[Json] = []
    while queues:
        q = queues[data.draw(st.integers(0, len(queues) - 1))]
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


def chunked(data: st.DataObject, pieces: list[tuple[str, Any]]) -> list[Json]:
    """Group consecutive pieces into chunk deltas (a field, or a call's index, at most once per chunk)."""
    deltas: list[Json] = []
    for field, value in pieces:
        last: Json = deltas[-1] if deltas else {}
        fits = (bool(last) and _RANK[field] >= max(_RANK[k] for k in last)
                and (field not in last or (field == "tool_calls"
                                           and all(c["index"] != value["index"] for c in last[field]))))
        current: Json = last if fits and not data.draw(st.booleans()) else {}
        if current is not last:
            deltas.append(current)
        if field == "tool_calls":
            current.setdefault(field, []).append(value)
        else:
            current[field] = value
    return [chunk(d) for d in deltas]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), reasoning=TEXT, content=TEXT, refusal=st.one_of(st.just(""), TEXT), calls=TOOL_CALLS,
       finish=st.sampled_from(["stop", "length", "content_filter", "tool_calls"]),
       usage=st.one_of(st.none(), st.just(USAGE)))
def test_any_split_of_a_stream_gives_the_completions_response(
        data: st.DataObject, reasoning: str, content: str, refusal: str, calls: list[tuple[str, str]],
        finish: str, usage: Json | None) -> None:
    message: Json = {"role": "assistant", "content": content or None, "refusal": refusal or None,
                     "reasoning_content": reasoning or None}
    if calls:
        message["tool_calls"] = [{"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
                                 for i, (n, a) in enumerate(calls)]
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                  "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                  "usage": usage}
    _, expected = run_completion(completion)

    pieces: list[tuple[str, Any]] = [(f, p) for f, text in (("reasoning_content", reasoning), ("content", content),
                                                            ("refusal", refusal)) for p in split(data, text)]
    queues = []
    for i, (name, arguments) in enumerate(calls):
        fragments = split(data, arguments) or [""]
        queue = [call(i, fragments[0], call_id=f"call_{i}", name=name)]
        queues.append(queue + [call(i, f) for f in fragments[1:]])
    pieces += [("tool_calls", c) for c in interleave(data, queues)]
    chunks = [chunk(FIRST), *chunked(data, pieces)]
    if data.draw(st.booleans()) and len(chunks) > 1:
        chunks[-1]["choices"][0]["finish_reason"] = finish
    else:
        chunks.append(chunk(None, finish))
    if usage is not None:
        if data.draw(st.booleans()):
            chunks[-1]["usage"] = usage
        else:
            chunks.append(chunk(usage=usage, choices=False))
    _, streamed = run_stream(chunks)
    assert without_ids(streamed) == without_ids(expected)
