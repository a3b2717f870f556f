"""Our own implementation of the Open Responses compliance suite (github.com/openresponses/openresponses).

The public suite (TypeScript: `src/lib/compliance-tests.ts`, later split into
`src/lib/compliance/responses/{templates,validators,websocket,sse-events}.ts`) sends a request per
check, parses the body with zod schemas generated from `public/openapi/openapi.json` (version
2026-04-24), then runs a few semantic validators. The rules below are re-stated from those facts
as Python tables; none of its code or schema files is copied.

Checks of the public suite, one a line (id — what it sends / asserts — here):
  basic-response            user message -> 200, ResponseResource, output non-empty, status completed — yes
  assistant-phase           assistant history with `phase` labels + user -> as basic-response — yes
  response-output-phase-schema  local fixture: ResponseResource accepts `phase` on output messages — yes
  streaming-response        stream:true -> events > 0, every event valid, terminal response valid + completed — yes
  system-prompt             system + user message -> as basic-response — yes
  tool-calling              get_weather function tool -> output non-empty, has a function_call item — yes
  image-input               input_text + input_image (data URL) -> as basic-response — yes
  multi-turn                user/assistant/user history -> as basic-response — yes
  compact-response          POST /responses/compact -> 200, CompactResource, has a compaction item — yes
  compact-missing-model     POST /responses/compact without `model` -> HTTP 400 or 422 — yes
  (the websocket-* checks run in tests/test_websocket_compliance.py)
  websocket-response        one response.create over WS /responses -> as streaming-response — over WS
  websocket-sequential-responses  two response.create (store:false) on one socket -> both valid, completed — over WS
  websocket-continuation    store:false turn, then previous_response_id on the same socket -> completed — over WS
  websocket-reconnect-store-false-recovery  new socket: previous_response_not_found, then a fresh turn — over WS
  websocket-previous-response-not-found  unknown previous_response_id -> code previous_response_not_found — over WS
  websocket-failed-continuation-evicts-cache  failed continuation evicts the cached id -> not_found after — over WS
  websocket-compact-new-chain  /responses/compact output as the input of a new WS turn -> completed — over WS
Checks that appear only in other revisions of the suite (kept, as they still describe the contract):
  tool-calling-streaming    stream with a tool -> function_call added/done + arguments delta/done events — yes
  function-call-roundtrip   forced tool_choice, then previous_response_id + function_call_output -> completed — yes
  previous-response-id      two turns chained by previous_response_id -> second is valid + completed — yes
  file-input                input_file with base64 PDF file_data -> as basic-response — yes
  file-search, offline-web-search  optional hosted-tool checks (vector store / web) — not applicable

How the suite judges (facts this module encodes):
- Objects are open: keys the schema does not name are ignored (zod strips them).
- A required key must be present; a key that is not required may be absent but, unless its schema
  allows null, may not be null (`"encrypted_content": null` fails; absent passes). Integers are
  JSON numbers with no fraction.
- A stream is read as SSE `data:` frames, `[DONE]` skipped; every event must match the schema of its
  `type`, and an event type outside the published set fails. The suite checks no event order; its
  final response is the `response` of the last completed/failed/incomplete event. The published
  set names reasoning text events `response.reasoning.delta/.done`: OpenAI's
  `response.reasoning_text.*` fail it, and a reasoning `effort` of "minimal" is outside its enum.
- compact-response sends `prompt_cache_key` and two string-content messages; it also wants a
  non-empty output and `object == "response.compaction"`. tool-calling-streaming wants
  output_item.added/.done carrying a function_call item and function_call_arguments.delta/.done.
- Deviation: JsonSchemaResponseFormat.schema is typed `null` in the published schema (a generator
  slip; OpenAI returns the schema object), so we accept any value there.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

Json = dict[str, Any]
Check = Callable[[Any, str], list[str]]  # (value, path) -> problems
Field = tuple[Check, bool]  # (check, required)


# --- value checks --------------------------------------------------------------------------------

def _scalar(expected: str, ok: Callable[[Any], bool]) -> Check:
    def check(value: Any, path: str) -> list[str]:
        return [] if ok(value) else [f"{path}: expected {expected}, got {_show(value)}"]
    return check


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


STR = _scalar("a string", lambda v: isinstance(v, str))
INT = _scalar("an integer", _is_int)
NUM = _scalar("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
BOOL = _scalar("a boolean", lambda v: isinstance(v, bool))
OBJECT = _scalar("an object", lambda v: isinstance(v, dict))
ANY: Check = lambda value, path: []  # noqa: E731


def enum(*values: str) -> Check:
    return _scalar(f"one of {list(values)}", lambda v: v in values)


def nullable(check: Check) -> Check:
    return lambda value, path: [] if value is None else check(value, path)


def array(check: Check) -> Check:
    def run(value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {_show(value)}"]
        return [p for i, v in enumerate(value) for p in check(v, f"{path}[{i}]")]
    return run


def ref(name: str) -> Check:
    """The object named `name` in OBJECTS (looked up late, so tables may refer to each other)."""
    def run(value: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({name}), got {_show(value)}"]
        problems = []
        for key, (check, required) in OBJECTS[name].items():
            where = f"{path}.{key}" if path else key
            if key not in value:
                if required:
                    problems.append(f"{where}: required ({name}) but missing")
            else:
                problems += check(value[key], where)
        return problems
    return run


def tagged(by_type: dict[str, str]) -> Check:
    """A union told apart by its `type` key: type value -> object name."""
    def run(value: Any, path: str) -> list[str]:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind not in by_type:
            return [f"{path}: type {_show(kind)} is not one of {sorted(by_type)}"]
        return ref(by_type[kind])(value, path)
    return run


def any_of(*checks: Check) -> Check:
    def run(value: Any, path: str) -> list[str]:
        results = [c(value, path) for c in checks]
        return [] if any(not r for r in results) else min(results, key=len)
    return run


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode() if value is not ... else "missing"
    return text if len(text) <= 60 else text[:57] + "..."


def req(check: Check) -> Field:
    return (check, True)


def opt(check: Check) -> Field:
    return (check, False)


def _typed(kind: str, **fields: Field) -> dict[str, Field]:
    return {"type": req(enum(kind)), **fields}


# --- the tables ----------------------------------------------------------------------------------

_PART_TYPES = {"input_text": "InputText", "output_text": "OutputText", "text": "Text",
               "summary_text": "SummaryText", "reasoning_text": "ReasoningText", "refusal": "Refusal",
               "input_image": "InputImage", "input_file": "InputFile"}
PART = tagged(_PART_TYPES)
MESSAGE_PART = tagged({**_PART_TYPES, "input_video": "InputVideo"})
ITEM = tagged({"message": "Message", "function_call": "FunctionCall",
               "function_call_output": "FunctionCallOutput", "reasoning": "Reasoning",
               "compaction": "Compaction"})
_ITEM_STATUS = enum("in_progress", "completed", "incomplete")
_TOOL_CHOICE = any_of(enum("none", "auto", "required"),
                      tagged({"function": "FunctionToolChoice", "allowed_tools": "AllowedToolChoice"}))

OBJECTS: dict[str, dict[str, Field]] = {
    # content parts
    "InputText": _typed("input_text", text=req(STR)),
    "OutputText": _typed("output_text", text=req(STR), annotations=req(array(ref("UrlCitation"))),
                         logprobs=opt(array(ref("LogProb")))),
    "Text": _typed("text", text=req(STR)),
    "SummaryText": _typed("summary_text", text=req(STR)),
    "ReasoningText": _typed("reasoning_text", text=req(STR)),
    "Refusal": _typed("refusal", refusal=req(STR)),
    "InputImage": _typed("input_image", image_url=req(nullable(STR)), detail=req(enum("low", "high", "auto"))),
    "InputFile": _typed("input_file", filename=opt(STR), file_url=opt(STR)),
    "InputVideo": _typed("input_video", video_url=req(STR)),
    "UrlCitation": _typed("url_citation", url=req(STR), start_index=req(INT), end_index=req(INT),
                          title=req(STR)),
    "LogProb": {"token": req(STR), "logprob": req(NUM), "bytes": req(array(INT)),
                "top_logprobs": req(array(ref("TopLogProb")))},
    "TopLogProb": {"token": req(STR), "logprob": req(NUM), "bytes": req(array(INT))},
    # output items
    "Message": _typed("message", id=req(STR), status=req(_ITEM_STATUS),
                      role=req(enum("user", "assistant", "system", "developer")),
                      content=req(array(MESSAGE_PART)), phase=opt(enum("commentary", "final_answer"))),
    "FunctionCall": _typed("function_call", id=req(STR), call_id=req(STR), name=req(STR),
                           arguments=req(STR), status=req(_ITEM_STATUS)),
    "FunctionCallOutput": _typed("function_call_output", id=req(STR), call_id=req(STR), status=req(_ITEM_STATUS),
                                 output=req(any_of(STR, array(tagged({"input_text": "InputText",
                                                                      "input_image": "InputImage",
                                                                      "input_file": "InputFile"}))))),
    "Reasoning": _typed("reasoning", id=req(STR), summary=req(array(PART)), content=opt(array(PART)),
                        encrypted_content=opt(STR)),
    "Compaction": _typed("compaction", id=req(STR), encrypted_content=req(STR), created_by=opt(STR)),
    # response fields
    "IncompleteDetails": {"reason": req(STR)},
    "Error": {"code": req(STR), "message": req(STR)},
    "FunctionTool": _typed("function", name=req(STR), description=req(nullable(STR)),
                           parameters=req(nullable(OBJECT)), strict=req(nullable(BOOL))),
    "FunctionToolChoice": _typed("function", name=opt(STR)),
    "AllowedToolChoice": _typed("allowed_tools", tools=req(array(ref("FunctionToolChoice"))),
                                mode=req(enum("none", "auto", "required"))),
    "TextField": {"format": req(tagged({"text": "TextFormat", "json_object": "JsonObjectFormat",
                                        "json_schema": "JsonSchemaFormat"})),
                  "verbosity": opt(enum("low", "medium", "high"))},
    "TextFormat": _typed("text"),
    "JsonObjectFormat": _typed("json_object"),
    "JsonSchemaFormat": _typed("json_schema", name=req(STR), description=req(nullable(STR)), schema=req(ANY),
                               strict=req(BOOL)),
    "Reasoning config": {"effort": req(nullable(enum("none", "low", "medium", "high", "xhigh"))),
                         "summary": req(nullable(enum("concise", "detailed", "auto")))},
    "Usage": {"input_tokens": req(INT), "output_tokens": req(INT), "total_tokens": req(INT),
              "input_tokens_details": req(ref("InputTokensDetails")),
              "output_tokens_details": req(ref("OutputTokensDetails"))},
    "InputTokensDetails": {"cached_tokens": req(INT)},
    "OutputTokensDetails": {"reasoning_tokens": req(INT)},
    "ResponseResource": {
        "id": req(STR), "object": req(enum("response")), "created_at": req(INT),
        "completed_at": req(nullable(INT)), "status": req(STR),
        "incomplete_details": req(nullable(ref("IncompleteDetails"))), "model": req(STR),
        "previous_response_id": req(nullable(STR)), "instructions": req(nullable(any_of(STR, array(OBJECT)))),
        "output": req(array(ITEM)), "error": req(nullable(ref("Error"))),
        "tools": req(array(tagged({"function": "FunctionTool"}))), "tool_choice": req(_TOOL_CHOICE),
        "truncation": req(enum("auto", "disabled")), "parallel_tool_calls": req(BOOL),
        "text": req(ref("TextField")), "top_p": req(NUM), "presence_penalty": req(NUM),
        "frequency_penalty": req(NUM), "top_logprobs": req(INT), "temperature": req(NUM),
        "reasoning": req(nullable(ref("Reasoning config"))), "usage": req(nullable(ref("Usage"))),
        "max_output_tokens": req(nullable(INT)), "max_tool_calls": req(nullable(INT)), "store": req(BOOL),
        "background": req(BOOL), "service_tier": req(STR), "metadata": req(ANY),
        "safety_identifier": req(nullable(STR)), "prompt_cache_key": req(nullable(STR)),
        "user": opt(nullable(STR)), "conversation": opt(nullable(OBJECT)),
        "prompt_cache_retention": opt(nullable(STR)),
    },
    "CompactResource": {"id": req(STR), "object": req(enum("response.compaction")), "output": req(array(ITEM)),
                        "created_at": req(INT), "usage": req(ref("Usage"))},
    "ErrorPayload": {"type": req(STR), "code": req(nullable(STR)), "message": req(STR),
                     "param": req(nullable(STR)), "headers": opt(OBJECT)},
}

_WHERE = {"item_id": req(STR), "output_index": req(INT)}
_IN_CONTENT = {**_WHERE, "content_index": req(INT)}
_IN_SUMMARY = {**_WHERE, "summary_index": req(INT)}
_LIFECYCLE = {"response": req(ref("ResponseResource"))}
_OBFUSCATION = {"obfuscation": opt(STR)}
#: event type -> its fields beyond `type` and `sequence_number` (both required on every event).
EVENTS: dict[str, dict[str, Field]] = {
    **{f"response.{s}": _LIFECYCLE for s in ("created", "queued", "in_progress", "completed", "failed",
                                            "incomplete")},
    "response.output_item.added": {"output_index": req(INT), "item": req(nullable(ITEM))},
    "response.output_item.done": {"output_index": req(INT), "item": req(nullable(ITEM))},
    "response.reasoning_summary_part.added": {**_IN_SUMMARY, "part": req(PART)},
    "response.reasoning_summary_part.done": {**_IN_SUMMARY, "part": req(PART)},
    "response.content_part.added": {**_IN_CONTENT, "part": req(PART)},
    "response.content_part.done": {**_IN_CONTENT, "part": req(PART)},
    "response.output_text.delta": {**_IN_CONTENT, "delta": req(STR), "logprobs": opt(array(ref("LogProb"))),
                                   **_OBFUSCATION},
    "response.output_text.done": {**_IN_CONTENT, "text": req(STR), "logprobs": opt(array(ref("LogProb")))},
    "response.refusal.delta": {**_IN_CONTENT, "delta": req(STR)},
    "response.refusal.done": {**_IN_CONTENT, "refusal": req(STR)},
    "response.reasoning.delta": {**_IN_CONTENT, "delta": req(STR), **_OBFUSCATION},
    "response.reasoning.done": {**_IN_CONTENT, "text": req(STR)},
    "response.reasoning_summary_text.delta": {**_IN_SUMMARY, "delta": req(STR), **_OBFUSCATION},
    "response.reasoning_summary_text.done": {**_IN_SUMMARY, "text": req(STR)},
    "response.output_text.annotation.added": {**_IN_CONTENT, "annotation_index": req(INT),
                                              "annotation": req(nullable(ref("UrlCitation")))},
    "response.function_call_arguments.delta": {**_WHERE, "delta": req(STR), **_OBFUSCATION},
    "response.function_call_arguments.done": {**_WHERE, "arguments": req(STR)},
    "error": {"error": req(ref("ErrorPayload"))},
}
for _name, _fields in EVENTS.items():
    OBJECTS[_name] = {"type": req(enum(_name)), "sequence_number": req(INT), **_fields}
EVENT = tagged({name: name for name in EVENTS})


def check_response(body: Any) -> list[str]:
    """Problems of `body` as a ResponseResource (the create / stream-final schema)."""
    return ref("ResponseResource")(body, "")


def check_compact(body: Any) -> list[str]:
    """Problems of `body` as a CompactResource (the /responses/compact schema)."""
    return ref("CompactResource")(body, "")


def check_event(event: Any) -> list[str]:
    return EVENT(event, f"event {event.get('type') if isinstance(event, dict) else '?'}")


# --- streams -------------------------------------------------------------------------------------

@dataclass
class Stream:
    """A parsed SSE body: its events, the problems found, and the terminal event's response."""

    events: list[Json] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    final: Json | None = None


