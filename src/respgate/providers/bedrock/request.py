"""Responses request -> Bedrock Converse request body. Pure: no I/O, no state.

Every Responses field lands in one place: mapped (the `_PARAMETERS` table and the item converters),
consumed by the gateway (`GATEWAY_FIELDS`), or refused with a 400 naming it (unless `drop_params`).

Converse wants alternating roles, so consecutive blocks of one role share a message: an assistant
turn is [reasoningContent..., text..., toolUse...] in item order, and tool results open the next user
message. Reasoning goes back exactly as it came (the signature or redacted blob kept in
`encrypted_content` under our prefix); reasoning from another provider has no signature Converse
could check, so it is left out (it is that model's own past thought, not the client's request).
The modelId is not in the body: it travels in the URL.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from ...errors import InvalidRequestError
from ..chat.request import GATEWAY_FIELDS
from ..refusals import FieldMapping

__all__ = ["REDACTED_PREFIX", "SIGNATURE_PREFIX", "THINKING_BUDGETS", "to_converse_request"]

Json = dict[str, Any]

#: `encrypted_content` of reasoning items made from Converse reasoningContent.
SIGNATURE_PREFIX: Final = "bedrock-signature:"
REDACTED_PREFIX: Final = "bedrock-redacted:"

#: reasoning.effort -> Claude's thinking budget (Anthropic's minimum is 1024).
THINKING_BUDGETS: Final = {"minimal": 1024, "low": 2048, "medium": 4096, "high": 8192, "xhigh": 16384}
_ANSWER_ROOM: Final = 4096  # maxTokens left for the answer when the client sets no limit with thinking

_IMAGE_FORMATS: Final = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                         "image/webp": "webp"}
_DOCUMENT_FORMATS: Final = {
    "application/pdf": "pdf", "text/csv": "csv", "text/plain": "txt", "text/html": "html", "text/markdown": "md",
    "application/msword": "doc", "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
_DATA_URL: Final = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)", re.DOTALL)
_CACHE_POINT: Final = {"cachePoint": {"type": "default"}}
_OPENING_USER_TEXT: Final = "."



class _Mapping(FieldMapping):
    __slots__ = ()

    def __init__(self, drop_params: bool) -> None:
        super().__init__("the 'bedrock' provider (Converse)", drop_params)


def to_converse_request(body: Json, items: list[Json], model_id: str, extra: Mapping[str, Any], *,
                        drop_params: bool) -> Json:
    """The Converse body for a validated Responses `body` whose input (chain + this turn) is `items`.

    `extra` is the deployment's other litellm_params: `top_k`, `additional_model_request_fields`
    (merged into additionalModelRequestFields) and `cache_control_injection_points` (cachePoint
    blocks after the system prompt and/or the last user message) come from there."""
    m = _Mapping(drop_params)
    conv = _Conversation(m)
    _instructions(conv, body.get("instructions"))
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        convert = _ITEMS.get(kind)
        if convert is None:
            m.refuse(f"input[{i}].type", f"Input items of type '{kind}'", code="unsupported_value")
        else:
            convert(conv, item, f"input[{i}]")
    if not conv.messages:  # Converse refuses a conversation without one message (blank text is left out)
        raise InvalidRequestError("The input has no content Bedrock accepts: every text is blank.", param="input",
                                  code="invalid_value")
    if conv.messages[0]["role"] == "assistant":
        # Converse refuses a conversation that opens with the assistant; a neutral user turn lets a
        # replayed history (or a prefilled answer) through, as LiteLLM does.
        conv.messages.insert(0, {"role": "user", "content": [{"text": _OPENING_USER_TEXT}]})
    out: Json = {"messages": conv.messages}
    if conv.system:
        out["system"] = conv.system
    for key, value in body.items():
        if value is not None and key not in _PARAMETERS and key not in GATEWAY_FIELDS and key != "instructions":
            m.refuse(key, f"'{key}'")
    for key, mapper in _PARAMETERS.items():  # table order: tools before tool_choice, limits before reasoning
        value = body.get(key)
        if value is not None:
            mapper(m, value, out, model_id)
    if "toolConfig" not in out:
        _tools_from_history(out)
    _passthrough(extra, out)
    _cache_points(extra, out)
    return out


def _tools_from_history(out: Json) -> None:
    """Converse refuses tool blocks in the history without a toolConfig; a turn that sends no tools
    gets the ones the history used (name only, any object input), as LiteLLM does."""
    names = dict.fromkeys(b["toolUse"]["name"] for msg in out["messages"] for b in msg["content"] if "toolUse" in b)
    if names:
        out["toolConfig"] = {"tools": [{"toolSpec": {"name": n, "inputSchema": {"json": {"type": "object"}}}}
                                       for n in names]}


# --- input items -> messages ------------------------------------------------------------------------

class _Conversation:
    __slots__ = ("m", "messages", "system")

    def __init__(self, m: _Mapping) -> None:
        self.m = m
        self.system: list[Json] = []
        self.messages: list[Json] = []

    def add(self, role: str, block: Json) -> None:
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == role:
            last["content"].append(block)
        else:
            self.messages.append({"role": role, "content": [block]})


def _instructions(conv: _Conversation, instructions: object) -> None:
    if isinstance(instructions, str) and instructions:
        conv.system.append({"text": instructions})
    elif isinstance(instructions, list):  # a stored prompt's instructions arrive as input items
        for j, item in enumerate(instructions):
            _message_item(conv, item, f"instructions[{j}]")


def _message_item(conv: _Conversation, item: Json, param: str) -> None:
    m = conv.m
    role = item["role"]
    m.check_extras(item, frozenset({"role", "content"}), param)
    content = item["content"]
    parts: list[Json] = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
    for j, part in enumerate(parts):
        where = f"{param}.content[{j}]"
        block = _content_block(m, role, part, where)
        if block is None:
            continue
        if role in ("system", "developer"):
            conv.system.append(block)
        else:
            conv.add(role, block)


def _content_block(m: _Mapping, role: str, part: Json, param: str) -> Json | None:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        m.check_extras(part, frozenset({"text"}), param)
        return {"text": part["text"]} if part["text"].strip() else None  # Converse refuses blank text blocks
    if kind == "refusal" and role == "assistant":
        return {"text": part["refusal"]} if part["refusal"].strip() else None
    if role == "user" and kind == "input_image":
        return _image_block(m, part, param)
    if role == "user" and kind == "input_file":
        return _document_block(m, part, param)
    m.refuse(f"{param}.type", f"'{kind}' content in a {role} message", code="unsupported_value")
    return None


def _decoded(m: _Mapping, url: str, param: str, what: str) -> tuple[str, str] | None:
    """(mime type, base64 payload) of a data URL; anything else is refused naming `param`."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        m.refuse(param, f"{what} by remote URL (Bedrock takes inline bytes; respgate does not fetch URLs)",
                 code="unsupported_value")
        return None
    data = match["data"]
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"'{param}' is not valid base64 data.", param=param,
                                  code="invalid_value") from None
    return match["mime"].lower(), data


