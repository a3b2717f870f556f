"""A fake OpenAI-compatible Chat Completions upstream (`POST /v1/chat/completions`) for tests.

An independent oracle: it imports nothing from respgate. Requests are checked against the official
`openai.types.chat` TypedDicts made strict (the closing machinery is shared with the Responses
fake), with the error wording the live chat endpoint uses; every body and chunk it sends is
validated with `ChatCompletion` / `ChatCompletionChunk` first.

The model is deterministic. It answers "Echo: " + the last user text; "call all" / "call X" with
function tools given answers with tool calls (all tools in parallel, or X — the first tool when no
tool is named X); after tool messages it answers "Tool results: " + their contents joined by "; ";
a json_schema response format gets a JSON object filling the schema's required fields with the
user text. Tokens are ceil(chars / 4); completion_tokens include the reasoning tokens.

Knobs describe the provider being imitated: `reasoning_field` (the message field carrying
reasoning, e.g. "reasoning_content" or "reasoning"), `max_tokens_param` (the only output-limit
parameter accepted), `strict_supported` (whether `strict` is known in tools and response formats),
`auth_header` ("Authorization" for bearer auth, or a header carrying the bare key).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import CompletionCreateParamsBase
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response as HTTPResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .openai_upstream import ApiError, _adapter, _error_from, _json_kind

JSON = dict[str, Any]


class ChatParams(CompletionCreateParamsBase, total=False):
    """Both of the SDK's variants in one: `stream` is a boolean or null."""

    stream: bool | None


CHAT_PARAMETERS = frozenset(ChatParams.__annotations__)
LIMIT_PARAMETERS = ("max_completion_tokens", "max_tokens")
_FINGERPRINT = "fp_fakechat01"
_ARGUMENT_PIECE = 4


class ChatRequest(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def _bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param, code)


def _not_allowed(key: str, where: str) -> ApiError:
    """The chat endpoint's wording for an unknown key below the top level (param is null)."""
    return _bad(f"Additional properties are not allowed ('{key}' was unexpected) - '{where}'")


# ---------------------------------------------------------------- validation


@dataclass(frozen=True)
class Dialect:
    """What the imitated provider accepts beyond (or instead of) OpenAI's own chat API."""

    reasoning_field: str | None
    max_tokens_param: str | None
    strict_supported: bool


def validate_chat(body: Any, dialect: Dialect) -> JSON:
    """The request, or the ApiError the live endpoint would answer it with."""
    if not isinstance(body, dict):
        raise _bad(f"Invalid type for 'body': expected an object, but got {_json_kind(body)} instead.")
    for key in body:
        if key not in CHAT_PARAMETERS:
            raise _bad(f"Unrecognized request argument supplied: {key}")
    wanted = dialect.max_tokens_param
    for refused in LIMIT_PARAMETERS:
        if wanted is not None and refused != wanted and refused in body:
            raise _bad(
                f"Unsupported parameter: '{refused}' is not supported with this model. Use '{wanted}' instead.",
                refused,
                "unsupported_parameter",
            )
    if "model" not in body:
        raise _bad("you must provide a model parameter")
    checked = {**body, "messages": _precheck_messages(body.get("messages"), dialect)}
    if "messages" not in body:
        del checked["messages"]
    if not dialect.strict_supported:
        _refuse_strict(body)
    try:
        _adapter(ChatParams).validate_python(checked, strict=True)
    except ValidationError as exc:
        raise _chat_error(_error_from(exc.errors(), checked)) from None
    if not body["messages"]:
        raise _bad(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
            "empty_array",
        )
    if body.get("n") not in (None, 1):
        raise _bad("This fake upstream only produces n=1 choices.", "n")
    if body.get("stream_options") is not None and not body.get("stream"):
        raise _bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    _check_tool_sequence(body["messages"])
    return body


def _chat_error(error: ApiError) -> ApiError:
    """Unknown nested keys are worded the old (JSON Schema) way on the chat endpoint."""
    if error.code != "unknown_parameter" or error.param is None:
        return error
    parent, _, key = error.param.rpartition(".")
    return _not_allowed(key, re.sub(r"\[(\d+)\]", r".\1", parent))


def _precheck_messages(messages: Any, dialect: Dialect) -> Any:
    """Checks the live API makes before schema validation; drops accepted non-OpenAI keys."""
    if not isinstance(messages, list):
        return messages
    cleaned: list[Any] = []
    for i, message in enumerate(messages):
        if isinstance(message, dict) and message.get("role") == "tool" and "tool_call_id" not in message:
            raise _bad(
                "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
                f"messages.[{i}].tool_call_id",
            )
        if isinstance(message, dict) and message.get("role") == "assistant" and "reasoning_content" in message:
            if dialect.reasoning_field != "reasoning_content":
                raise _not_allowed("reasoning_content", f"messages.{i}")
            value = message["reasoning_content"]
            if value is not None and not isinstance(value, str):
                raise _bad(
                    f"Invalid type for 'messages[{i}].reasoning_content': expected a string, but got "
                    f"{_json_kind(value)} instead.",
                    f"messages[{i}].reasoning_content",
                    "invalid_type",
                )
            message = {k: v for k, v in message.items() if k != "reasoning_content"}
        cleaned.append(message)
    return cleaned