_TERMINAL = ("response.completed", "response.failed", "response.incomplete")


def read_stream(events: list[Any]) -> Stream:
    """Judge decoded events as the suite does: each against its schema; the last terminal wins."""
    out = Stream()
    for event in events:
        out.events.append(event)
        out.problems += check_event(event)
        if isinstance(event, dict) and event.get("type") in _TERMINAL:
            out.final = event.get("response")
    return out


def parse_sse(text: str) -> Stream:
    decoded: list[Any] = []
    problems = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in frame.split("\n") if line.startswith("data:"))
        if not data or data == "[DONE]":
            continue
        try:
            decoded.append(orjson.loads(data))
        except orjson.JSONDecodeError:
            problems.append(f"event data is not JSON: {data[:60]!r}")
    stream = read_stream(decoded)
    stream.problems = problems + stream.problems
    return stream


# --- the suite's semantic validators -------------------------------------------------------------

def has_output(body: Json) -> list[str]:
    return [] if body.get("output") else ["response has no output items"]


def has_output_type(kind: str) -> Callable[[Json], list[str]]:
    def run(body: Json) -> list[str]:
        found = any(isinstance(i, dict) and i.get("type") == kind for i in body.get("output") or [])
        return [] if found else [f"expected an output item of type {kind!r}, found none"]
    return run


