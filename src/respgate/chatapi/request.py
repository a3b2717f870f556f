"""A Chat Completions request -> the Responses request the gateway serves.

The chat body is validated strictly against the `openai` package's `CompletionCreateParams*`
TypedDicts (unknown keys rejected at every depth, OpenAI's messages and `param`), then mapped field
by field. What has no Responses counterpart (`seed`, `stop`, penalties, `logit_bias`, audio, ...)
is refused with a 400 naming it, or dropped when `drop_params` is set (LiteLLM's setting); a value
equal to the chat default asks for nothing and passes. A message's `name` has no counterpart and is
dropped, as OpenAI's own Responses input has no place for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, get_type_hints

from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from pydantic import TypeAdapter
from pydantic_core import SchemaValidator, ValidationError

from ..errors import InvalidRequestError, RespgateError
from ..request import INVALID_JSON_MESSAGE, _error_from_pydantic, _wire_schema, json_kind

Json = dict[str, Any]

_STREAMING: Final = SchemaValidator(_wire_schema(TypeAdapter(CompletionCreateParamsStreaming).core_schema))
_NON_STREAMING: Final = SchemaValidator(_wire_schema(TypeAdapter(CompletionCreateParamsNonStreaming).core_schema))
KNOWN_PARAMETERS: Final = frozenset(get_type_hints(CompletionCreateParamsStreaming))

# Copied as they are: the same name and meaning in both APIs.
_SAME: Final = ("model", "temperature", "top_p", "top_logprobs", "parallel_tool_calls", "user", "safety_identifier",
                "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "service_tier", "metadata",
                "moderation")

# No Responses counterpart, with the value that asks for nothing (None: every non-null value asks).
_UNSUPPORTED: Final[dict[str, Any]] = {
    "seed": None, "stop": None, "frequency_penalty": 0, "presence_penalty": 0, "logit_bias": {}, "audio": None,
    "prediction": None, "web_search_options": None, "functions": None, "function_call": None, "n": 1,
    "modalities": ["text"],
}

# (parameter, minimum, maximum, is_integer): limits the chat API enforces beyond the types.
_RANGES: Final = (
    ("temperature", 0, 2, False),
    ("top_p", 0, 1, False),
    ("top_logprobs", 0, 20, True),
    ("max_tokens", 1, None, True),
    ("max_completion_tokens", 1, None, True),
    ("n", 1, 128, True),
)

LOGPROBS_INCLUDE: Final = "message.output_text.logprobs"

_ROLES: Final = ("system", "assistant", "user", "function", "tool", "developer")

# Fields of a received assistant message that a request's assistant message may carry back.
_ECHOED: Final = frozenset({"annotations", "reasoning_content"})


@dataclass(slots=True)
class ChatRequest:
    """The translated request and what the answer's translation needs to know."""

    body: Json  # the Responses request
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False
    metadata: Json | None = None
    # Responses parameter -> the chat parameter it came from, for error messages.
    renames: dict[str, str] = field(default_factory=dict)

    @contextmanager
    def chat_errors(self) -> Iterator[None]:
        """Errors about a translated parameter name the parameter the client sent."""
        try:
            yield
        except RespgateError as e:
            head = (e.param or "").split(".", 1)[0].split("[", 1)[0]
            chat = self.renames.get(head)
            if chat is not None and e.param is not None:
                e.param = chat + e.param[len(head):] if chat != "messages" else chat
                e.message = e.message.replace(f"'{head}", f"'{chat}")
            raise


def translate_request(body: object, *, drop_params: bool = False) -> ChatRequest:
    body = validate_chat(body, drop_params=drop_params)
    req = ChatRequest(body={}, renames={"input": "messages"})
    out = req.body
    for name in _SAME:
        if body.get(name) is not None:
            out[name] = body[name]
    _refuse_unsupported(body, drop_params)
    out["input"] = messages_to_input(body["messages"])
    out["store"] = body.get("store") is True  # chat completions are not stored unless asked
    if body.get("stream") is True:
        req.stream = out["stream"] = True
    _stream_options(body, req)
    _limits_and_reasoning(body, req)
    _tools(body, out)
    _text(body, req)
    if body.get("logprobs") is True:
        req.logprobs = True
        out["include"] = [LOGPROBS_INCLUDE]
    if isinstance(body.get("metadata"), dict):
        req.metadata = body["metadata"]
    return req


