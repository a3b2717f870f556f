"""A fake OpenAI (and Azure OpenAI) Responses API upstream for tests.

It is an independent oracle: it imports nothing from respgate. Requests are checked against the
official `openai` package's TypedDicts, made strict (unknown keys rejected, `Iterable` read as a
list, no type coercion) so a translation bug upstream of it fails a test the way the real API
would. Every body it sends is validated with the SDK's own models first.

The model is a deterministic echo: "Echo: " + the last user text. Probes: "recall" answers with
the earlier user texts of the chain joined by " | "; "instructions" answers with the
instructions in effect; "call ..." emits a function_call to the first function tool.
Tokens are counted as ceil(chars / 4).
"""

from __future__ import annotations

import asyncio
import base64
import collections.abc
import contextlib
import functools
import json
import math
import re
import secrets
import threading
import time
import types
import typing
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, NamedTuple, NotRequired, Required, Union, get_args, get_origin

from openai.types.responses import (
    CompactedResponse,
    InputTokenCountResponse,
    Response,
    ResponseItem,
    ResponseItemList,
    ResponseStreamEvent,
)
from openai.types.responses.input_token_count_params import InputTokenCountParams
from openai.types.responses.response_compact_params import ResponseCompactParams
from openai.types.responses.response_create_params import ResponseCreateParamsBase
from openai.types.responses.response_includable import ResponseIncludable
from pydantic import ConfigDict, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response as HTTPResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from typing_extensions import TypedDict, is_typeddict

JSON = dict[str, Any]

CREATE_PARAMETERS = frozenset(ResponseCreateParamsBase.__annotations__) | {"stream"}


class CreateParams(ResponseCreateParamsBase, total=False):
    """Both of the SDK's variants in one: `stream` is a boolean or null."""

    stream: bool | None


COMPACT_PARAMETERS = frozenset(ResponseCompactParams.__annotations__)
INPUT_TOKENS_PARAMETERS = frozenset(InputTokenCountParams.__annotations__)

# The SDK marks these Required, but the live API accepts requests without them.
_API_OPTIONAL_KEYS = {
    "FunctionToolParam": frozenset({"parameters", "strict"}),
    "ResponseInputImageParam": frozenset({"detail"}),
    "ResponseInputImageContentParam": frozenset({"detail"}),
}
# Keys the live API accepts beyond the SDK's params: /responses/compact hands back user messages
# with ids, and the docs say to send that output as the next input.
_API_EXTRA_KEYS: dict[str, dict[str, Any]] = {"Message": {"id": str}}

MODEL_SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "o3": "o3-2025-04-16",
    "o4-mini": "o4-mini-2025-04-16",
}

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a decimal",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "typed_dict_type": "an object",
    "model_type": "an object",
    "none_required": "null",
}
_AZURE_401 = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
    "key for an active subscription and use a correct regional API endpoint for your resource."
)
_COMPACTION_PREFIX = "gAAAAA"
_ITEM_ID_PREFIX = {"function_call": "fc", "function_call_output": "fco", "compaction": "cmp", "reasoning": "rs"}
_MIN_OUTPUT_TOKENS = 16


class RecordedRequest(NamedTuple):
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_

    def body(self) -> JSON:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# ---------------------------------------------------------------- strict validation