def _image_block(m: _Mapping, part: Json, param: str) -> Json | None:
    m.check_extras(part, frozenset({"image_url", "detail", "file_id"}), param)
    url = part.get("image_url")
    if not url:
        m.refuse(f"{param}.file_id", "Images by 'file_id'")
        return None
    decoded = _decoded(m, url, f"{param}.image_url", "Images")
    if decoded is None:
        return None
    mime, data = decoded
    fmt = _IMAGE_FORMATS.get(mime)
    if fmt is None:
        m.refuse(f"{param}.image_url", f"Images of type '{mime}'", code="unsupported_value")
        return None
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _document_block(m: _Mapping, part: Json, param: str) -> Json | None:
    m.check_extras(part, frozenset({"file_data", "filename", "file_id", "file_url", "detail"}), param)
    for field in ("file_id", "file_url"):
        if part.get(field):
            m.refuse(f"{param}.{field}", f"Files by '{field}'")
            return None
    decoded = _decoded(m, part.get("file_data") or "", f"{param}.file_data", "Files")
    if decoded is None:
        return None
    mime, data = decoded
    fmt = _DOCUMENT_FORMATS.get(mime)
    if fmt is None:
        m.refuse(f"{param}.file_data", f"Files of type '{mime}'", code="unsupported_value")
        return None
    return {"document": {"format": fmt, "name": _document_name(part.get("filename")), "source": {"bytes": data}}}


def _document_name(filename: object) -> str:
    """Converse names allow letters, digits, single spaces, hyphens, parentheses and brackets only."""
    stem = str(filename or "document").rsplit(".", 1)[0]
    name = re.sub(r"\s+", " ", re.sub(r"[^A-Za-z0-9\s\-()\[\]]", "-", stem)).strip()
    return name or "document"