def _refuse_strict(body: JSON) -> None:
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and "strict" in function:
            raise _not_allowed("strict", f"tools.{i}.function")
    response_format = body.get("response_format")
    schema = response_format.get("json_schema") if isinstance(response_format, dict) else None
    if isinstance(schema, dict) and "strict" in schema:
        raise _not_allowed("strict", "response_format.json_schema")


def _check_tool_sequence(messages: list[JSON]) -> None:
    """Tool messages answer the assistant tool_calls right before them, and all of them."""
    pending: dict[str, int] = {}  # unanswered call id -> index of the assistant message
    answering = False  # inside the run of tool messages that follows an assistant with tool_calls
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            if not answering:
                raise _bad(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            call_id = message["tool_call_id"]
            if call_id not in pending:
                raise _bad(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                    f"messages.[{i}].tool_call_id",
                )
            del pending[call_id]
            continue
        _require_answered(pending)
        calls = message.get("tool_calls") if message["role"] == "assistant" else None
        answering = bool(calls)
        pending = {call["id"]: i for call in calls or []}
    _require_answered(pending)


def _require_answered(pending: dict[str, int]) -> None:
    if pending:
        ids = ", ".join(pending)
        raise _bad(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {ids}",
            f"messages.[{min(pending.values())}].role",
        )


# ---------------------------------------------------------------- the echo model


@dataclass
class Answer:
    content: str | None
    tool_calls: list[JSON]
    reasoning: str | None
    finish_reason: str
    usage: JSON


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def _message_chars(message: JSON) -> int:
    chars = len(_text(message.get("content"))) + len(message.get("reasoning_content") or "")
    for call in message.get("tool_calls") or []:
        function = call.get("function") or call.get("custom") or {}
        chars += len(function.get("name", "")) + len(function.get("arguments", function.get("input", "")))
    return chars


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _fill(schema: Any, text: str) -> Any:
    """A value valid against a simple JSON schema, with every string set to `text`."""
    if not isinstance(schema, dict):
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _fill(schema[key][0], text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _fill(properties.get(name), text) for name in schema.get("required") or []}
    defaults: dict[str, Any] = {"string": text, "integer": 0, "number": 0, "boolean": False, "array": [], "null": None}
    return defaults.get(kind, text)


def _arguments(tool: JSON, text: str) -> str:
    parameters = tool["function"].get("parameters") or {}
    q = (parameters.get("properties") or {}).get("q") or {}
    if "q" in (parameters.get("required") or []) and q.get("type") == "string":
        return json.dumps({"q": text})
    return "{}"


def _chosen_tools(request: JSON, last_user: str) -> list[JSON]:
    tools = [t for t in request.get("tools") or [] if t.get("type") == "function"]
    choice = request.get("tool_choice", "auto")
    if not tools or choice == "none":
        return []
    if isinstance(choice, dict) and choice.get("type") == "function":
        return [t for t in tools if t["function"]["name"] == choice["function"]["name"]]
    if not last_user.startswith("call ") and choice != "required":
        return []
    target = last_user.removeprefix("call ").strip()
    if target == "all":
        return tools if request.get("parallel_tool_calls", True) else tools[:1]
    return [t for t in tools if t["function"]["name"] == target] or tools[:1]


def answer(request: JSON, reasoning_field: str | None) -> Answer:
    messages: list[JSON] = request["messages"]
    users = [m for m in messages if m["role"] == "user"]
    last_user = _text(users[-1]["content"]) if users else ""
    trailing_tools: list[str] = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        trailing_tools.insert(0, _text(message["content"]))
    calls = [] if trailing_tools else _chosen_tools(request, last_user)
    tool_calls = [
        {
            "id": "call_" + secrets.token_hex(12),
            "type": "function",
            "function": {"name": t["function"]["name"], "arguments": _arguments(t, last_user)},
        }
        for t in calls
    ]
    content: str | None = None
    finish_reason = "tool_calls" if tool_calls else "stop"
    if not tool_calls:
        content = _content(request, last_user, trailing_tools)
        limit = next((request[p] for p in LIMIT_PARAMETERS if request.get(p) is not None), None)
        if limit is not None and _tokens(len(content)) > limit:
            content, finish_reason = content[: limit * 4], "length"
    reasoning = f"Thinking about: {last_user}" if reasoning_field else None
    out_chars = _message_chars({"content": content, "tool_calls": tool_calls})
    reasoning_tokens = _tokens(len(reasoning or ""))
    prompt_tokens = _tokens(sum(_message_chars(m) for m in messages))
    completion_tokens = _tokens(out_chars) + reasoning_tokens
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    return Answer(content, tool_calls, reasoning, finish_reason, usage)


def _content(request: JSON, last_user: str, tool_results: list[str]) -> str:
    if tool_results:
        return "Tool results: " + "; ".join(tool_results)
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return json.dumps(_fill(response_format["json_schema"].get("schema") or {}, last_user))
    if response_format.get("type") == "json_object":
        return json.dumps({"echo": last_user})
    return "Echo: " + last_user


# ---------------------------------------------------------------- wire bodies


def completion_body(cid: str, created: int, model: str, result: Answer, reasoning_field: str | None) -> JSON:
    message: JSON = {"role": "assistant", "content": result.content, "refusal": None, "annotations": []}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
    if reasoning_field and result.reasoning is not None:
        message[reasoning_field] = result.reasoning
    body = {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": result.finish_reason}],
        "usage": result.usage,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }
    ChatCompletion.model_validate(body)
    return body


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+$", text)


def _tool_call_deltas(calls: list[JSON]) -> list[JSON]:
    """Each call opens with id, type and name; argument fragments of all calls then take turns."""
    rounds: list[list[JSON]] = [
        [{"index": i, "id": c["id"], "type": "function", "function": {"name": c["function"]["name"], "arguments": ""}}]
        for i, c in enumerate(calls)
    ]
    for i, call in enumerate(calls):
        args = call["function"]["arguments"]
        pieces = [args[at : at + _ARGUMENT_PIECE] for at in range(0, len(args), _ARGUMENT_PIECE)]
        rounds[i] += [{"index": i, "function": {"arguments": p}} for p in pieces]
    longest = max((len(r) for r in rounds), default=0)
    return [r[k] for k in range(longest) for r in rounds if k < len(r)]


def stream_chunks(
    cid: str, created: int, model: str, result: Answer, reasoning_field: str | None, include_usage: bool
) -> list[JSON]:
    """The chunk sequence of the live API for a finished answer, each validated."""
    deltas: list[tuple[JSON, str | None]] = [
        ({"role": "assistant", "content": "" if result.content is not None else None, "refusal": None}, None)
    ]
    if reasoning_field and result.reasoning:
        deltas += [({reasoning_field: piece}, None) for piece in _words(result.reasoning)]
    deltas += [({"content": piece}, None) for piece in _words(result.content or "")]
    deltas += [({"tool_calls": [d]}, None) for d in _tool_call_deltas(result.tool_calls)]
    deltas.append(({}, result.finish_reason))
    base: JSON = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }
    extra: JSON = {"usage": None} if include_usage else {}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": f}], **extra}
        for d, f in deltas
    ]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": result.usage})
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


