"""Validation of `POST /v1/responses` bodies, with OpenAI's error messages, and input normalisation.

Two levels of checking:

* `validate_create` — full check for providers whose responses we build (mock, bridged): fields
  and types come from the `openai` package's `ResponseCreateParams*` TypedDicts, compiled once at
  import into strict pydantic-core validators that reject unknown keys at every depth.
* `validate_passthrough` — the few fields the gateway itself reads; the upstream judges the rest.

The body returned is the caller's own dict (never pydantic's copy): the hot path stays JSON-shaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Final, get_type_hints

from openai.types.responses.response_create_params import (
    ResponseCreateParamsNonStreaming,
    ResponseCreateParamsStreaming,
)
from pydantic import TypeAdapter
from pydantic_core import ErrorDetails, SchemaValidator, ValidationError

from .errors import InvalidRequestError
from .ids import new_item_id
from .security.urls import check_request as check_request_urls

__all__ = ["normalize_input", "validate_create", "validate_passthrough"]

INVALID_JSON_MESSAGE: Final = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
    "If you have trouble figuring out how to fix this, please contact us through our help center at "
    "help.openai.com.)"
)


# Fields openai's types mark required that the live API (and the Open Responses spec) lets clients
# leave out; the response echoes OpenAI's defaults for them (see shell.py).
_API_OPTIONAL: Final[dict[str, tuple[str, ...]]] = {
    "FunctionToolParam": ("parameters", "strict"),
    # LiteLLM's `{"type": "mcp", "server_url": "litellm_proxy"}` (every configured server) has no label;
    # tools/mcp/servers.py requires one for any other server.
    "Mcp": ("server_label",),
    "ResponseInputImageParam": ("detail",),
    "ResponseInputImageContentParam": ("detail",),
}


# Fields openai's types leave optional (or nullable) that a response built here needs: a tool's output
# names the call it answers, or no provider can pair them.
_API_REQUIRED: Final[dict[str, tuple[str, ...]]] = {"FunctionCallOutput": ("call_id",)}


# Fields the live API accepts beyond openai's types: `/responses/compact` hands back the user's messages
# with ids, and OpenAI's docs say to send that window back as the next input.
_API_EXTRA: Final[dict[str, tuple[str, ...]]] = {"Message": ("id",)}


def _wire_schema(schema: Any) -> Any:
    """openai's TypedDicts tuned to what the wire allows: unknown keys are errors, `Iterable[...]`
    fields are plain lists (pydantic validates iterables lazily, i.e. never, for our purpose),
    `Sequence[str]` takes its JSON form (a list), as bodies arrive decoded from JSON, and unions
    stop at the first member that fits instead of scoring all of them (30x faster on item lists)."""
    if isinstance(schema, list):
        return [_wire_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind == "json-or-python":
        return _wire_schema(schema["json_schema"])
    out = {k: _wire_schema(v) for k, v in schema.items() if k != "serialization"}
    if kind == "generator":
        out["type"] = "list"
    elif kind == "typed-dict":
        out["extra_behavior"] = "forbid"
        cls_name = getattr(schema.get("cls"), "__name__", "")
        for name in _API_OPTIONAL.get(cls_name, ()):
            if name in out.get("fields", {}):
                out["fields"][name] = {**out["fields"][name], "required": False}
        for name in _API_REQUIRED.get(cls_name, ()):
            field = out["fields"][name]
            inner = field["schema"]
            out["fields"][name] = {**field, "required": True,
                                   "schema": inner["schema"] if inner.get("type") == "nullable" else inner}
        for name in _API_EXTRA.get(cls_name, ()):
            out.setdefault("fields", {})[name] = {"type": "typed-dict-field", "schema": {"type": "str"},
                                                  "required": False}
    elif kind == "union":  # members are told apart by their `type` tags: the first match is the one
        out["mode"] = "left_to_right"
    return out


def _validator(params: type) -> SchemaValidator:
    return SchemaValidator(_wire_schema(TypeAdapter(params).core_schema))


_STREAMING: Final = _validator(ResponseCreateParamsStreaming)
_NON_STREAMING: Final = _validator(ResponseCreateParamsNonStreaming)
KNOWN_PARAMETERS: Final = frozenset(get_type_hints(ResponseCreateParamsStreaming))

# (parameter, minimum, maximum, is_integer): limits OpenAI enforces beyond the types.
_RANGES: Final = (
    ("temperature", 0, 2, False),
    ("top_p", 0, 1, False),
    ("top_logprobs", 0, 20, True),
    ("max_output_tokens", 16, None, True),
    ("max_tool_calls", 1, None, True),
)


def validate_create(body: object, *, drop_params: bool = False) -> dict[str, Any]:
    """The body of a create request, checked as OpenAI checks it; raises `InvalidRequestError`.

    With `drop_params`, unknown top-level parameters are removed (LiteLLM's `drop_params`) instead
    of rejected; the caller's dict is then not modified, a shallow copy is returned.
    """
    if not isinstance(body, dict):
        raise InvalidRequestError(INVALID_JSON_MESSAGE)
    unknown = [k for k in body if k not in KNOWN_PARAMETERS]
    if unknown:
        if not drop_params:
            raise InvalidRequestError(f"Unknown parameter: '{unknown[0]}'.", param=str(unknown[0]),
                                      code="unknown_parameter")
        body = {k: v for k, v in body.items() if k in KNOWN_PARAMETERS}
    if "model" not in body:
        raise InvalidRequestError("Missing required parameter: 'model'.", param="model",
                                  code="missing_required_parameter")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _type_error("stream", "a boolean", stream)
    validator = _STREAMING if stream is True else _NON_STREAMING
    try:
        validator.validate_python(body, strict=True)
    except ValidationError as exc:
        raise _error_from_pydantic(body, exc.errors()) from None
    _check_ranges(body)
    check_request_urls(body)  # image and file URLs a fetcher will follow (the proxy's SSRF guard)
    return body


def _check_ranges(body: dict[str, Any]) -> None:
    for name, low, high, is_integer in _RANGES:
        value = body.get(name)
        if value is None:
            continue
        number = "integer" if is_integer else "decimal"
        if value < low:
            raise InvalidRequestError(
                f"Invalid '{name}': {number} below minimum value. Expected a value >= {low}, "
                f"but got {value} instead.", param=name, code=f"{number}_below_min_value")
        if high is not None and value > high:
            raise InvalidRequestError(
                f"Invalid '{name}': {number} above maximum value. Expected a value <= {high}, "
                f"but got {value} instead.", param=name, code=f"{number}_above_max_value")


def _type_error(param: str, expected: str, value: object) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid type for '{param}': expected {expected}, but got {json_kind(value)} instead.",
        param=param, code="invalid_type")


def json_kind(value: object) -> str:
    """The JSON type of a value in OpenAI's words ("a string", "a decimal", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "a boolean"
    for types, word in ((str, "a string"), (int, "an integer"), (float, "a decimal"), (dict, "an object"),
                        (list, "an array")):
        if isinstance(value, types):
            return word
    return "an unsupported value"


# --- pydantic errors -> one OpenAI error ------------------------------------------------------------
# pydantic reports every member of a union that failed; OpenAI reports one problem. The member the
# client meant is the one that failed least: no `type` tag mismatch, fewest errors of its own, deepest.

_EXPECTED_KINDS: Final = {
    "string_type": "a string", "float_type": "a decimal", "int_type": "an integer", "bool_type": "a boolean",
    "dict_type": "an object", "list_type": "an array", "none_required": "null",
}
_QUOTED: Final = re.compile(r"'((?:[^'\\]|\\.)*)'")

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class _Issue:
    path: Path  # where in the body, as keys and indexes
    branches: tuple[tuple[int, str], ...]  # union members taken: (path depth, member label)
    kind: str  # pydantic's error type
    value: object
    expected: str  # literal_error's expected values, quoted
    message: str

    def tag_mismatch(self, depth: int) -> bool:
        return (self.kind in ("literal_error", "missing") and len(self.path) == depth + 1
                and self.path[-1] == "type")


def _issue(body: object, err: ErrorDetails) -> _Issue:
    """Splits pydantic's `loc` into the body path and the union member labels mixed into it."""
    loc, kind = err["loc"], err["type"]
    cur = body
    path: list[str | int] = []
    branches: list[tuple[int, str]] = []
    for i, part in enumerate(loc):
        if isinstance(cur, dict) and isinstance(part, str) and (part in cur or (
                i == len(loc) - 1 and kind == "missing")):
            path.append(part)
            cur = cur.get(part)
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            path.append(part)
            cur = cur[part]
        else:
            branches.append((len(path), str(part)))
    ctx = err.get("ctx") or {}
    return _Issue(tuple(path), tuple(branches), kind, err.get("input", cur), str(ctx.get("expected", "")),
                  err["msg"])


def _score(group: list[_Issue], depth: int) -> tuple[bool, int, int]:
    own = [i for i in group if not i.branches]
    return (any(i.tag_mismatch(depth) for i in own), len(own), -max(len(i.path) for i in group))


def _pick(issues: list[_Issue]) -> list[_Issue]:
    """The issue to report; several when they are equally good alternatives at one spot."""
    first = issues[0]
    if not first.branches:
        return [first]
    depth = first.branches[0][0]
    groups: dict[str, list[_Issue]] = {}
    for i in issues:
        if i.branches and i.branches[0][0] == depth and i.path[:depth] == first.path[:depth]:
            groups.setdefault(i.branches[0][1], []).append(replace(i, branches=i.branches[1:]))
    ranked = sorted(groups.values(), key=lambda g: _score(g, depth))
    if all(_score(g, depth)[0] for g in ranked):  # the `type` tag matched no member
        return [i for g in groups.values() for i in g if not i.branches and i.tag_mismatch(depth)]
    best = _score(ranked[0], depth)
    tied = [_pick(g) for g in ranked if _score(g, depth) == best]
    if len(tied) == 1:
        return tied[0]
    picks = [p for alternatives in tied for p in alternatives]
    if all(p.kind in _EXPECTED_KINDS and p.path == picks[0].path for p in picks):
        return picks
    return tied[0]


def format_path(path: Path) -> str:
    """`("input", 0, "content")` -> `"input[0].content"`, as OpenAI names nested params."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _error_from_pydantic(body: object, errors: list[ErrorDetails]) -> InvalidRequestError:
    picked = _pick([_issue(body, e) for e in errors])
    first = picked[0]
    param = format_path(first.path)
    if first.kind == "missing":
        return InvalidRequestError(f"Missing required parameter: '{param}'.", param=param,
                                   code="missing_required_parameter")
    if first.kind == "extra_forbidden":
        return InvalidRequestError(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
    if first.kind == "literal_error":
        supported = list(dict.fromkeys(v for i in picked for v in _QUOTED.findall(i.expected)))
        if not isinstance(first.value, str):
            return _type_error(param, "a string", first.value)
        return InvalidRequestError(
            f"Invalid value: '{first.value}'. Supported values are: {_enumerate(supported)}.",
            param=param, code="invalid_value")
    if first.kind in _EXPECTED_KINDS:
        kinds = list(dict.fromkeys(_EXPECTED_KINDS[i.kind] for i in picked))
        expected = kinds[0] if len(kinds) == 1 else "one of " + " or ".join(kinds)
        return _type_error(param, expected, first.value)
    return InvalidRequestError(f"Invalid value for '{param}': {first.message}.", param=param,
                               code="invalid_value")


def _enumerate(values: list[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


# Fields the gateway reads itself on the passthrough path, with the JSON types it needs.
_PASSTHROUGH_TYPES: Final[tuple[tuple[str, type | tuple[type, ...], str], ...]] = (
    ("stream", bool, "a boolean"),
    ("store", bool, "a boolean"),
    ("background", bool, "a boolean"),
    ("previous_response_id", str, "a string"),
    ("input", (str, list), "one of a string or an array"),
)


def validate_passthrough(body: object) -> dict[str, Any]:
    """The cheap check for native passthrough: only what the gateway needs; the rest passes untouched."""
    if not isinstance(body, dict):
        raise InvalidRequestError(INVALID_JSON_MESSAGE)
    model = body.get("model")
    if model is None:
        raise InvalidRequestError("Missing required parameter: 'model'.", param="model",
                                  code="missing_required_parameter")
    if not isinstance(model, str):
        raise _type_error("model", "a string", model)
    if not model:
        raise InvalidRequestError("Invalid 'model': empty string. Expected a string with minimum length 1, "
                                  "but got an empty string instead.", param="model",
                                  code="empty_string")
    for name, types, expected in _PASSTHROUGH_TYPES:
        value = body.get(name)
        # bool is an int subclass, but no field here takes an int, so isinstance is exact enough.
        if value is not None and not isinstance(value, types):
            raise _type_error(name, expected, value)
    items = body.get("input")
    for i, item in enumerate(items if isinstance(items, list) else ()):  # what normalize_input reads
        if not isinstance(item, dict):
            raise _type_error(f"input[{i}]", "an object", item)
        if item.get("type") == "message" and "role" not in item:
            raise InvalidRequestError(f"Missing required parameter: 'input[{i}].role'.", param=f"input[{i}].role",
                                      code="missing_required_parameter")
    check_request_urls(body, mcp=True)  # the upstream follows these URLs, MCP servers included
    return body


# Item id prefixes OpenAI uses, by item type (`GET /responses/{id}/input_items` shows them).
_ID_PREFIXES: Final = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "reasoning": "rs",
    "file_search_call": "fs",
    "web_search_call": "ws",
    "computer_call": "cu",
    "computer_call_output": "cuo",
    "image_generation_call": "ig",
    "code_interpreter_call": "ci",
    "local_shell_call": "lsh",
    "local_shell_call_output": "lsho",
    "shell_call": "sh",
    "shell_call_output": "sho",
    "apply_patch_call": "apc",
    "apply_patch_call_output": "apco",
    "mcp_list_tools": "mcpl",
    "mcp_approval_request": "mcpr",
    "mcp_approval_response": "mcpa",
    "mcp_call": "mcp",
    "compaction": "cmp",
    "tool_search_call": "tsc",
    "tool_search_output": "tso",
}
# Item types whose stored form (openai's `ResponseItem` models) requires a status.
_NEEDS_STATUS: Final = frozenset({
    "message", "function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output",
    "computer_call_output",
})


def normalize_input(input: str | list[Any] | None) -> list[dict[str, Any]]:
    """Input items as OpenAI lists them back: full messages with content parts, each item with an id.

    Expects input already validated; never mutates it (items are shallow-copied). `item_reference`
    items are kept as they are (given their `type` when the client left it out): they point at a stored
    item rather than being one.
    """
    if input is None:
        return []
    if isinstance(input, str):
        return [_message("user", input)]
    return [_normalize_item(item) for item in input]


def _message(role: str, text: str, item_id: str | None = None) -> dict[str, Any]:
    return {
        "id": item_id or new_item_id("msg"),
        "type": "message",
        "role": role,
        "content": [_text_part(role, text)],
        "status": "completed",
    }


def _text_part(role: str, text: str) -> dict[str, Any]:
    if role == "assistant":
        return {"type": "output_text", "text": text, "annotations": []}
    return {"type": "input_text", "text": text}


def _normalize_item(item: dict[str, Any]) -> dict[str, Any]:
    item_type = item.get("type", "message" if "role" in item else None)
    if item_type is None and "role" not in item and "id" in item:  # openai's ItemReference: `type` optional
        return {**item, "type": "item_reference"}
    if item_type == "item_reference" or not isinstance(item_type, str):
        return dict(item)
    if item_type == "message" and isinstance(item.get("content"), str):
        normalized = _message(item["role"], item["content"], item.get("id"))
        normalized.update({k: v for k, v in item.items() if k not in normalized and k != "content"})
        if "status" in item:
            normalized["status"] = item["status"]
        return normalized
    normalized = {"id": item.get("id") or new_item_id(_ID_PREFIXES.get(item_type, "item")), "type": item_type}
    normalized.update({k: v for k, v in item.items() if k not in ("id", "type")})
    if item_type == "message" and item.get("role") == "assistant" and isinstance(item.get("content"), list):
        normalized["content"] = [_with_annotations(part) for part in item["content"]]
    if item_type in _NEEDS_STATUS and normalized.get("status") is None:
        normalized["status"] = "completed"
    return normalized


def _with_annotations(part: Any) -> Any:
    """Stored output_text parts always carry `annotations`, even when the client left them out."""
    if isinstance(part, dict) and part.get("type") == "output_text" and "annotations" not in part:
        return {**part, "annotations": []}
    return part