def _function_call_item(conv: _Conversation, item: Json, param: str) -> None:
    conv.m.check_extras(item, frozenset({"call_id", "name", "arguments"}), param)
    try:
        arguments = orjson.loads(item["arguments"] or "{}")
    except orjson.JSONDecodeError:
        raise InvalidRequestError(f"'{param}.arguments' is not valid JSON; Bedrock needs the tool input as a "
                                  "JSON object.", param=f"{param}.arguments", code="invalid_value") from None
    if not isinstance(arguments, dict):
        arguments = {"value": arguments}  # Converse tool input is always an object
    conv.add("assistant", {"toolUse": {"toolUseId": item["call_id"], "name": item["name"], "input": arguments}})


def _function_call_output_item(conv: _Conversation, item: Json, param: str) -> None:
    m = conv.m
    m.check_extras(item, frozenset({"call_id", "output"}), param)
    output = item["output"]
    content: list[Json] = []
    if isinstance(output, str):
        content.append({"text": output})
    else:
        for j, part in enumerate(output):
            block = _content_block(m, "user", part, f"{param}.output[{j}]")
            if block is not None and "document" not in block:
                content.append(block)
            elif block is not None:
                m.refuse(f"{param}.output[{j}].type", "Files in tool output", code="unsupported_value")
    conv.add("user", {"toolResult": {"toolUseId": item["call_id"], "content": content or [{"text": ""}]}})


def _reasoning_item(conv: _Conversation, item: Json, param: str) -> None:
    sealed = item.get("encrypted_content") or ""
    if sealed.startswith(REDACTED_PREFIX):
        block: Json = {"redactedContent": sealed[len(REDACTED_PREFIX):]}
    elif sealed.startswith(SIGNATURE_PREFIX):
        text = "".join(p["text"] for p in item.get("summary") or () if p.get("type") == "summary_text")
        block = {"reasoningText": {"text": text, "signature": sealed[len(SIGNATURE_PREFIX):]}}
    else:
        return  # another provider's thought (or one with no signature): nothing Converse can verify
    conv.add("assistant", {"reasoningContent": block})


def _item_reference(conv: _Conversation, item: Json, param: str) -> None:
    conv.m.unresolved_reference(item, param)


_ITEMS: Final[dict[str, Callable[[_Conversation, Json, str], None]]] = {
    "message": _message_item,
    "function_call": _function_call_item,
    "function_call_output": _function_call_output_item,
    "reasoning": _reasoning_item,
    "item_reference": _item_reference,
    # another provider's hosted web search, earlier in a chain: its results are already in the text
    "web_search_call": lambda conv, item, param: None,
}


# --- top-level parameters ---------------------------------------------------------------------------

def _tools(m: _Mapping, tools: list[Json], out: Json, model_id: str) -> None:
    specs = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            m.refuse(f"tools[{i}].type", f"Tools of type '{tool.get('type')}'", code="unsupported_value")
            continue
        m.check_extras(tool, frozenset({"name", "description", "parameters", "strict"}), f"tools[{i}]")
        spec: Json = {"name": tool["name"]}
        if tool.get("description"):
            spec["description"] = tool["description"]
        spec["inputSchema"] = {"json": tool.get("parameters") or {"type": "object", "properties": {}}}
        if tool.get("strict"):
            spec["strict"] = True
        specs.append({"toolSpec": spec})
    if specs:
        out["toolConfig"] = {"tools": specs}


def _tool_choice(m: _Mapping, choice: str | Json, out: Json, model_id: str) -> None:
    config = out.get("toolConfig")
    if isinstance(choice, dict) and choice.get("type") == "function":
        picked: Json | None = {"tool": {"name": choice["name"]}}
    elif choice == "required":
        picked = {"any": {}}
    elif choice == "auto":
        picked = {"auto": {}}
    else:
        shown = choice if isinstance(choice, str) else choice.get("type")
        m.refuse("tool_choice", f"tool_choice '{shown}'", code="unsupported_value")
        return
    if config is not None:
        config["toolChoice"] = picked


def _parallel_tool_calls(m: _Mapping, value: bool, out: Json, model_id: str) -> None:
    if not value:  # parallel calls are every Converse model's default and cannot be turned off
        m.refuse("parallel_tool_calls", "Turning off parallel tool calls")


