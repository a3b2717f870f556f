"""The schemas of `/openapi.json` that come from the `openai` package (proxy/openapi.py puts them in).

Request bodies are openai's `*Params` TypedDicts — the very types `request.py` and `chatapi/request.py`
validate against — as pydantic writes them in JSON Schema, tuned as the wire is (request.py's rules:
closed objects, the API's optional, required and extra fields, OpenAI's numeric ranges); the Chat
Completions body as the bridge takes it. Answers are openai's `Response` and `ChatCompletion` models.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from pydantic import TypeAdapter

_REF: Final = "#/components/schemas/{model}"
Json = dict[str, Any]
Fields = dict[str, tuple[str, ...]]  # TypedDict name -> field names


def _tuned(schema: Any, optional: Fields, required: Fields, extra: Fields) -> Any:
    """pydantic's JSON Schema of a TypedDict, as the wire accepts it: closed objects (open maps stay open),
    the API's optional fields out of `required`, the ones a built response needs in it (and not null), the
    API's extra fields added; titles dropped. The rules are request.py's, so the two agree."""
    if isinstance(schema, list):
        return [_tuned(s, optional, required, extra) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _tuned(v, optional, required, extra) for k, v in schema.items() if k != "title"}
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
        name = schema.get("title", "")
        out["required"] = [r for r in out.get("required", ()) if r not in optional.get(name, ())]
        for field in required.get(name, ()):
            out["required"].append(field)
            options = out["properties"][field].get("anyOf", [])
            out["properties"][field] = next((o for o in options if o.get("type") != "null"), out["properties"][field])
        for field in extra.get(name, ()):
            out["properties"].setdefault(field, {"type": "string"})
        if not out["required"]:
            del out["required"]
    return out


def _openai_body(params: type, ranges: Iterable[tuple[str, float, float | None, bool]], optional: Fields | None = None,
                 required: Fields | None = None, extra: Fields | None = None) -> tuple[Json, Json]:
    """(body schema, its $defs) for an openai `*Params` TypedDict; `stream` takes true, false or null."""
    raw = TypeAdapter(params).json_schema(ref_template=_REF)
    defs = raw.pop("$defs", {})
    tuned = _tuned({**raw, "$defs": defs}, optional or {}, required or {}, extra or {})
    body, defs = {k: v for k, v in tuned.items() if k != "$defs"}, tuned["$defs"]
    body["properties"]["stream"] = {"type": ["boolean", "null"]}
    body["required"] = sorted({*body.get("required", ()), "model"})  # optional in openai's types, not here
    for name, low, high, is_integer in ranges:
        number: Json = {"type": "integer" if is_integer else "number", "minimum": low}
        if high is not None:
            number["maximum"] = high
        body["properties"][name] = {"anyOf": [number, {"type": "null"}]}
    return body, defs


def _openai_model(model: type, optional: Fields | None = None) -> tuple[Json, Json]:
    """(schema, $defs) of an openai response model, as it is serialised (extra keys allowed); a request's
    tools are echoed as they came, so what a request may leave out its answer may too."""
    raw = TypeAdapter(model).json_schema(ref_template=_REF, mode="serialization")
    defs = raw.pop("$defs", {})
    for name, fields in (optional or {}).items():
        if name in defs and "required" in defs[name]:
            defs[name]["required"] = [r for r in defs[name]["required"] if r not in fields]
    return raw, defs


def openai_schemas() -> Json:
    """The schemas of the OpenAI routes' bodies and answers, and every type they refer to."""
    from openai.types.chat import ChatCompletion
    from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
    from openai.types.responses import Response
    from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming

    from ..chatapi.request import _RANGES as CHAT_RANGES
    from ..chatapi.request import _UNSUPPORTED as CHAT_UNSUPPORTED
    from ..request import _API_EXTRA, _API_OPTIONAL, _API_REQUIRED
    from ..request import _RANGES as RESPONSES_RANGES

    create, defs = _openai_body(ResponseCreateParamsNonStreaming, RESPONSES_RANGES, dict(_API_OPTIONAL),
                                dict(_API_REQUIRED), dict(_API_EXTRA))
    chat, chat_defs = _openai_body(CompletionCreateParamsNonStreaming, CHAT_RANGES)
    _chat_as_bridged(chat, chat_defs, CHAT_UNSUPPORTED)
    response, response_defs = _openai_model(Response, {"FunctionTool": ("parameters", "strict"),
                                                       "Mcp": ("server_label",)})
    completion, completion_defs = _openai_model(ChatCompletion)
    schemas: Json = {}
    # Several openai types share a name (`Message`, `Function`...): each group keeps its own under a prefix.
    for prefix, group in (("", defs), ("Chat", chat_defs), ("Out", response_defs), ("ChatOut", completion_defs)):
        renamed = {name: prefix + name for name in group}
        for name, schema in group.items():
            schemas[renamed[name]] = _renamed_refs(schema, renamed)
        if prefix == "Chat":
            chat = _renamed_refs(chat, renamed)
        elif prefix == "Out":
            response = _renamed_refs(response, renamed)
        elif prefix == "ChatOut":
            completion = _renamed_refs(completion, renamed)
    schemas.update(CreateResponse=create, CreateChatCompletion=chat, Response=response,
                   ChatCompletion=completion, InputItem=create["properties"]["input"]["anyOf"][1]["items"])
    return schemas


def _chat_as_bridged(body: Json, defs: Json, unsupported: Iterable[str]) -> None:
    """What the Chat Completions bridge takes: no parameter without a Responses counterpart, no deprecated
    `function` role, at least one message."""
    for name in unsupported:
        body["properties"].pop(name, None)
    messages = body["properties"]["messages"]
    messages["minItems"] = 1
    messages["items"]["anyOf"] = [m for m in messages["items"]["anyOf"]
                                  if not m["$ref"].endswith("/ChatCompletionFunctionMessageParam")]
    defs["ChatCompletionAssistantMessageParam"]["properties"].pop("function_call", None)


def _renamed_refs(schema: Any, renamed: dict[str, str]) -> Any:
    if isinstance(schema, list):
        return [_renamed_refs(s, renamed) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _renamed_refs(v, renamed) for k, v in schema.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        out["$ref"] = "#/components/schemas/" + renamed.get(name, name)
    return out
