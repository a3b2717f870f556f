"""The response shell, the stream builder, replay, and the grammar checker that judges them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from grammar import check_stream, validate_openai_event
from respgate.shell import response_shell
from respgate.streaming import StreamBuilder, replay

EVENTS = TypeAdapter(ResponseStreamEvent)  # the union, as the SDK parses a stream

OPENAI_KEY_ORDER = [
    "id", "object", "created_at", "status", "background", "completed_at", "error", "frequency_penalty",
    "incomplete_details", "instructions", "max_output_tokens", "max_tool_calls", "model", "output",
    "parallel_tool_calls", "presence_penalty", "previous_response_id", "prompt_cache_key",
    "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "temperature",
    "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "usage", "user", "metadata",
]
# The `required` list of the Open Responses ResponseResource schema.
OPEN_RESPONSES_REQUIRED = {
    "id", "object", "created_at", "completed_at", "status", "incomplete_details", "model",
    "previous_response_id", "instructions", "output", "error", "tools", "tool_choice", "truncation",
    "parallel_tool_calls", "text", "top_p", "presence_penalty", "frequency_penalty", "top_logprobs",
    "temperature", "reasoning", "user", "usage", "max_output_tokens", "max_tool_calls", "store",
    "background", "service_tier", "metadata", "safety_identifier", "prompt_cache_key",
}
USAGE = {"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
         "output_tokens": 5,
         "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 8}
WEATHER = {"type": "function", "name": "get_weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def shell(**body: Any) -> dict[str, Any]:
    return response_shell({"model": "m", "input": "hi", **body}, response_id="resp_1", model="m",
                          created_at=1000.5)


def validated(events: list[dict[str, Any]]) -> dict[str, Any]:
    for event in events:
        validate_openai_event(event)
        EVENTS.validate_python(event)
    final = check_stream(events)
    Response.model_validate(final)
    return final


# --- shell ------------------------------------------------------------------------------------

def test_shell_has_openai_fields_in_openai_order_with_openai_defaults() -> None:
    s = shell()
    assert list(s) == OPENAI_KEY_ORDER
    assert set(s) >= OPEN_RESPONSES_REQUIRED
    assert s["created_at"] == 1000 and s["status"] == "in_progress" and s["output"] == []
    assert s["reasoning"] == {"effort": None, "summary": None}
    assert s["text"] == {"format": {"type": "text"}, "verbosity": "medium"}
    assert (s["tool_choice"], s["tools"], s["top_p"], s["temperature"]) == ("auto", [], 1.0, 1.0)
    assert (s["truncation"], s["metadata"], s["store"], s["background"]) == ("disabled", {}, True, False)
    assert (s["service_tier"], s["top_logprobs"], s["parallel_tool_calls"]) == ("default", 0, True)
    assert all(s[k] is None for k in ("instructions", "user", "usage", "error", "previous_response_id",
                                       "max_tool_calls", "prompt_cache_key", "safety_identifier"))
    Response.model_validate(s)


def test_shell_echoes_the_request() -> None:
    fmt = {"type": "json_schema", "name": "out", "schema": {"type": "object"}}
    s = shell(instructions="be brief", temperature=0, top_p=0.5, max_output_tokens=64, store=False,
              background=True, metadata={"k": "v"}, user="u1", previous_response_id="resp_0",
              reasoning={"effort": "high"}, text={"format": fmt, "verbosity": "low"}, tools=[WEATHER],
              tool_choice="required", service_tier="fast", conversation="conv_1",
              prompt={"id": "pmpt_1"})
    assert (s["instructions"], s["temperature"], s["top_p"]) == ("be brief", 0.0, 0.5)
    assert isinstance(s["temperature"], float)
    assert (s["max_output_tokens"], s["store"], s["background"]) == (64, False, True)
    assert (s["metadata"], s["user"], s["previous_response_id"]) == ({"k": "v"}, "u1", "resp_0")
    assert s["reasoning"] == {"effort": "high", "summary": None}
    assert s["text"] == {"format": {"type": "json_schema", "description": None, "name": "out",
                                    "schema": {"type": "object"}, "strict": False}, "verbosity": "low"}
    assert s["tools"] == [{"type": "function", "description": None, "name": "get_weather",
                           "parameters": WEATHER["parameters"], "strict": True}]
    assert (s["tool_choice"], s["service_tier"]) == ("required", "priority")
    assert s["conversation"] == {"id": "conv_1"}
    assert s["prompt"] == {"id": "pmpt_1", "variables": None, "version": None}
    assert list(s).index("conversation") == list(s).index("completed_at") + 1
    Response.model_validate(s)


# --- builder ----------------------------------------------------------------------------------

def run_text(words: list[str]) -> tuple[list[dict[str, Any]], StreamBuilder]:
    b = StreamBuilder(shell(), clock=lambda: 2000.0)
    events = b.start()
    for w in words:
        events += b.text_delta(w)
    events += b.finish(USAGE)
    return events, b


def test_text_stream_has_openai_event_order_and_shapes() -> None:
    events, b = run_text(["Hello", " world"])
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = validated(events)
    assert final is b.response
    msg = final["output"][0]
    assert msg["id"].startswith("msg_") and msg["status"] == "completed" and msg["role"] == "assistant"
    assert msg["content"] == [{"type": "output_text", "annotations": [], "logprobs": [],
                               "text": "Hello world"}]
    assert final["usage"] == USAGE and final["completed_at"] == 2000 and final["status"] == "completed"
    assert events[0]["response"]["output"] == [] and events[0]["response"]["status"] == "in_progress"
    assert events[4] == {"type": "response.output_text.delta", "sequence_number": 4, "item_id": msg["id"],
                         "output_index": 0, "content_index": 0, "delta": "Hello", "logprobs": []}


def mixed_stream() -> tuple[list[dict[str, Any]], StreamBuilder]:
    b = StreamBuilder(shell(), clock=lambda: 2000.0)
    events = b.start()
    events += b.reasoning_summary_delta("First ")
    events += b.reasoning_summary_delta("thought.")
    events += b.reasoning_summary_delta("Second.", new_part=True)
    events += b.reasoning_text_delta("raw ")
    events += b.reasoning_text_delta("chain")
    events += b.reasoning_encrypted_content("gAAAA")
    events += b.text_delta("Let me check. ")
    events += b.refusal_delta("Not that, though.")
    events += b.function_call("get_weather", "call_1", '{"city":')
    events += b.function_call("get_weather", "call_1", '"Paris"}')
    events += b.function_call("get_time", "call_2", "{}")
    events += b.add_item({"id": "ws_1", "type": "web_search_call", "status": "completed",
                          "action": {"type": "search", "query": "weather"}})
    events += b.text_delta("Done.")
    events += b.finish(USAGE)
    return events, b


def test_every_kind_of_item_streams_in_grammar() -> None:
    events, builder = mixed_stream()
    final = validated(events)
    assert final is builder.response
    kinds = [item["type"] for item in final["output"]]
    assert kinds == ["reasoning", "message", "function_call", "function_call", "web_search_call", "message"]
    reasoning = final["output"][0]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "First thought."},
                                    {"type": "summary_text", "text": "Second."}]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "raw chain"}]
    assert reasoning["encrypted_content"] == "gAAAA" and reasoning["id"].startswith("rs_")
    assert [p["type"] for p in final["output"][1]["content"]] == ["output_text", "refusal"]
    call = final["output"][2]
    assert call["id"].startswith("fc_")
    assert (call["name"], call["call_id"], call["arguments"]) == ("get_weather", "call_1", '{"city":"Paris"}')
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["name"], e["arguments"]) for e in done] == [("get_weather", '{"city":"Paris"}'),
                                                           ("get_time", "{}")]
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert added[0] == {"id": reasoning["id"], "type": "reasoning", "summary": []}
    assert added[2]["arguments"] == "" and added[2]["status"] == "in_progress"


def test_background_stream_opens_queued() -> None:
    b = StreamBuilder(shell(background=True))
    events = b.start() + b.text_delta("x") + b.finish(None)
    assert [e["type"] for e in events[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert [e["response"]["status"] for e in events[:3]] == ["queued", "queued", "in_progress"]
    validated(events)


def test_incomplete_finish_closes_the_open_item_as_incomplete() -> None:
    b = StreamBuilder(shell())
    events = b.text_delta("partial")
    events += b.finish(USAGE, status="incomplete", incomplete_reason="max_output_tokens")
    assert events[0]["type"] == "response.created"  # the first report starts the stream
    final = validated(events)
    assert events[-1]["type"] == "response.incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"} and final["completed_at"] is None
    assert final["output"][0]["status"] == "incomplete"


def test_fail_ends_with_response_failed_and_keeps_partial_output() -> None:
    b = StreamBuilder(shell())
    events = b.start() + b.function_call("f", "call_1", "{") + b.fail("server_error", "boom")
    final = validated(events)
    assert events[-1]["type"] == "response.failed"
    assert final["error"] == {"code": "server_error", "message": "boom"} and final["status"] == "failed"
    assert final["output"][0]["status"] == "incomplete"


def test_builder_refuses_reports_after_the_end_and_unknown_endings() -> None:
    b = StreamBuilder(shell())
    with pytest.raises(ValueError, match="completed or incomplete"):
        b.finish(None, status="failed")
    b.finish(None)
    with pytest.raises(RuntimeError):
        b.text_delta("late")
    with pytest.raises(RuntimeError):
        b.start()


def test_builder_does_not_mutate_the_shell() -> None:
    s = shell()
    before = copy.deepcopy(s)
    run = StreamBuilder(s)
    run.text_delta("x")
    run.finish(USAGE)
    assert s == before


# --- replay -----------------------------------------------------------------------------------

def merge_deltas(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live stream as replay promises it: each part's deltas merged into one, renumbered."""
    out: list[dict[str, Any]] = []
    for event in events:
        prev = out[-1] if out else None
        if (prev is not None and event["type"].endswith(".delta") and prev["type"] == event["type"]
                and {k: v for k, v in prev.items() if k not in ("delta", "sequence_number")}
                == {k: v for k, v in event.items() if k not in ("delta", "sequence_number")}):
            prev["delta"] += event["delta"]
            continue
        out.append(dict(event))
    for n, event in enumerate(out):
        event["sequence_number"] = n
    return out