def _text(m: _Mapping, text: Json, out: Json, model_id: str) -> None:
    if text.get("verbosity") is not None:
        m.refuse("text.verbosity", "'text.verbosity'")
    fmt = text.get("format")
    kind = fmt.get("type") if fmt else "text"
    if kind == "json_schema" and fmt is not None:
        # Converse's own structured output: the schema travels as a JSON string.
        schema: Json = {"schema": orjson.dumps(fmt["schema"]).decode(), "name": fmt["name"]}
        if fmt.get("description"):
            schema["description"] = fmt["description"]
        out["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}
    elif kind == "json_object":
        m.refuse("text.format", "JSON mode (json_object); use a json_schema format", code="unsupported_value")


def _is_claude(model_id: str) -> bool:
    return "anthropic.claude" in model_id or model_id.startswith("claude") or "/claude" in model_id


def _reasoning(m: _Mapping, reasoning: Json, out: Json, model_id: str) -> None:
    effort = reasoning.get("effort")
    for key in ("generate_summary", "context", "mode"):
        if reasoning.get(key) is not None:
            m.refuse(f"reasoning.{key}", f"'reasoning.{key}'")
    if effort is None or effort == "none":
        return
    budget = THINKING_BUDGETS.get(effort)
    if budget is None or not _is_claude(model_id):
        m.refuse("reasoning.effort", f"reasoning.effort '{effort}' for model '{model_id}'", code="unsupported_value")
        return
    inference = out.setdefault("inferenceConfig", {})
    limit = inference.get("maxTokens")
    if limit is None:
        inference["maxTokens"] = budget + _ANSWER_ROOM
    elif limit <= budget:  # Claude needs room to answer after thinking
        budget = limit - 1
        if budget < THINKING_BUDGETS["minimal"]:
            raise InvalidRequestError(
                f"max_output_tokens must be above {THINKING_BUDGETS['minimal']} when reasoning.effort is set "
                "for Claude on Bedrock (its smallest thinking budget).", param="max_output_tokens",
                code="invalid_value")
    out.setdefault("additionalModelRequestFields", {})["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _inference(name: str) -> Callable[[_Mapping, Any, Json, str], None]:
    def mapper(m: _Mapping, value: Any, out: Json, model_id: str) -> None:
        out.setdefault("inferenceConfig", {})[name] = value
    return mapper


def _service_tier(m: _Mapping, value: str, out: Json, model_id: str) -> None:
    if value in ("flex", "priority"):
        out["serviceTier"] = {"type": value}
    elif value not in ("auto", "default"):
        m.refuse("service_tier", f"service_tier '{value}'", code="unsupported_value")


def _refused(param: str) -> Callable[[_Mapping, Any, Json, str], None]:
    def mapper(m: _Mapping, value: Any, out: Json, model_id: str) -> None:
        m.refuse(param, f"'{param}'")
    return mapper


def _ignored(m: _Mapping, value: Any, out: Json, model_id: str) -> None:
    """Identifiers for OpenAI's abuse monitoring: nothing to do with the answer, nowhere to put them."""


_PARAMETERS: Final[dict[str, Callable[[_Mapping, Any, Json, str], None]]] = {
    "tools": _tools,
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _parallel_tool_calls,
    "text": _text,
    "max_output_tokens": _inference("maxTokens"),
    "temperature": _inference("temperature"),
    "top_p": _inference("topP"),
    "reasoning": _reasoning,  # after max_output_tokens: the budget must fit under it
    "service_tier": _service_tier,
    "top_logprobs": _refused("top_logprobs"),
    "prompt_cache_key": _refused("prompt_cache_key"),
    "user": _ignored,
    "safety_identifier": _ignored,
}


# --- deployment settings (litellm_params) ------------------------------------------------------------

def _passthrough(extra: Mapping[str, Any], out: Json) -> None:
    fields: Json = {}
    if extra.get("top_k") is not None:
        fields["top_k"] = extra["top_k"]
    more = extra.get("additional_model_request_fields")
    if isinstance(more, dict):
        fields.update(more)
    if fields:
        out["additionalModelRequestFields"] = {**fields, **out.get("additionalModelRequestFields", {})}


def _cache_points(extra: Mapping[str, Any], out: Json) -> None:
    """LiteLLM's `cache_control_injection_points`: [{location: message, role: system | user}]."""
    for point in extra.get("cache_control_injection_points") or ():
        role = point.get("role") if isinstance(point, dict) else None
        if role == "system" and out.get("system"):
            out["system"].append(dict(_CACHE_POINT))
        elif role == "user":
            users = [msg for msg in out["messages"] if msg["role"] == "user"]
            if users:
                users[-1]["content"].append(dict(_CACHE_POINT))
