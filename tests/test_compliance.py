"""The Open Responses compliance checks (tests/compliance.py) against the proxy, on every provider path.

Targets: the mock models and the native OpenAI passthrough (against the strict fake upstream). A
check that fails because of a known bug is `xfail(strict=True)` with the bug in its reason. The
second half of the file shows that each check rejects a broken answer.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import orjson
import pytest

import compliance as c
from conftest import MASTER_KEY, MOCK_MODELS, ProxyFactory
from fakes.chat_upstream import FakeChat
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread

# --- targets and today's known failures ------------------------------------------------------------

NATIVE = "native"
BRIDGED = "bridged"  # openrouter/ (images and files) through the Chat Completions bridge, on the fake chat upstream
MOCKS = ("mock/echo", "mock/tool", "mock/reasoning")
TARGETS = (*MOCKS, NATIVE, BRIDGED)
TOOL_CHECKS = ("tool-calling", "tool-calling-streaming", "function-call-roundtrip")
# Models that call tools; mock/echo and mock/reasoning never do, by design.
TOOL_TARGETS = ("mock/tool", NATIVE, BRIDGED)
PROMPTS = {NATIVE: c.Prompts(tool="call get_weather for San Francisco"),  # the fakes' tool-call probe
           BRIDGED: c.Prompts(tool="call get_weather for San Francisco")}


# A failure we understand goes here as (target, check) -> the bug, and runs as xfail(strict=True)
# until fixed. None today: the three bugs this suite found first (tools without `strict`, images
# without `detail`, the fake's missing penalties) are fixed.
KNOWN: dict[tuple[str, str], str] = {}


def _cases() -> list[Any]:
    cases = []
    for target in TARGETS:
        for check in c.ALL_CHECKS:
            if check in TOOL_CHECKS and target not in TOOL_TARGETS:
                continue
            known = KNOWN.get((target, check))
            marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
            cases.append(pytest.param(target, check, id=f"{target}:{check}", marks=marks))
    return cases


@pytest.fixture
def serve(start_proxy: ProxyFactory) -> Iterator[Callable[[str], httpx.Client]]:
    """`serve(target)` -> an httpx client on a proxy serving that target's model."""
    with ExitStack() as stack:
        def open_client(target: str) -> httpx.Client:
            config = MOCK_MODELS
            if target == NATIVE:
                fake = FakeOpenAI(api_key="sk-upstream-compliance")
                server = stack.enter_context(ServerThread(fake.app))
                config += (f"  - model_name: gpt-4o\n    litellm_params: {{model: openai/gpt-4o, "
                           f"api_base: \"{server.url}/v1\", api_key: sk-upstream-compliance}}\n")
            if target == BRIDGED:
                chat = FakeChat(api_key="sk-chat-compliance", reasoning_field="reasoning")
                server = stack.enter_context(ServerThread(chat.app))
                config += (f"  - model_name: bridged\n    litellm_params: {{model: openrouter/some/model, "
                           f"api_base: \"{server.url}/v1\", api_key: sk-chat-compliance}}\n")
            proxy = start_proxy(config)
            return stack.enter_context(httpx.Client(base_url=proxy.url + "/v1", timeout=30,
                                                    headers={"Authorization": f"Bearer {MASTER_KEY}"}))
        yield open_client


def _model(target: str) -> str:
    return "gpt-4o" if target == NATIVE else target


@pytest.mark.parametrize(("target", "check"), _cases())
def test_public_suite_check_passes(serve: Callable[[str], httpx.Client], target: str, check: str) -> None:
    problems = c.run_check(serve(target), check, _model(target), PROMPTS.get(target, c.Prompts()))
    assert problems == []


def test_the_header_lists_every_check_we_run() -> None:
    doc = c.__doc__ or ""
    listed = {line.split()[0]: line for line in doc.splitlines() if re.match(r"  [a-z]+(-[a-z]+)+ ", line)}
    implemented = {name for name, line in listed.items() if line.rstrip().endswith("— yes")}
    assert implemented == {*c.ALL_CHECKS, "response-output-phase-schema"}
    assert all(listed[n].rstrip().endswith("— over WS") for n in listed if n.startswith("websocket-"))


# --- every check can fail: broken answers are rejected ---------------------------------------------