def completed_status(body: Json) -> list[str]:
    status = body.get("status")
    return [] if status == "completed" else [f"expected status 'completed', got {status!r}"]


def compact_object(body: Json) -> list[str]:
    obj = body.get("object")
    return [] if obj == "response.compaction" else [f"expected object 'response.compaction', got {obj!r}"]


def has_assistant_phase(phase: str) -> Callable[[Json], list[str]]:
    def run(body: Json) -> list[str]:
        found = any(isinstance(i, dict) and i.get("type") == "message" and i.get("role") == "assistant"
                    and i.get("phase") == phase for i in body.get("output") or [])
        return [] if found else [f"expected an assistant output message with phase {phase!r}"]
    return run


def function_call_stream_events(stream: Stream) -> list[str]:
    """tool-calling-streaming: the function call must be streamed, not only appear at the end."""
    def seen(kind: str, item_type: str | None = None) -> bool:
        return any(e.get("type") == kind and (item_type is None or (e.get("item") or {}).get("type") == item_type)
                   for e in stream.events if isinstance(e, dict))
    wanted = [("response.output_item.added", "function_call"), ("response.function_call_arguments.delta", None),
              ("response.function_call_arguments.done", None), ("response.output_item.done", "function_call")]
    return [f"missing {kind}" + (f" with a {item} item" if item else "") for kind, item in wanted
            if not seen(kind, item)]