def validate_chat(body: object, *, drop_params: bool = False) -> Json:
    """The chat body checked as OpenAI checks it; raises `InvalidRequestError` naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequestError(INVALID_JSON_MESSAGE, code="invalid_json")
    unknown = [k for k in body if k not in KNOWN_PARAMETERS]
    if unknown:
        if not drop_params:
            raise InvalidRequestError(f"Unrecognized request argument supplied: {unknown[0]}", param=str(unknown[0]),
                                      code="unknown_parameter")
        body = {k: v for k, v in body.items() if k in KNOWN_PARAMETERS}
    for required in ("model", "messages"):
        if required not in body:
            raise InvalidRequestError(f"Missing required parameter: '{required}'.", param=required,
                                      code="missing_required_parameter")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _type_error("stream", "a boolean", stream)
    body = _without_echoed_fields(body)
    _check_roles(body["messages"])
    try:
        (_STREAMING if stream is True else _NON_STREAMING).validate_python(body, strict=True)
    except ValidationError as exc:
        raise _error_from_pydantic(body, exc.errors()) from None
    if not body["messages"]:
        raise InvalidRequestError("Invalid 'messages': empty array. Expected an array with minimum length 1, but "
                                  "got an empty array instead.", param="messages", code="empty_array")
    _check_ranges(body)
    return body


def _check_roles(messages: object) -> None:
    """The role tells the message types apart; a wrong one is reported as OpenAI does, with every role."""
    if not isinstance(messages, list):
        return
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if isinstance(role, str) and role not in _ROLES:
            supported = ", ".join(f"'{r}'" for r in _ROLES[:-1]) + f", and '{_ROLES[-1]}'"
            raise InvalidRequestError(f"Invalid value: '{role}'. Supported values are: {supported}.",
                                      param=f"messages[{i}].role", code="invalid_value")


def _without_echoed_fields(body: Json) -> Json:
    """Clients append a received assistant message to the next request as it is (openai's own examples
    do); the fields only answers carry are dropped from it, as OpenAI accepts them there."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(
            isinstance(m, dict) and m.get("role") == "assistant" and _ECHOED.intersection(m) for m in messages):
        return body
    cleaned = [{k: v for k, v in m.items() if k not in _ECHOED}
               if isinstance(m, dict) and m.get("role") == "assistant" else m for m in messages]
    return {**body, "messages": cleaned}


def _check_ranges(body: Json) -> None:
    for name, low, high, is_integer in _RANGES:
        value = body.get(name)
        if value is None:
            continue
        number = "integer" if is_integer else "decimal"
        if value < low or (high is not None and value > high):
            side, bound, op = ("below minimum", low, ">=") if value < low else ("above maximum", high, "<=")
            raise InvalidRequestError(
                f"Invalid '{name}': {number} {side} value. Expected a value {op} {bound}, but got {value} instead.",
                param=name, code=f"{number}_{side.split()[0]}_{'min' if value < low else 'max'}_value")


def _type_error(param: str, expected: str, value: object) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid type for '{param}': expected {expected}, but got {json_kind(value)} "
                               "instead.", param=param, code="invalid_type")