def _strict(tp: Any) -> Any:
    """The same type with TypedDicts closed to unknown keys and iterables read as lists."""
    if is_typeddict(tp):
        return _strict_typeddict(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return Annotated[(_strict(args[0]), *tp.__metadata__)]
    if origin in (Required, NotRequired):
        return origin[_strict(args[0])]
    if origin in (Union, types.UnionType):
        return Union[tuple(_strict(a) for a in args)]  # noqa: UP007
    if origin in (collections.abc.Iterable, collections.abc.Sequence, list):
        return list[_strict(args[0])]  # type: ignore[misc]
    if origin in (dict, collections.abc.Mapping):
        return dict[_strict(args[0]), _strict(args[1])]  # type: ignore[misc]
    return tp


_strict_cache: dict[Any, Any] = {}


def _strict_typeddict(td: Any) -> Any:
    if td in _strict_cache:
        return _strict_cache[td]
    make: Any = TypedDict  # the functional form, with a name only known at run time
    closed: Any = make(td.__name__, {}, total=td.__total__)
    closed.__pydantic_config__ = ConfigDict(extra="forbid")
    _strict_cache[td] = closed  # before recursing: some params refer to themselves
    relaxed = _API_OPTIONAL_KEYS.get(td.__name__, frozenset())
    hints = typing.get_type_hints(td, include_extras=True)
    extra = _API_EXTRA_KEYS.get(td.__name__, {})
    closed.__annotations__ = {k: _strict(_optional(v) if k in relaxed else v) for k, v in hints.items()} | extra
    closed.__required_keys__ = frozenset(td.__required_keys__) - relaxed
    closed.__optional_keys__ = frozenset(td.__optional_keys__) | relaxed | frozenset(extra)
    return closed


def _optional(hint: Any) -> Any:
    """`Required[X]` -> `NotRequired[X]`: a key the SDK demands but the live API does not."""
    if get_origin(hint) is Required:
        return NotRequired[get_args(hint)[0]]
    return hint if get_origin(hint) is NotRequired else NotRequired[hint]


@functools.cache
def _adapter(td: Any) -> TypeAdapter[Any]:
    return TypeAdapter(_strict(td))


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _data_path(loc: tuple[int | str, ...], body: Any, missing: bool) -> list[int | str]:
    """Keep the parts of a pydantic location that name data, dropping union member tags."""
    path: list[int | str] = []
    node = body
    for i, part in enumerate(loc):
        in_object = isinstance(node, dict) and isinstance(part, str) and part in node
        in_array = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_object or in_array:
            path.append(part)
            node = node[part]
        elif missing and i == len(loc) - 1:
            path.append(part)
    return path


def _format_path(path: list[int | str]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _one_of(words: list[str], joiner: str) -> str:
    return (
        words[0] if len(words) == 1 else ", ".join(words[:-1]) + f"{',' if len(words) > 2 else ''} {joiner} {words[-1]}"
    )


def _is_data_step(node: Any, part: int | str) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and part < len(node)


def _culprits(errors: list[Any], body: Any, depth: int, node: Any) -> list[Any]:
    """The errors that describe the one fault the live API would report.

    Pydantic reports a failure in every member of a union; the caller meant the member that got
    furthest into the data with the fewest faulty fields, so the search follows that member.
    Members that all fail on the value itself are alternatives the message lists together.
    """
    deeper = [e for e in errors if len(e["loc"]) > depth]
    if not deeper:
        return errors
    groups: dict[Any, list[Any]] = {}
    for error in deeper:
        groups.setdefault(error["loc"][depth], []).append(error)
    leaves = [
        k
        for k, g in groups.items()
        if all(len(e["loc"]) == depth + 1 and e["type"] in ("missing", "extra_forbidden") for e in g)
    ]
    if any(_is_data_step(node, k) or k in leaves for k in groups):
        unknown = [k for k, g in groups.items() if any(e["type"] == "extra_forbidden" for e in g)]
        step = (unknown or list(groups))[0]
        inner = node[step] if _is_data_step(node, step) else None
        return _culprits(groups[step], body, depth + 1, inner)
    here = len(_data_path(tuple(deeper[0]["loc"][:depth]), body, False))

    def paths(group: list[Any]) -> set[tuple[Any, ...]]:
        return {tuple(_data_path(tuple(e["loc"]), body, e["type"] == "missing")) for e in group}

    members = [g for g in groups.values() if any(len(p) > here for p in paths(g))]
    if not members:
        return deeper
    best = min(members, key=lambda g: len(paths(g)))
    found = _culprits(best, body, depth + 1, node)
    if found[0]["type"] == "literal_error" and len(next(iter(paths(found[:1])))) == here + 1:
        target = paths(found[:1])
        found += [
            e for g in members if g is not best for e in g if e["type"] == "literal_error" and paths([e]) == target
        ]
    return found


def _error_from(errors: list[Any], body: Any) -> ApiError:
    found = _culprits(errors, body, 0, body)
    first = found[0]
    path = _data_path(tuple(first["loc"]), body, first["type"] == "missing")
    param = _format_path(path)
    kind = first["type"]
    if kind == "extra_forbidden":
        return ApiError(400, f"Unknown parameter: '{param}'.", param, "unknown_parameter")
    if kind == "missing":
        return ApiError(400, f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
    if kind == "literal_error":
        values: list[str] = []
        for e in found:
            if e["type"] == "literal_error":
                values += [v for v in re.findall(r"'([^']*)'", e["ctx"]["expected"]) if v not in values]
        supported = _one_of([f"'{v}'" for v in values], "and")
        message = f"Invalid value: '{first['input']}'. Supported values are: {supported}."
        return ApiError(400, message, param, "invalid_value")
    expected = list(dict.fromkeys(_EXPECTED[e["type"]] for e in found if e["type"] in _EXPECTED))
    if expected:
        what = expected[0] if len(expected) == 1 else "one of " + _one_of(expected, "or")
        got = _json_kind(first["input"])
        message = f"Invalid type for '{param}': expected {what}, but got {got} instead."
        return ApiError(400, message, param, "invalid_type")
    return ApiError(400, f"Invalid value for '{param}': {first['msg']}.", param, "invalid_value")


def validate_params(schema: Any, allowed: frozenset[str], body: Any) -> JSON:
    if not isinstance(body, dict):
        raise ApiError(
            400,
            f"Invalid type for 'body': expected an object, but got {_json_kind(body)} instead.",
            None,
            "invalid_type",
        )
    for key in body:
        if key not in allowed:
            raise ApiError(400, f"Unknown parameter: '{key}'.", key, "unknown_parameter")
    try:
        _adapter(schema).validate_python(body, strict=True)
    except ValidationError as exc:
        raise _error_from(exc.errors(), body) from None
    return body


# ---------------------------------------------------------------- the echo model


def _hex_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _usage(input_tokens: int, output_tokens: int) -> JSON:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cache_write_tokens": 0, "cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _text_parts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [p["text"] for p in content or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _input_items(raw: Any) -> list[JSON]:
    """The request's input as stored items, each with an id, as GET input_items lists them."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    items: list[JSON] = []
    for given in raw:
        item = dict(given)
        kind = item.setdefault("type", "message")
        if kind == "message":
            part = "output_text" if item["role"] == "assistant" else "input_text"
            if isinstance(item["content"], str):
                extra: JSON = {"annotations": []} if part == "output_text" else {}
                item["content"] = [{"type": part, "text": item["content"], **extra}]
            item = {
                "id": item.get("id") or _hex_id("msg"),
                "type": "message",
                "status": "completed",
                "content": item["content"],
                "role": item["role"],
            }
        elif kind == "compaction":
            _decode_compaction(item["encrypted_content"])
        if item.get("id") is None:
            item["id"] = _hex_id(_ITEM_ID_PREFIX.get(kind, "item"))
        if kind not in ("compaction", "item_reference", "reasoning") and item.get("status") is None:
            item["status"] = "completed"
        items.append(item)
    return items


def _user_texts(items: list[JSON]) -> list[str]:
    texts: list[str] = []
    for item in items:
        if item["type"] == "message" and item["role"] == "user":
            texts.append("".join(_text_parts(item["content"])))
        elif item["type"] == "function_call_output":
            texts.append("".join(_text_parts(item["output"])))
    return texts


def _item_chars(items: list[JSON]) -> int:
    total = 0
    for item in items:
        total += sum(len(t) for t in _text_parts(item.get("content")))
        for key in ("arguments", "output", "name"):
            if isinstance(item.get(key), str):
                total += len(item[key])
    return total


def _encode_compaction(transcript: list[str]) -> str:
    return _COMPACTION_PREFIX + base64.urlsafe_b64encode(json.dumps(transcript).encode()).decode()


def _decode_compaction(blob: str) -> list[str]:
    try:
        texts = json.loads(base64.urlsafe_b64decode(blob.removeprefix(_COMPACTION_PREFIX)))
        if blob.startswith(_COMPACTION_PREFIX) and isinstance(texts, list):
            return [str(t) for t in texts]
    except ValueError:
        pass
    raise ApiError(400, "The encrypted content could not be verified.", "input", "invalid_encrypted_content")


def _answer(request: JSON, transcript: list[str]) -> tuple[JSON, int]:
    """The output item for a request and its length in characters."""
    last = transcript[-1] if transcript else ""
    functions = [t for t in request.get("tools") or [] if t.get("type") == "function"]
    if last.startswith("call ") and functions:
        name = functions[0]["name"]
        item = {
            "id": _hex_id("fc"),
            "type": "function_call",
            "status": "completed",
            "arguments": "{}",
            "call_id": "call_" + secrets.token_hex(12),
            "name": name,
        }
        return item, len(name) + 2
    if last == "recall":
        text = " | ".join(transcript[:-1])
    elif last == "instructions":
        text = request.get("instructions") or ""
    else:
        text = "Echo: " + last
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    item = {
        "id": _hex_id("msg"),
        "type": "message",
        "status": "completed",
        "content": [part],
        "role": "assistant",
    }
    return item, len(text)


def _tools(request: JSON) -> list[JSON]:
    tools = []
    for tool in request.get("tools") or []:
        if tool.get("type") == "function":
            tool = {
                "type": "function",
                "description": tool.get("description"),
                "name": tool["name"],
                "parameters": tool.get("parameters"),
                "strict": tool.get("strict", True),
                **{k: v for k, v in tool.items() if k not in ("type", "description", "name", "parameters", "strict")},
            }
        tools.append(tool)
    return tools


def response_body(
    rid: str, created_at: int, request: JSON, status: str, output: list[JSON], usage: JSON | None
) -> JSON:
    """A Response in the key order the live API sends."""
    text = {"format": {"type": "text"}, "verbosity": "medium", **(request.get("text") or {})}
    tier = request.get("service_tier")
    body = {
        "id": rid,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": bool(request.get("background")),
        "completed_at": int(time.time()) if status in ("completed", "incomplete") else None,
        "error": None,
        "frequency_penalty": request.get("frequency_penalty", 0.0),
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": MODEL_SNAPSHOTS.get(request["model"], request["model"]),
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "presence_penalty": request.get("presence_penalty", 0.0),
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None, **(request.get("reasoning") or {})},
        "safety_identifier": request.get("safety_identifier"),
        "service_tier": "default" if tier in (None, "auto") else tier,
        "store": request.get("store", True) is not False,
        "temperature": request.get("temperature", 1.0),
        "text": text,
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": _tools(request),
        "top_logprobs": request.get("top_logprobs", 0),
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation") or "disabled",
        "usage": usage,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }
    Response.model_validate(body)
    return body


def _chunks(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text) + ([text[-1]] if text[-1:].isspace() else []) if text else []


def stream_events(final: JSON, queued: bool) -> list[JSON]:
    """The event grammar of the live API for a finished response, without sequence numbers."""

    def snapshot(status: str) -> JSON:
        return {
            **final,
            "status": status,
            "output": [],
            "usage": None,
            "completed_at": None,
            "incomplete_details": None,
        }

    start = snapshot("queued" if queued else "in_progress")
    events: list[JSON] = [{"type": "response.created", "response": start}]
    if queued:
        events.append({"type": "response.queued", "response": start})
    events.append({"type": "response.in_progress", "response": snapshot("in_progress")})
    for index, item in enumerate(final["output"]):
        events += _item_events(index, item)
    terminal = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    events.append({"type": terminal, "response": final})
    return events


def _item_events(index: int, item: JSON) -> list[JSON]:
    where = {"item_id": item["id"], "output_index": index}
    if item["type"] == "function_call":
        args = item["arguments"]
        return [
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "status": "in_progress", "arguments": ""},
            },
            {"type": "response.function_call_arguments.delta", **where, "delta": args},
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": item["name"],
                "arguments": args,
            },
            {"type": "response.output_item.done", "output_index": index, "item": item},
        ]
    text = item["content"][0]["text"]
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    at = {**where, "content_index": 0}
    return [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **at, "part": part},
        *({"type": "response.output_text.delta", **at, "delta": d, "logprobs": []} for d in _chunks(text)),
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


_event_adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
_item_adapter: TypeAdapter[Any] = TypeAdapter(ResponseItem)
_includable_adapter: TypeAdapter[Any] = TypeAdapter(list[ResponseIncludable])


# ---------------------------------------------------------------- state


@dataclass
class StoredResponse:
    body: JSON
    request: JSON
    input_items: list[JSON]
    transcript: list[str]
    context_chars: int
    events: list[JSON] = field(default_factory=list)
    finished: bool = True
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    task: asyncio.Task[None] | None = None

    async def publish(self, events: list[JSON], finished: bool) -> None:
        async with self.changed:
            for event in events:
                stamped = {
                    "type": event["type"],
                    "sequence_number": len(self.events),
                    **{k: v for k, v in event.items() if k != "type"},
                }
                _event_adapter.validate_python(stamped)
                self.events.append(stamped)
            self.finished = finished
            self.changed.notify_all()


@dataclass
class _Faults:
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: deque[tuple[int, JSON | None, str | None]] = field(default_factory=deque)
    delays: deque[float] = field(default_factory=deque)
    drops: deque[int] = field(default_factory=deque)
    garbage: int = 0


def _default_failure(status: int) -> JSON:
    messages = {
        429: ("Rate limit reached for requests. Please try again in 1s.", "requests", "rate_limit_exceeded"),
        500: (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    }
    message, kind, code = messages.get(status, (f"Upstream failure {status}.", "server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _mask(key: str) -> str:
    return key if len(key) <= 12 else key[:8] + "*" * (len(key) - 12) + key[-4:]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(json.dumps(body, indent=2), status, headers=headers, media_type="application/json")


class _EventStream:
    """SSE of a stored response's events after `starting_after`, following it until it finishes.

    A raw ASGI response, so that `drop_after` can end the connection without the final chunk,
    which a client sees as a broken stream.
    """

    def __init__(self, stored: StoredResponse, starting_after: int, drop_after: int | None) -> None:
        self.stored, self.next, self.drop_after = stored, starting_after + 1, drop_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-request-id", f"req_{secrets.token_hex(16)}".encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        sent = 0
        async for event in self._follow():
            if self.drop_after is not None and sent >= self.drop_after:
                return  # uvicorn closes the connection: the stream is cut mid-way
            data = json.dumps(event, separators=(",", ":"))
            await send(
                {
                    "type": "http.response.body",
                    "body": f"event: {event['type']}\ndata: {data}\n\n".encode(),
                    "more_body": True,
                }
            )
            sent += 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _follow(self) -> AsyncIterator[JSON]:
        stored = self.stored
        while True:
            async with stored.changed:
                await stored.changed.wait_for(lambda: len(stored.events) > self.next or stored.finished)
                batch = stored.events[self.next :]
                done = stored.finished
            self.next += len(batch)
            for event in batch:
                yield event
            if done and not batch:
                return


Handler = Callable[[Request, Any], Awaitable[Any]]


class FakeOpenAI:
    """The Responses API of OpenAI (`/v1/...`) and Azure OpenAI (`/openai/...`, `/openai/v1/...`)."""

    def __init__(self, api_key: str = "sk-upstream", azure_api_version: str | None = None) -> None:
        self.api_key = api_key
        self.azure_api_version = azure_api_version
        self.background_seconds = 0.05
        self.requests: list[RecordedRequest] = []
        self.responses: dict[str, StoredResponse] = {}
        self._faults = _Faults()
        self._tasks: set[asyncio.Task[None]] = set()
        routes: list[Route] = []
        for prefix in ("/v1", "/openai", "/openai/v1"):
            routes += [
                Route(prefix + "/responses", self._route(self._create), methods=["POST"]),
                Route(prefix + "/responses/compact", self._route(self._compact), methods=["POST"]),
                Route(prefix + "/responses/input_tokens", self._route(self._input_tokens), methods=["POST"]),
                Route(prefix + "/responses/{rid}", self._route(self._retrieve), methods=["GET"]),
                Route(prefix + "/responses/{rid}", self._route(self._delete), methods=["DELETE"]),
                Route(prefix + "/responses/{rid}/cancel", self._route(self._cancel), methods=["POST"]),
                Route(prefix + "/responses/{rid}/input_items", self._route(self._input_items), methods=["GET"]),
            ]
        self.app = Starlette(
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={404: self._invalid_url, 405: self._invalid_url},
        )

    # ---- fault knobs, called from the test thread

    def fail_next(self, status: int, body: JSON | None = None, retry_after: str | None = None) -> None:
        with self._faults.lock:
            self._faults.failures.append((status, body, retry_after))

    def delay_next(self, seconds: float) -> None:
        with self._faults.lock:
            self._faults.delays.append(seconds)

    def drop_stream_after(self, n_events: int) -> None:
        with self._faults.lock:
            self._faults.drops.append(n_events)

    def garbage_next(self) -> None:
        with self._faults.lock:
            self._faults.garbage += 1

    # ---- plumbing

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _invalid_url(self, request: Request, exc: Exception) -> HTTPResponse:
        message = f"Invalid URL ({request.method} {request.url.path})"
        return _json(ApiError(404, message).body(), 404)

    def _route(self, handler: Handler) -> Callable[[Request], Awaitable[HTTPResponse]]:
        async def endpoint(request: Request) -> HTTPResponse:
            raw = await request.body()
            try:
                body: Any = json.loads(raw) if raw else None
                parse_error = False
            except ValueError:
                body, parse_error = raw.decode(errors="replace"), True
            self.requests.append(
                RecordedRequest(request.method, request.url.path, request.url.query, dict(request.headers), body)
            )
            with self._faults.lock:
                delay = self._faults.delays.popleft() if self._faults.delays else 0.0
                failure = self._faults.failures.popleft() if self._faults.failures else None
                garbage = self._faults.garbage > 0
                self._faults.garbage -= garbage
            if delay:
                await asyncio.sleep(delay)
            if failure is not None:
                status, fail_body, retry_after = failure
                headers = {"retry-after": retry_after} if retry_after is not None else None
                return _json(fail_body if fail_body is not None else _default_failure(status), status, headers)
            if garbage:
                return HTTPResponse(b"<html><body>502 Bad Gateway</body>", 200, media_type="application/json")
            headers = {
                "x-request-id": f"req_{secrets.token_hex(16)}",
                "openai-version": "2020-10-01",
                "openai-processing-ms": "7",
            }
            try:
                denied = self._authenticate(request)
                if denied is not None:
                    return denied
                if parse_error:
                    raise ApiError(
                        400,
                        "We could not parse the JSON body of your request. (HINT: This likely "
                        "means you aren't using your HTTP library correctly. The OpenAI API expects a "
                        "JSON payload, but what was sent was not valid JSON.)",
                    )
                result = await handler(request, body)
            except ApiError as exc:
                return _json(exc.body(), exc.status, headers)
            if isinstance(result, HTTPResponse | _EventStream):
                return result  # type: ignore[return-value]
            return _json(result, 200, headers)

        return endpoint

    def _authenticate(self, request: Request) -> HTTPResponse | None:
        azure = request.url.path.startswith("/openai/")
        bearer = request.headers.get("authorization", "")
        key = bearer[7:] if bearer.lower().startswith("bearer ") else None
        if azure:
            key = request.headers.get("api-key", key)
            version = request.query_params.get("api-version")
            legacy = not request.url.path.startswith("/openai/v1/")
            if legacy and (version is None or version != (self.azure_api_version or version)):
                return _json({"error": {"code": "404", "message": "Resource not found"}}, 404)
            if key != self.api_key:
                return _json({"error": {"code": "401", "message": _AZURE_401}}, 401)
            return None
        if not key:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field"
                " (with blank username) if you're accessing the API from your browser and are prompted "
                "for a username and password. You can obtain an API key from "
                "https://platform.openai.com/account/api-keys."
            )
            return _json(ApiError(401, message).body(), 401)
        if key != self.api_key:
            message = (
                f"Incorrect API key provided: {_mask(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            return _json(ApiError(401, message, None, "invalid_api_key").body(), 401)
        return None

    def _take_drop(self) -> int | None:
        with self._faults.lock:
            return self._faults.drops.popleft() if self._faults.drops else None

    def _stored(self, rid: str) -> StoredResponse:
        stored = self.responses.get(rid)
        if stored is None:
            raise ApiError(404, f"Response with id '{rid}' not found.")
        return stored

    def _previous(self, request: JSON) -> StoredResponse | None:
        rid = request.get("previous_response_id")
        if rid is None:
            return None
        stored = self.responses.get(rid)
        if stored is None:
            raise ApiError(
                400,
                f"Previous response with id '{rid}' not found.",
                "previous_response_id",
                "previous_response_not_found",
            )
        return stored

    # ---- routes

    async def _create(self, request: Request, body: Any) -> Any:
        req = validate_params(CreateParams, CREATE_PARAMETERS, body)
        if "model" not in req:
            raise ApiError(400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
        limit = req.get("max_output_tokens")
        if limit is not None and limit < _MIN_OUTPUT_TOKENS:
            raise ApiError(
                400,
                "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
                f"{_MIN_OUTPUT_TOKENS}, but got {limit} instead.",
                "max_output_tokens",
                "integer_below_min_value",
            )
        background = bool(req.get("background"))
        if background and req.get("store") is False:
            raise ApiError(400, "Background mode requires 'store' to be true.", "background")
        previous = self._previous(req)
        items = _input_items(req.get("input"))
        transcript = (previous.transcript if previous else []) + _user_texts(items)
        item, out_chars = _answer(req, transcript)
        in_chars = (previous.context_chars if previous else 0) + len(req.get("instructions") or "")
        in_chars += _item_chars(items)
        status = "completed"
        if limit is not None and _tokens(out_chars) > limit and item["type"] == "message":
            part = item["content"][0]
            part["text"] = part["text"][: limit * 4]
            item["status"], status, out_chars = "incomplete", "incomplete", len(part["text"])
        rid, created = _hex_id("resp"), int(time.time())
        final = response_body(rid, created, req, status, [item], _usage(_tokens(in_chars), _tokens(out_chars)))
        stored = StoredResponse(final, req, items, transcript, in_chars + out_chars)
        if req.get("store", True) is not False:
            self.responses[rid] = stored
        events = stream_events(final, queued=background)
        if background:
            queued = events[1]["response"]
            stored.body = queued
            await stored.publish(events[:2], finished=False)
            task = asyncio.create_task(self._run_background(stored, final, events[2:]))
            stored.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if req.get("stream"):
                return _EventStream(stored, -1, self._take_drop())
            return queued
        await stored.publish(events, finished=True)
        if req.get("stream"):
            return _EventStream(stored, -1, self._take_drop())
        return final

    async def _run_background(self, stored: StoredResponse, final: JSON, events: list[JSON]) -> None:
        await asyncio.sleep(self.background_seconds)
        final = {**final, "completed_at": int(time.time())}
        events[-1] = {**events[-1], "response": final}
        stored.body = final
        await stored.publish(events, finished=True)

    async def _retrieve(self, request: Request, _: Any) -> Any:
        stored = self._stored(request.path_params["rid"])
        query = request.query_params
        include = query.getlist("include[]") + query.getlist("include")
        try:
            _includable_adapter.validate_python(include)
        except ValidationError as exc:
            raise _error_from(exc.errors(), {"include": include}) from None
        if query.get("stream") == "true":
            if not stored.body["background"]:
                raise ApiError(
                    400,
                    "Streaming retrieval is only supported for responses created with background=true.",
                    "stream",
                )
            after = query.get("starting_after", "-1")
            if not after.lstrip("-").isdigit():
                raise ApiError(
                    400,
                    "Invalid type for 'starting_after': expected an integer, but got a string instead.",
                    "starting_after",
                    "invalid_type",
                )
            return _EventStream(stored, int(after), self._take_drop())
        return stored.body

    async def _delete(self, request: Request, _: Any) -> Any:
        rid = request.path_params["rid"]
        stored = self._stored(rid)
        if stored.task is not None:
            stored.task.cancel()
            await stored.publish([], finished=True)  # release anyone following its stream
        del self.responses[rid]
        return {"id": rid, "object": "response.deleted", "deleted": True}

    async def _cancel(self, request: Request, _: Any) -> Any:
        stored = self._stored(request.path_params["rid"])
        if not stored.body["background"]:
            raise ApiError(400, "Cannot cancel a synchronous response.")
        if stored.body["status"] in ("queued", "in_progress") and stored.task is not None:
            stored.task.cancel()
            stored.body = {**stored.body, "status": "cancelled"}
            Response.model_validate(stored.body)
            await stored.publish([], finished=True)
        return stored.body

    async def _input_items(self, request: Request, _: Any) -> Any:
        stored = self._stored(request.path_params["rid"])
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(
                400,
                f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
                "order",
                "invalid_value",
            )
        raw_limit = query.get("limit", "20")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            raise ApiError(
                400,
                f"Invalid 'limit': expected an integer between 1 and 100, but got {raw_limit} instead.",
                "limit",
                "invalid_value",
            )
        items = stored.input_items if order == "asc" else stored.input_items[::-1]
        for cursor in ("after", "before"):
            value = query.get(cursor)
            if value is None:
                continue
            ids = [i["id"] for i in items]
            if value not in ids:
                raise ApiError(400, f"Item with id '{value}' not found.", cursor)
            at = ids.index(value)
            items = items[at + 1 :] if cursor == "after" else items[:at]
        page = items[: int(raw_limit)]
        body = {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > len(page),
        }
        if page:
            ResponseItemList.model_validate(body)
        return body

    async def _compact(self, request: Request, body: Any) -> Any:
        req = validate_params(ResponseCompactParams, COMPACT_PARAMETERS, body)
        previous = self._previous(req)
        items = _input_items(req.get("input"))
        transcript = (previous.transcript if previous else []) + _user_texts(items)
        users = [
            {
                "id": _hex_id("msg"),
                "type": "message",
                "status": "completed",
                "content": [{"type": "input_text", "text": t}],
                "role": "user",
            }
            for t in transcript
        ]
        for user in users:
            _item_adapter.validate_python(user)
        compaction = {
            "id": _hex_id("cmp"),
            "type": "compaction",
            "encrypted_content": _encode_compaction(transcript),
        }
        in_chars = (previous.context_chars if previous else 0) + _item_chars(items)
        usage = _usage(_tokens(in_chars), _tokens(len(compaction["encrypted_content"])))
        result = {
            "id": _hex_id("resp"),
            "object": "response.compaction",
            "created_at": int(time.time()),
            "output": [compaction],
            "usage": usage,
        }
        CompactedResponse.model_validate(result)
        return {**result, "output": [*users, compaction]}

    async def _input_tokens(self, request: Request, body: Any) -> Any:
        req = validate_params(InputTokenCountParams, INPUT_TOKENS_PARAMETERS, body or {})
        previous = self._previous(req)
        chars = (previous.context_chars if previous else 0) + len(req.get("instructions") or "")
        chars += _item_chars(_input_items(req.get("input")))
        result = {"object": "response.input_tokens", "input_tokens": _tokens(chars)}
        InputTokenCountResponse.model_validate(result)
        return result