def stream_verdict(stream: Stream) -> list[str]:
    """streaming-response: events arrived, all valid, and a valid completed final response."""
    if not stream.events:
        return ["no streaming events received"]
    if stream.final is None:
        return [*stream.problems, "no response.completed/failed/incomplete event"]
    final_problems = check_response(stream.final)
    return stream.problems + [f"final response: {p}" for p in final_problems] + \
        ([] if final_problems else completed_status(stream.final))


# --- the requests the suite sends, and the run of each check -------------------------------------

WEATHER_TOOL: Json = {
    "type": "function", "name": "get_weather", "description": "Get the current weather for a location",
    "parameters": {"type": "object", "required": ["location"],
                   "properties": {"location": {"type": "string", "description": "The city and state"}}},
}
# A 1x1 PNG and a one-page PDF, small stand-ins for the suite's fixtures (only their kind matters).
PNG_DATA_URL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
                "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
PDF_DATA_URL = "data:application/pdf;base64," + base64.b64encode(
    b"%PDF-1.1\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF").decode()


def _msg(role: str, content: Any, **extra: Any) -> Json:
    return {"type": "message", "role": role, "content": content, **extra}


@dataclass(frozen=True)
class Prompts:
    """Texts a target's model needs to show a behaviour (e.g. the fake OpenAI calls a tool on "call ...")."""

    tool: str = "What's the weather like in San Francisco?"