def good_response() -> dict[str, Any]:
    """A compliant ResponseResource with one of each output item kind we produce."""
    return {
        "id": "resp_1", "object": "response", "created_at": 1700000000, "completed_at": 1700000001,
        "status": "completed", "incomplete_details": None, "model": "m", "previous_response_id": None,
        "instructions": None, "error": None,
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}]},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
             "arguments": "{}", "status": "completed"},
        ],
        "tools": [{"type": "function", "name": "get_weather", "description": None, "parameters": {},
                   "strict": True}],
        "tool_choice": "auto", "truncation": "disabled", "parallel_tool_calls": True,
        "text": {"format": {"type": "text"}, "verbosity": "medium"}, "top_p": 1.0, "presence_penalty": 0.0,
        "frequency_penalty": 0.0, "top_logprobs": 0, "temperature": 1.0,
        "reasoning": {"effort": None, "summary": None},
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
        "max_output_tokens": None, "max_tool_calls": None, "store": True, "background": False,
        "service_tier": "default", "metadata": {}, "safety_identifier": None, "prompt_cache_key": None,
        "user": None, "an_extension_key": "ignored",
    }


def good_compaction() -> dict[str, Any]:
    usage = good_response()["usage"]
    return {"id": "resp_c", "object": "response.compaction", "created_at": 1700000000, "usage": usage,
            "output": [{"type": "message", "id": "msg_u", "status": "completed", "role": "user",
                        "content": [{"type": "input_text", "text": "x"}]},
                       {"type": "compaction", "id": "cmp_1", "encrypted_content": "abc"}]}


def good_stream() -> list[dict[str, Any]]:
    snapshot = {**good_response(), "status": "in_progress", "completed_at": None, "output": [], "usage": None}
    item = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": snapshot},
        {"type": "response.in_progress", "response": snapshot},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
        {"type": "response.output_text.delta", **where, "delta": "hi", "logprobs": []},
        {"type": "response.output_text.done", **where, "text": "hi"},
        {"type": "response.content_part.done", **where, "part": {**part, "text": "hi"}},
        {"type": "response.output_item.done", "output_index": 0, "item": good_response()["output"][1]},
        {"type": "response.completed", "response": good_response()},
    ]
    return [{**e, "sequence_number": i} for i, e in enumerate(events)]


def test_good_fixtures_pass_every_check() -> None:
    body = good_response()
    assert c.check_response(body) == []
    assert [p for v in (c.has_output, c.completed_status, c.has_output_type("function_call")) for p in v(body)] == []
    assert c.check_compact(good_compaction()) == []
    assert c.compact_object(good_compaction()) == c.has_output_type("compaction")(good_compaction()) == []
    assert c.stream_verdict(c.read_stream(good_stream())) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def apply(body: dict[str, Any]) -> None:
        node: Any = body
        for p in parents:
            node = node[p]
        if value is _DROP:
            del node[last]
        else:
            node[last] = value
    return apply


_DROP = object()
SCHEMA_BREAKS = [  # (what, how, a word the complaint must contain)
    ("a required field dropped", _set("presence_penalty", _DROP), "presence_penalty: required"),
    ("null in a required non-nullable field", _set("tools", None), "tools: expected an array"),
    ("null in an optional non-nullable field", _set("output.0.encrypted_content", None),
     "output[0].encrypted_content: expected a string"),
    ("a float where an integer goes", _set("created_at", 1.5), "created_at: expected an integer"),
    ("a string where a number goes", _set("temperature", "1"), "temperature: expected a number"),
    ("a boolean where an integer goes", _set("usage.input_tokens", True), "usage.input_tokens"),
    ("a value outside an enum", _set("truncation", "none"), "truncation: expected one of"),
    ("the wrong object", _set("object", "chat.completion"), "object: expected one of"),
    ("an item status outside its enum", _set("output.1.status", "done"), "output[1].status"),
    ("output_text without annotations", _set("output.1.content.0.annotations", _DROP), "annotations: required"),
    ("output_text logprobs null", _set("output.1.content.0.logprobs", None), "logprobs: expected an array"),
    ("an unknown item type", _set("output.2.type", "tool_call"), "output[2]: type"),
    ("a function tool echoed without strict", _set("tools.0.strict", _DROP), "tools[0].strict: required"),
    ("usage without its details", _set("usage.output_tokens_details", _DROP), "output_tokens_details"),
    ("a tool_choice outside the union", _set("tool_choice", "any"), "tool_choice"),
    ("reasoning config missing summary", _set("reasoning.summary", _DROP), "reasoning.summary: required"),
    ("a message phase outside its enum", _set("output.1.phase", "final"), "output[1].phase"),
    ("an error without a code", _set("error", {"message": "x"}), "error.code: required"),
]


