"""The WebSocket mode's wire: client events in (`response.create`, `response.steer`, and our
`response.cancel`), the server events only this mode has out (`error`, `response.steer.*`), and the
`stream_id` that names a lane on every event of a lane's responses.

Shapes follow `openai.types.responses.responses_client_event` / `responses_server_event`; a client
mistake is an `InvalidRequestError` naming the field, never a dropped socket.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from ..errors import InvalidRequestError, RespgateError

Json = dict[str, Any]

CREATE: Final = "response.create"
STEER: Final = "response.steer"
CANCEL: Final = "response.cancel"  # ours: stop a response of this connection (no OpenAI client event does)
CLIENT_EVENTS: Final = (CREATE, STEER, CANCEL)

_STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_STEER_KEYS: Final = frozenset({"type", "previous_response_id", "input"})
_STEER_ITEM_KEYS: Final = frozenset({"type", "role", "content"})
_STEER_PARTS: Final = frozenset({"input_text", "input_image", "input_file"})


class SteerInputError(Exception):
    """A `response.steer` the server refuses before allocating an id (`invalid_input`)."""


def parse_client_event(raw: str | bytes) -> Json:
    """One client message -> the event object; raises InvalidRequestError for anything else."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequestError("The message is not valid JSON: each WebSocket message must be one JSON client "
                                  "event object.", code="invalid_json") from None
    if not isinstance(event, dict):
        raise InvalidRequestError("The message must be a JSON object (a client event such as `response.create`).",
                                  code="invalid_json")
    kind = event.get("type")
    if kind is None:
        raise InvalidRequestError("Missing required parameter: 'type'.", param="type",
                                  code="missing_required_parameter")
    if kind not in CLIENT_EVENTS:
        shown = kind if isinstance(kind, str) else orjson.dumps(kind).decode()
        raise InvalidRequestError(f"Invalid value: '{shown[:100]}'. Supported values are: 'response.create', "
                                  "'response.steer' and 'response.cancel'.", param="type", code="invalid_value")
    return event


def check_stream_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or _STREAM_ID.fullmatch(value) is None:
        raise InvalidRequestError("Invalid 'stream_id': expected 1 to 256 ASCII letters, digits, underscores, "
                                  "hyphens or periods.", param="stream_id", code="invalid_stream_id")
    return value


def create_body(event: Json) -> tuple[Json, str | None]:
    """`response.create` -> (the POST /v1/responses body, the lane). `stream` is implicit here."""
    stream_id = check_stream_id(event.get("stream_id"))
    body = {k: v for k, v in event.items() if k not in ("type", "stream_id")}
    if body.get("background") is True:
        raise InvalidRequestError("Background mode is not supported over WebSocket; use POST /v1/responses "
                                  "with background=true instead.", param="background", code="unsupported_parameter")
    body.pop("background", None)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError(f"Invalid type for 'stream': expected a boolean, but got "
                                  f"{type(stream).__name__} instead.", param="stream", code="invalid_type")
    body["stream"] = True
    return body, stream_id


def steer_target(event: Json) -> str:
    """The response a `response.steer` names; raises SteerInputError when the event is malformed."""
    extra = sorted(k for k in event if k not in _STEER_KEYS)
    if extra:
        raise SteerInputError(f"Unknown parameter: '{extra[0]}'. `response.steer` accepts only `type`, "
                              "`previous_response_id` and `input`; the target response determines the lane.")
    target = event.get("previous_response_id")
    if not isinstance(target, str) or not target:
        raise SteerInputError("`previous_response_id` must name the response to steer.")
    return target


def steer_items(value: object) -> list[Json]:
    """Steering input as input items (user messages only), or SteerInputError saying what is wrong."""
    if isinstance(value, str):
        if not value:
            raise SteerInputError("`input` must not be empty.")
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise SteerInputError("`input` must be a string or a non-empty array of user messages.")
    items = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise SteerInputError(f"`input[{i}]` must be a message object.")
        extra = sorted(k for k in item if k not in _STEER_ITEM_KEYS)
        if extra:
            raise SteerInputError(f"`input[{i}].{extra[0]}` is not accepted: steering messages carry only "
                                  "`type`, `role` and `content`.")
        if item.get("type", "message") != "message":
            raise SteerInputError(f"`input[{i}].type` must be `message`: tool outputs and other items cannot steer.")
        if item.get("role") != "user":
            raise SteerInputError(f"`input[{i}].role` must be `user`.")
        content = item.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") not in _STEER_PARTS:
                    raise SteerInputError(f"`input[{i}].content[{j}]` must be an `input_text`, `input_image` or "
                                          "`input_file` part.")
        elif not isinstance(content, str):
            raise SteerInputError(f"`input[{i}].content` must be a string or an array of content parts.")
        items.append({"type": "message", "role": "user", "content": content})
    return items