def request_for(check_id: str, model: str, prompts: Prompts = Prompts()) -> Json:
    """The body the suite sends for a single-request check."""
    bodies: dict[str, Json] = {
        "basic-response": {"input": [_msg("user", "Say hello in exactly 3 words.")]},
        "assistant-phase": {"input": [_msg("assistant", "I should answer with the saved number.", phase="commentary"),
                                      _msg("assistant", "The number is four.", phase="final_answer"),
                                      _msg("user", "Repeat only the number.")]},
        "streaming-response": {"input": [_msg("user", "Count from 1 to 5.")], "stream": True},
        "system-prompt": {"input": [_msg("system", "You are a pirate. Always respond in pirate speak."),
                                    _msg("user", "Say hello.")]},
        "tool-calling": {"input": [_msg("user", prompts.tool)], "tools": [WEATHER_TOOL]},
        "tool-calling-streaming": {"input": [_msg("user", prompts.tool)], "tools": [WEATHER_TOOL], "stream": True},
        "image-input": {"input": [_msg("user", [
            {"type": "input_text", "text": "What do you see in this image? Answer in one sentence."},
            {"type": "input_image", "image_url": PNG_DATA_URL}])]},
        "file-input": {"input": [_msg("user", [
            {"type": "input_text", "text": "Read the attached file and answer with its title only."},
            {"type": "input_file", "filename": "fixture.pdf", "file_data": PDF_DATA_URL}])]},
        "multi-turn": {"input": [_msg("user", "My name is Alice."),
                                 _msg("assistant", "Hello Alice! Nice to meet you. How can I help you today?"),
                                 _msg("user", "What is my name?")]},
        "compact-response": {"prompt_cache_key": "openresponses-compact-test", "input": [
            _msg("user", "We agreed to launch on Tuesday and notify support first."),
            _msg("assistant", "Understood. The launch is Tuesday, with support notified beforehand.")]},
        "compact-missing-model": {"input": [_msg("user", "Compact this conversation.")]},
    }
    body = bodies[check_id]
    return body if check_id == "compact-missing-model" else {"model": model, **body}