def _unsupported(param: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(f"Unsupported parameter: '{param}' {why}", param=param, code="unsupported_parameter")


def _refuse_unsupported(body: Json, drop_params: bool) -> None:
    for name, harmless in _UNSUPPORTED.items():
        value = body.get(name)
        if value is None or value == harmless or drop_params:
            continue
        if name == "n":
            raise InvalidRequestError(
                f"Invalid 'n': this gateway returns one choice per request, but n={value} was requested.",
                param="n", code="unsupported_value")
        raise _unsupported(name, "is not supported by this gateway's Chat Completions bridge "
                                 "(it has no Responses API counterpart).")


def _stream_options(body: Json, req: ChatRequest) -> None:
    options = body.get("stream_options")
    if options is None:
        return
    if not req.stream:
        raise InvalidRequestError("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                  param="stream_options", code="invalid_value")
    req.include_usage = options.get("include_usage") is True
    if "include_obfuscation" in options:
        req.body["stream_options"] = {"include_obfuscation": options["include_obfuscation"]}


def _limits_and_reasoning(body: Json, req: ChatRequest) -> None:
    for name in ("max_tokens", "max_completion_tokens"):  # the newer name wins when both are set
        if body.get(name) is not None:
            req.body["max_output_tokens"] = body[name]
            req.renames["max_output_tokens"] = name
    if body.get("reasoning_effort") is not None:
        req.body["reasoning"] = {"effort": body["reasoning_effort"]}
        req.renames["reasoning"] = "reasoning_effort"


# --- messages -> input items --------------------------------------------------------------------

def messages_to_input(messages: list[Json]) -> list[Json]:
    items: list[Json] = []
    custom_calls: set[str] = set()  # tool_call_ids of custom tool calls: their outputs differ in type
    for i, message in enumerate(messages):
        role = message["role"]
        if role in ("system", "developer"):
            items.append({"type": "message", "role": role, "content": _text_parts(message["content"])})
        elif role == "user":
            items.append({"type": "message", "role": "user", "content": _user_content(message["content"], i)})
        elif role == "assistant":
            items.extend(_assistant_items(message, custom_calls))
        elif role == "tool":
            kind = "custom_tool_call_output" if message["tool_call_id"] in custom_calls else "function_call_output"
            items.append({"type": kind, "call_id": message["tool_call_id"],
                          "output": _text_parts(message["content"])})
        else:  # "function": the deprecated role has no call id to pair with
            raise InvalidRequestError(f"Invalid value: '{role}'. The deprecated 'function' role is not supported; "
                                      "use 'tool' messages.", param=f"messages[{i}].role", code="invalid_value")
    return items


def _text_parts(content: str | list[Json]) -> str | list[Json]:
    if isinstance(content, str):
        return content
    return [_with_breakpoint({"type": "input_text", "text": p["text"]}, p) for p in content]


def _user_content(content: str | list[Json], index: int) -> str | list[Json]:
    if isinstance(content, str):
        return content
    parts: list[Json] = []
    for j, part in enumerate(content):
        kind = part["type"]
        if kind == "text":
            parts.append({"type": "input_text", "text": part["text"]})
        elif kind == "image_url":
            image = part["image_url"]
            parts.append({"type": "input_image", "image_url": image["url"], "detail": image.get("detail", "auto")})
        elif kind == "file":
            parts.append({"type": "input_file", **part["file"]})
        else:
            raise _unsupported(f"messages[{index}].content[{j}]", f"of type '{kind}' has no Responses API "
                                                                  "counterpart.")
        _with_breakpoint(parts[-1], part)
    return parts


def _with_breakpoint(out: Json, part: Json) -> Json:
    if "prompt_cache_breakpoint" in part:
        out["prompt_cache_breakpoint"] = part["prompt_cache_breakpoint"]
    return out


def _assistant_items(message: Json, custom_calls: set[str]) -> list[Json]:
    content = message.get("content")
    if isinstance(content, list):  # text and refusal parts: the model's own words, in order
        content = "".join(p.get("text") or p.get("refusal") or "" for p in content)
    text = (content or "") + (message.get("refusal") or "")
    items: list[Json] = [{"type": "message", "role": "assistant", "content": text}] if text else []
    for call in message.get("tool_calls") or []:
        if call["type"] == "custom":
            custom_calls.add(call["id"])
            items.append({"type": "custom_tool_call", "call_id": call["id"], "name": call["custom"]["name"],
                          "input": call["custom"]["input"]})
        else:
            items.append({"type": "function_call", "call_id": call["id"], "name": call["function"]["name"],
                          "arguments": call["function"]["arguments"]})
    return items


# --- tools, tool_choice, response_format ----------------------------------------------------------

def _tools(body: Json, out: Json) -> None:
    if body.get("tools"):
        out["tools"] = [_tool(t) for t in body["tools"]]
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        out["tool_choice"] = choice
    elif isinstance(choice, dict):
        out["tool_choice"] = _tool_choice(choice)


def _tool(tool: Json) -> Json:
    if tool["type"] == "custom":
        spec = tool["custom"]
        out: Json = {"type": "custom", "name": spec["name"]}
        if "description" in spec:
            out["description"] = spec["description"]
        fmt = spec.get("format")
        if fmt is not None:
            out["format"] = {"type": "grammar", **fmt["grammar"]} if fmt["type"] == "grammar" else fmt
        return out
    fn = tool["function"]
    out = {"type": "function", "name": fn["name"]}
    if "description" in fn:
        out["description"] = fn["description"]
    # Chat functions are not strict unless asked; Responses' default is the opposite.
    out["parameters"] = fn.get("parameters")
    out["strict"] = fn.get("strict") is True
    return out


def _tool_choice(choice: Json) -> Json:
    kind = choice["type"]
    if kind == "allowed_tools":
        allowed = choice["allowed_tools"]
        return {"type": "allowed_tools", "mode": allowed["mode"],
                "tools": [_named(t) for t in allowed["tools"]]}
    return _named(choice)


def _named(ref: dict[str, Any]) -> Json:
    """`{"type": "function", "function": {"name": ...}}` -> `{"type": "function", "name": ...}`."""
    kind = ref.get("type")
    inner = ref.get(kind) if isinstance(kind, str) else None
    if isinstance(inner, dict) and "name" in inner:
        return {"type": kind, "name": inner["name"]}
    return dict(ref)


def _text(body: Json, req: ChatRequest) -> None:
    text: Json = {}
    fmt = body.get("response_format")
    if fmt is not None:
        if fmt["type"] == "json_schema":
            spec = fmt["json_schema"]
            text["format"] = {"type": "json_schema", "name": spec["name"], "schema": spec.get("schema", {}),
                              **{k: spec[k] for k in ("description", "strict") if k in spec}}
        else:
            text["format"] = {"type": fmt["type"]}
        req.renames["text"] = "response_format"
    if body.get("verbosity") is not None:
        text["verbosity"] = body["verbosity"]
    if text:
        req.body["text"] = text


__all__ = ["ChatRequest", "messages_to_input", "translate_request", "validate_chat"]