class _ChunkStream:
    """SSE `data:` lines, then `data: [DONE]`; a raw ASGI response so a fault can cut it short."""

    def __init__(self, chunks: list[JSON], drop_after: int | None, error_midway: bool) -> None:
        self.chunks, self.drop_after, self.error_midway = chunks, drop_after, error_midway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-request-id", f"req_{secrets.token_hex(16)}".encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        error_at = max(1, len(self.chunks) // 2) if self.error_midway else None
        for sent, chunk in enumerate(self.chunks):
            if self.drop_after is not None and sent >= self.drop_after:
                return  # no final empty body: uvicorn closes the connection, a broken stream
            if sent == error_at:
                error = {"message": "The model stopped unexpectedly.", "type": "server_error", "param": None}
                await self._line(send, json.dumps({"error": {**error, "code": None}}))
                break
            await self._line(send, json.dumps(chunk, separators=(",", ":")))
        else:
            await self._line(send, "[DONE]")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _line(send: Send, data: str) -> None:
        await send({"type": "http.response.body", "body": f"data: {data}\n\n".encode(), "more_body": True})


# ---------------------------------------------------------------- the server


@dataclass
class _Faults:
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: deque[tuple[int, JSON | None]] = field(default_factory=deque)
    delays: deque[float] = field(default_factory=deque)
    drops: deque[int] = field(default_factory=deque)
    garbage: int = 0
    error_chunks: int = 0