@pytest.mark.parametrize(("what", "breaks", "complaint"), SCHEMA_BREAKS, ids=[b[0] for b in SCHEMA_BREAKS])
def test_response_schema_rejects(what: str, breaks: Callable[[dict[str, Any]], None], complaint: str) -> None:
    body = good_response()
    breaks(body)
    problems = c.check_response(body)
    assert any(complaint in p for p in problems), problems


COMPACT_BREAKS = [
    ("null usage", _set("usage", None), "usage: expected an object"),
    ("compaction item without encrypted_content", _set("output.1.encrypted_content", _DROP), "encrypted_content"),
    ("a kept message without id", _set("output.0.id", _DROP), "output[0].id: required"),
    ("the response object name", _set("object", "response"), "object: expected one of"),
]


@pytest.mark.parametrize(("what", "breaks", "complaint"), COMPACT_BREAKS, ids=[b[0] for b in COMPACT_BREAKS])
def test_compact_schema_rejects(what: str, breaks: Callable[[dict[str, Any]], None], complaint: str) -> None:
    body = good_compaction()
    breaks(body)
    assert any(complaint in p for p in c.check_compact(body))


def test_semantic_validators_reject() -> None:
    body = good_response()
    assert c.has_output({**body, "output": []})
    assert c.has_output_type("function_call")({**body, "output": body["output"][:2]})
    assert c.completed_status({**body, "status": "incomplete"})
    assert c.compact_object({**good_compaction(), "object": "response"})
    assert c.has_output_type("compaction")({**good_compaction(), "output": good_compaction()["output"][:1]})
    assert c.has_assistant_phase("commentary")(body)
    phased = copy.deepcopy(body)
    phased["output"][1]["phase"] = "commentary"
    assert c.check_response(phased) == [] and c.has_assistant_phase("commentary")(phased) == []


def _stream_with(change: Callable[[list[dict[str, Any]]], object]) -> list[str]:
    events = good_stream()
    change(events)
    return c.stream_verdict(c.read_stream(events))


def test_stream_checks_reject() -> None:
    assert c.stream_verdict(c.read_stream([])) == ["no streaming events received"]
    assert any("not one of" in p for p in _stream_with(lambda e: e[4].update(type="response.reasoning_text.delta")))
    assert any("sequence_number: required" in p for p in _stream_with(lambda e: e[3].pop("sequence_number")))
    assert any("delta: expected a string" in p for p in _stream_with(lambda e: e[4].update(delta=None)))
    assert any("no response.completed" in p for p in _stream_with(lambda e: e.pop()))
    assert any("final response: usage" in p for p in _stream_with(lambda e: e[-1]["response"].update(usage={})))
    assert any("expected status" in p for p in _stream_with(lambda e: e[-1]["response"].update(status="failed")))
    # a snapshot in response.created is a full ResponseResource too
    assert any("response.created.response.text" in p for p in _stream_with(lambda e: e[0]["response"].pop("text")))


def test_stream_parser_reads_frames_and_reports_bad_data() -> None:
    text = "".join(f"event: {e['type']}\ndata: {orjson.dumps(e).decode()}\n\n" for e in good_stream())
    assert c.stream_verdict(c.parse_sse(text + "data: [DONE]\n\n")) == []
    assert c.parse_sse("data: {not json\n\n").problems


def test_function_call_stream_check_rejects_a_call_that_was_not_streamed() -> None:
    assert c.function_call_stream_events(c.read_stream(good_stream())) == [
        "missing response.output_item.added with a function_call item",
        "missing response.function_call_arguments.delta",
        "missing response.function_call_arguments.done",
        "missing response.output_item.done with a function_call item"]


def test_http_verdicts_reject() -> None:
    assert c.judge("compact-missing-model", 200, good_compaction()) == ["expected HTTP 400 or 422, got 200"]
    assert c.judge("compact-missing-model", 422, {}) == []
    assert c.judge("basic-response", 500, {"error": {}})[0].startswith("HTTP 500")
    assert c.judge("basic-response", 200, good_response()) == []
    assert c.judge("compact-response", 200, good_response())  # a response is not a compaction
    assert c.judge("tool-calling", 200, {**good_response(), "output": good_response()["output"][:2]})