@pytest.mark.parametrize("make", [lambda: run_text(["a", "b ", "c"]), mixed_stream])
def test_replay_equals_the_live_stream_with_deltas_merged(make: Any) -> None:
    events, b = make()
    replayed = replay(b.response)
    validated(replayed)
    assert replayed == merge_deltas(events)


def test_replay_of_background_incomplete_and_failed_responses() -> None:
    for b, finish in [
        (StreamBuilder(shell(background=True)), lambda b: b.finish(None)),
        (StreamBuilder(shell()), lambda b: b.finish(None, status="incomplete")),
        (StreamBuilder(shell()), lambda b: b.fail("server_error", "x")),
    ]:
        live = b.text_delta("some text") + finish(b)
        assert replay(b.response) == merge_deltas(live)


def test_replay_of_an_unfinished_response_has_no_terminal_event() -> None:
    events = replay(shell())
    assert [e["type"] for e in events] == ["response.created", "response.in_progress"]


# --- the checker itself -----------------------------------------------------------------------

def renumber(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "sequence_number": n} for n, e in enumerate(events)]


def mutations() -> list[tuple[str, list[dict[str, Any]], str]]:
    events, _ = mixed_stream()
    ev = copy.deepcopy(events)
    types = [e["type"] for e in ev]
    first_delta = types.index("response.output_text.delta")
    out: list[tuple[str, list[dict[str, Any]], str]] = []
    bad = copy.deepcopy(ev)
    bad[3]["sequence_number"] = 7
    out.append(("sequence gap", bad, "sequence_number"))
    out.append(("no created", renumber(ev[1:]), "must open"))
    out.append(("no terminal", ev[:-1], "no terminal"))
    out.append(("two terminals", renumber([*ev, copy.deepcopy(ev[-1])]), "after the terminal"))
    bad = copy.deepcopy(ev)
    bad[first_delta]["delta"] = "Let me chock. "
    out.append(("delta differs from done", bad, "deltas joined"))
    bad = copy.deepcopy(ev)
    bad[first_delta]["output_index"] = 5
    out.append(("wrong output_index", bad, "output_index"))
    bad = copy.deepcopy(ev)
    bad[first_delta]["item_id"] = "msg_other"
    out.append(("wrong item_id", bad, "item_id"))
    bad = copy.deepcopy(ev)
    bad[first_delta]["content_index"] = 1
    out.append(("wrong content_index", bad, "content_index"))
    added = types.index("response.output_item.added")
    out.append(("delta before added", renumber(ev[:added] + ev[added + 1:]), "output_index"))
    args_delta = types.index("response.function_call_arguments.delta")
    bad = copy.deepcopy(ev)
    bad[args_delta]["delta"] = '{"town":'
    out.append(("arguments differ", bad, "arguments"))
    bad = copy.deepcopy(ev)
    bad[-1]["response"]["output"] = bad[-1]["response"]["output"][:-1]
    out.append(("output differs from done items", bad, "output"))
    bad = copy.deepcopy(ev)
    item_done = types.index("response.output_item.done")
    bad[item_done]["item"]["summary"][0]["text"] = "edited"
    out.append(("done item differs from parts", bad, "differs"))
    part_done = types.index("response.content_part.done")
    out.append(("part never done", renumber(ev[:part_done] + ev[part_done + 1:]), "open"))
    bad = copy.deepcopy(ev)
    bad[-1]["response"]["status"] = "incomplete"
    out.append(("status differs from terminal type", bad, "status"))
    swapped = copy.deepcopy(ev)
    swapped[first_delta], swapped[first_delta + 1] = swapped[first_delta + 1], swapped[first_delta]
    out.append(("done before delta", renumber(swapped), "."))
    return out


@pytest.mark.parametrize(("name", "events", "message"), mutations(), ids=[m[0] for m in mutations()])
def test_check_stream_rejects_mutated_streams(name: str, events: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_stream(events)


def test_check_stream_accepts_the_unmutated_stream() -> None:
    events, b = mixed_stream()
    assert check_stream(copy.deepcopy(events)) == b.response