def _default_failure(status: int) -> JSON:
    known = {
        429: ("Rate limit reached for requests. Please try again in 1s.", "requests", "rate_limit_exceeded"),
        500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
        503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    }
    message, kind, code = known.get(status, (f"Upstream failure {status}.", "server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _json(body: Any, status: int = 200) -> HTTPResponse:
    headers = {"x-request-id": f"req_{secrets.token_hex(16)}"}
    return HTTPResponse(json.dumps(body), status, headers=headers, media_type="application/json")


def _masked(key: str) -> str:
    return key if len(key) <= 8 else key[:3] + "*" * (len(key) - 7) + key[-4:]


class FakeChat:
    """`with ServerThread(FakeChat().app) as s: OpenAI(base_url=s.url + "/v1", api_key="sk-chat")`."""

    def __init__(
        self,
        api_key: str = "sk-chat",
        *,
        reasoning_field: str | None = None,
        max_tokens_param: str | None = None,
        strict_supported: bool = True,
        auth_header: str = "Authorization",
    ) -> None:
        if max_tokens_param not in (None, *LIMIT_PARAMETERS):
            raise ValueError(f"max_tokens_param must be one of {LIMIT_PARAMETERS}, not {max_tokens_param!r}")
        self.api_key = api_key
        self.auth_header = auth_header.lower()
        self.dialect = Dialect(reasoning_field, max_tokens_param, strict_supported)
        self.requests: list[ChatRequest] = []
        self._faults = _Faults()
        endpoint = self._endpoint(self._create)
        routes = [Route(p, endpoint, methods=["POST"]) for p in ("/v1/chat/completions", "/chat/completions")]
        self.app = Starlette(routes=routes, exception_handlers={404: self._invalid_url, 405: self._invalid_url})

    # ---- fault knobs: each applies to one coming request, in the order they were set

    def fail_next(self, status: int, body: JSON | None = None) -> None:
        with self._faults.lock:
            self._faults.failures.append((status, body))

    def delay_next(self, seconds: float) -> None:
        with self._faults.lock:
            self._faults.delays.append(seconds)

    def drop_stream_after(self, n_chunks: int) -> None:
        with self._faults.lock:
            self._faults.drops.append(n_chunks)

    def garbage_next(self) -> None:
        with self._faults.lock:
            self._faults.garbage += 1

    def error_chunk_next(self) -> None:
        with self._faults.lock:
            self._faults.error_chunks += 1

    # ---- plumbing

    async def _invalid_url(self, request: Request, exc: Exception) -> HTTPResponse:
        return _json(ApiError(404, f"Invalid URL ({request.method} {request.url.path})").body(), 404)

    def _endpoint(self, handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Request], Awaitable[Any]]:
        async def endpoint(request: Request) -> Any:
            raw = await request.body()
            try:
                body: Any = json.loads(raw) if raw else None
                parse_error = False
            except ValueError:
                body, parse_error = raw.decode(errors="replace"), True
            self.requests.append(ChatRequest(request.method, request.url.path, dict(request.headers), body))
            with self._faults.lock:
                faults = self._faults
                delay = faults.delays.popleft() if faults.delays else 0.0
                failure = faults.failures.popleft() if faults.failures else None
                garbage = faults.garbage > 0
                faults.garbage -= garbage
            if delay:
                await asyncio.sleep(delay)
            if failure is not None:
                status, fail_body = failure
                return _json(fail_body if fail_body is not None else _default_failure(status), status)
            if garbage:
                return HTTPResponse(b"<html><body>502 Bad Gateway</body>", 200, media_type="application/json")
            denied = self._authenticate(request)
            if denied is not None:
                return denied
            try:
                if parse_error:
                    raise _bad(
                        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what "
                        "was sent was not valid JSON.)"
                    )
                result = await handler(body)
            except ApiError as exc:
                return _json(exc.body(), exc.status)
            return result if isinstance(result, _ChunkStream) else _json(result)

        return endpoint

    def _authenticate(self, request: Request) -> HTTPResponse | None:
        given = request.headers.get(self.auth_header, "")
        if self.auth_header == "authorization":
            given = given[7:] if given.lower().startswith("bearer ") else ""
        if not given:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return _json(ApiError(401, message).body(), 401)
        if given != self.api_key:
            message = f"Incorrect API key provided: {_masked(given)}."
            return _json(ApiError(401, message, None, "invalid_api_key").body(), 401)
        return None

    async def _create(self, body: Any) -> Any:
        req = validate_chat(body, self.dialect)
        cid, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
        field_name = self.dialect.reasoning_field
        result = answer(req, field_name)
        if not req.get("stream"):
            return completion_body(cid, created, req["model"], result, field_name)
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        chunks = stream_chunks(cid, created, req["model"], result, field_name, include_usage)
        with self._faults.lock:
            drop = self._faults.drops.popleft() if self._faults.drops else None
            error_midway = self._faults.error_chunks > 0
            self._faults.error_chunks -= error_midway
        return _ChunkStream(chunks, drop, error_midway)