Validator = Callable[[Json], list[str]]
_DONE: list[Validator] = [has_output, completed_status]
#: single-request checks: id -> (path, validators after the schema check)
SINGLE: dict[str, tuple[str, list[Validator]]] = {
    "basic-response": ("/responses", _DONE),
    "assistant-phase": ("/responses", _DONE),
    "system-prompt": ("/responses", _DONE),
    "tool-calling": ("/responses", [has_output, has_output_type("function_call")]),
    "image-input": ("/responses", _DONE),
    "file-input": ("/responses", _DONE),
    "multi-turn": ("/responses", _DONE),
    "compact-response": ("/responses/compact", [has_output, compact_object, has_output_type("compaction")]),
}
STREAMED = ("streaming-response", "tool-calling-streaming")
CHAINED = ("previous-response-id", "function-call-roundtrip")
COMPACT_REJECTS = "compact-missing-model"
ALL_CHECKS = (*SINGLE, *STREAMED, *CHAINED, COMPACT_REJECTS)


def judge(check_id: str, status: int, body: Any) -> list[str]:
    """A single-request check's verdict on one HTTP answer (`body` decoded JSON)."""
    if check_id == COMPACT_REJECTS:
        return [] if status in (400, 422) else [f"expected HTTP 400 or 422, got {status}"]
    if status != 200:
        return [f"HTTP {status}: {_show(body)}"]
    path, validators = SINGLE[check_id]
    problems = (check_compact if path.endswith("/compact") else check_response)(body)
    return problems or [p for v in validators for p in v(body)]


def judge_stream(check_id: str, stream: Stream) -> list[str]:
    problems = stream_verdict(stream)
    if check_id == "tool-calling-streaming":
        # that revision checks events and their schemas, then the function-call events; not the status
        problems = [p for p in problems if not p.startswith("expected status")]
        problems += function_call_stream_events(stream)
    return problems


def run_check(http: httpx.Client, check_id: str, model: str, prompts: Prompts = Prompts()) -> list[str]:
    """Run one check of the suite against a server (`http` has its base URL and auth); [] is a pass."""
    if check_id in CHAINED:
        return _run_chained(http, check_id, model, prompts)
    body = request_for(check_id, model, prompts)
    path = "/responses/compact" if check_id.startswith("compact") else "/responses"
    r = http.post(path, json=body)
    if check_id in STREAMED:
        if r.status_code != 200:
            return [f"HTTP {r.status_code}: {r.text[:200]}"]
        return judge_stream(check_id, parse_sse(r.text))
    return judge(check_id, r.status_code, _json(r))


def _run_chained(http: httpx.Client, check_id: str, model: str, prompts: Prompts) -> list[str]:
    if check_id == "previous-response-id":
        first_body: Json = {"model": model, "input": "Remember this code word: papaya. Reply with only OK."}
    else:
        first_body = {"model": model, "input": prompts.tool, "tools": [WEATHER_TOOL],
                      "tool_choice": {"type": "function", "name": "get_weather"}}
    first = http.post("/responses", json=first_body)
    first_json = _json(first)
    problems = ([f"first turn: HTTP {first.status_code}"] if first.status_code != 200
                else [f"first turn: {p}" for p in check_response(first_json)])
    if problems:
        return problems
    if check_id == "previous-response-id":
        follow: Json = {"model": model, "previous_response_id": first_json["id"],
                        "input": "What code word did I ask you to remember?"}
    else:
        call = next((i for i in first_json["output"] if i.get("type") == "function_call"), None)
        if call is None:
            return ["first response did not include a function_call with call_id"]
        follow = {"model": model, "previous_response_id": first_json["id"], "input": [
            {"type": "function_call_output", "call_id": call["call_id"], "output": "64 degrees and clear"}]}
    second = http.post("/responses", json=follow)
    if second.status_code != 200:
        return [f"second turn: HTTP {second.status_code}: {second.text[:200]}"]
    body = _json(second)
    return check_response(body) or [p for v in _DONE for p in v(body)]


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text