def cancel_target(event: Json) -> str:
    target = event.get("response_id")
    if not isinstance(target, str) or not target:
        raise InvalidRequestError("Missing required parameter: 'response_id'.", param="response_id",
                                  code="missing_required_parameter")
    return target


# -- server events ----------------------------------------------------------------------------------

def error_event(seq: int, err: RespgateError, stream_id: str | None = None) -> Json:
    """OpenAI's `error` event (`ResponseWsError`): the HTTP error body plus the status it would have had."""
    event: Json = {"type": "error", "sequence_number": seq, "status": err.status,
                   "error": {"type": err.type, "code": err.code, "message": err.message, "param": err.param}}
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event


def steer_accepted(seq: int, steer_id: str, target: str, stream_id: str | None) -> Json:
    return _lane({"type": "response.steer.accepted", "sequence_number": seq,
                  "steer": {"id": steer_id, "previous_response_id": target}}, stream_id)


def steer_pending(seq: int, steer_id: str, target: str, required: list[Json], stream_id: str | None) -> Json:
    return _lane({"type": "response.steer.pending", "sequence_number": seq, "reason": "waiting_for_required_input",
                  "required_input": required, "steer": {"id": steer_id, "previous_response_id": target}},
                 stream_id)


def steer_failed(seq: int, code: str, message: str, target: str, input_: object, steer_id: str | None,
                 stream_id: str | None) -> Json:
    steer: Json = {"input": input_, "previous_response_id": target}
    if steer_id is not None:
        steer["id"] = steer_id
    return _lane({"type": "response.steer.failed", "sequence_number": seq, "steer": steer,
                  "error": {"type": "invalid_request_error", "code": code, "message": message}}, stream_id)


def _lane(event: Json, stream_id: str | None) -> Json:
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event


def lane_prefix(stream_id: str) -> bytes:
    """The bytes that open every event of a named lane: `{"stream_id":"<id>",`."""
    return b'{"stream_id":' + orjson.dumps(stream_id) + b","


def with_lane(data: bytes, prefix: bytes) -> bytes:
    """A serialised event with its lane, without parsing it: events are JSON objects with a `type`."""
    if data[:1] == b"{":
        return prefix + data[1:]
    obj = orjson.loads(data)  # leading whitespace from an upstream: the slow, always-right way
    return prefix + orjson.dumps(obj)[1:]


# Output items that stop a response for the client: what it must send back, as OpenAI's stubs say.
_REQUIRED: Final = {
    "function_call": "function_call_output",
    "custom_tool_call": "custom_tool_call_output",
    "computer_call": "computer_call_output",
    "shell_call": "shell_call_output",
    "apply_patch_call": "apply_patch_call_output",
}


def required_input(output: list[Any]) -> list[Json]:
    """`response.steer.pending`'s stubs: the client-owned tool results and approvals a response waits for."""
    stubs: list[Json] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in _REQUIRED:
            stub: Json = {"type": _REQUIRED[kind], "call_id": item.get("call_id")}
            if kind == "function_call":
                stub["name"] = item.get("name")
            stubs.append(stub)
        elif kind == "tool_search_call" and item.get("execution") == "client":
            stubs.append({"type": "tool_search_output", "call_id": item.get("call_id"), "execution": "client"})
        elif kind == "mcp_approval_request":
            stubs.append({"type": "mcp_approval_response", "approval_request_id": item.get("id")})
    return stubs


_ANSWERS: Final = frozenset({*_REQUIRED.values(), "tool_search_output", "mcp_approval_response"})


def check_tool_outputs(history: list[Any], items: list[Any]) -> None:
    """OpenAI's 400 for a tool output that answers no call of the conversation (checked here for the
    responses this connection keeps in memory; the store's chains are the gateway's)."""
    calls = {i.get("call_id") for i in (*history, *items)
             if isinstance(i, dict) and i.get("type") in _REQUIRED}
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") in _ANSWERS and "call_id" in item \
                and item["call_id"] not in calls:
            raise InvalidRequestError(f"No tool call found for function call output with call_id "
                                      f"{item['call_id']}.", param=f"input[{i}]")


def with_steering(request_input: object, steering: list[Json]) -> list[Json]:
    """The continuation's input: the queued steering messages in submission order, ahead of the request's
    own input — but after the tool results and approvals that open it, since every provider needs a
    tool call's answer right after the call (a chat bridge rejects a user message in between)."""
    items: list[Any] = [{"type": "message", "role": "user", "content": request_input}] \
        if isinstance(request_input, str) else list(request_input or [])  # type: ignore[call-overload]
    n = 0
    while n < len(items) and isinstance(items[n], dict) and items[n].get("type") in _ANSWERS:
        n += 1
    return [*items[:n], *steering, *items[n:]]
