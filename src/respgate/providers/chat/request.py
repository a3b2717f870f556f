"""Responses request -> Chat Completions request, for one provider profile. Pure: no I/O, no state.

Every Responses field lands in exactly one place:

* mapped onto its Chat Completions counterpart (the `_PARAMETERS` table and the item converters);
* consumed by the gateway before a provider runs (`GATEWAY_FIELDS`: store, previous_response_id,
  metadata, ...), so never sent upstream;
* or refused: a 400 naming the field (`code="unsupported_parameter"` for a field,
  `"unsupported_value"` for a value such as a tool type or an item type), unless `drop_params`,
  LiteLLM's setting, asks to drop what the target cannot honour.

Two things are dropped on purpose, never refused, because they are not the client's request but
the model's own past output: reasoning items for a provider that takes no reasoning back (they
are the upstream's own earlier thoughts; chat APIs rebuild context without them), and the output
metadata of past assistant messages (`annotations`, `logprobs`, `phase`, item `id`/`status`).
A value equal to the upstream's default (`parallel_tool_calls: true`, `strict: false`,
`service_tier: "auto"`) is left out where the profile has no such field: nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ..refusals import FieldMapping
from .profiles import ChatProfile

__all__ = ["GATEWAY_FIELDS", "to_chat_request"]

Json = dict[str, Any]

#: Responses fields the gateway handles itself (state, storage, routing, our own SSE framing).
GATEWAY_FIELDS: Final = frozenset({
    "model", "input", "stream", "stream_options", "store", "background", "background_options",
    "previous_response_id", "truncation", "include", "conversation", "prompt", "metadata",
    "context_management",
})

# Keys of past output items that describe what the model produced, not what the client asks for.


class _Mapping(FieldMapping):
    """One translation: the profile, the drop_params choice, and the refusal rule."""

    __slots__ = ("profile",)

    def __init__(self, profile: ChatProfile, drop_params: bool) -> None:
        super().__init__(f"the '{profile.name}' provider (Chat Completions)", drop_params)
        self.profile = profile


def to_chat_request(body: dict[str, Any], items: list[dict[str, Any]], profile: ChatProfile, model: str, *,
                    stream: bool, drop_params: bool) -> dict[str, Any]:
    """The Chat Completions body for a validated Responses `body` whose input (chain + this turn,
    normalised) is `items`. Raises `InvalidRequestError` for what `profile` cannot honour."""
    m = _Mapping(profile, drop_params)
    out: Json = {"model": model, "messages": _messages(m, body.get("instructions"), items)}
    for key, value in body.items():
        if value is not None and key not in _PARAMETERS and key not in GATEWAY_FIELDS and key != "instructions":
            m.refuse(key, f"'{key}'")
    for key, mapper in _PARAMETERS.items():  # table order: tools before the fields that depend on them
        value = body.get(key)
        if value is not None:
            mapper(m, value, out)
    _tidy_tool_fields(out)
    if stream:
        out["stream"] = True
        if profile.supports_stream_usage:
            out["stream_options"] = {"include_usage": True}
    return out


# --- input items -> messages ------------------------------------------------------------------------

class _Conversation:
    """Messages being built; merges function calls into the assistant turn they belong to."""

    __slots__ = ("m", "messages", "reasoning")

    def __init__(self, m: _Mapping) -> None:
        self.m = m
        self.messages: list[Json] = []
        self.reasoning: list[str] = []  # the provider's past thoughts, waiting for their assistant turn

    def add(self, message: Json) -> None:
        if message["role"] == "assistant":
            self._attach_reasoning(message)
        else:
            self.reasoning.clear()  # reasoning with no assistant turn after it has nowhere to go
        self.messages.append(message)

    def tool_call(self, call: Json) -> None:
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
            self._attach_reasoning(last)
        else:
            self.add({"role": "assistant", "tool_calls": [call]})

    def _attach_reasoning(self, message: Json) -> None:
        if not self.reasoning:
            return
        field = self.m.profile.reasoning_field or "reasoning_content"
        message[field] = "\n\n".join([*filter(None, [message.get(field)]), *self.reasoning])
        self.reasoning.clear()


def _messages(m: _Mapping, instructions: object, items: list[Json]) -> list[Json]:
    conv = _Conversation(m)
    if isinstance(instructions, str) and instructions:
        conv.add({"role": "system", "content": instructions})
    elif isinstance(instructions, list):  # a stored prompt's instructions arrive as input items
        for j, item in enumerate(instructions):
            _message_item(conv, item, f"instructions[{j}]")
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        convert = _ITEMS.get(kind)
        if convert is None:
            m.refuse(f"input[{i}].type", f"Input items of type '{kind}'", code="unsupported_value")
        else:
            convert(conv, item, f"input[{i}]")
    return conv.messages


def _message_item(conv: _Conversation, item: Json, param: str) -> None:
    m = conv.m
    role = item["role"]
    if role == "developer" and not m.profile.supports_developer_role:
        role = "system"
    m.check_extras(item, frozenset({"role", "content"}), param)
    content = item["content"]
    parts: list[Any] = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
    if role == "assistant":
        _assistant_message(conv, parts, param)
        return
    converted = [c for j, part in enumerate(parts) if (c := _input_part(m, role, part, f"{param}.content[{j}]"))]
    conv.add({"role": role, "content": _content(converted)})


def _assistant_message(conv: _Conversation, parts: list[Json], param: str) -> None:
    texts: list[Json] = []
    refusals: list[str] = []
    for j, part in enumerate(parts):
        kind = part.get("type")
        if kind in ("output_text", "input_text"):
            conv.m.check_extras(part, frozenset({"text"}), f"{param}.content[{j}]")
            texts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            refusals.append(part["refusal"])
        else:
            conv.m.refuse(f"{param}.content[{j}].type", f"Assistant content of type '{kind}'",
                          code="unsupported_value")
    message: Json = {"role": "assistant"}
    if texts:
        message["content"] = _content(texts)
    if refusals:
        message["refusal"] = "".join(refusals)
    conv.add(message)


def _content(parts: list[Json]) -> str | list[Json]:
    """A lone text part travels as a plain string: the form every chat API accepts."""
    if not parts:  # every part dropped (drop_params)
        return ""
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


def _input_part(m: _Mapping, role: str, part: Json, param: str) -> Json | None:
    kind = part.get("type")
    if kind == "input_text":
        m.check_extras(part, frozenset({"text"}), param)
        return {"type": "text", "text": part["text"]}
    if role != "user":
        m.refuse(f"{param}.type", f"'{kind}' content in a {role} message", code="unsupported_value")
        return None
    if kind == "input_image":
        return _image_part(m, part, param)
    if kind == "input_file":
        return _file_part(m, part, param)
    m.refuse(f"{param}.type", f"Content of type '{kind}'", code="unsupported_value")
    return None


_CHAT_IMAGE_DETAIL: Final = frozenset({"auto", "low", "high"})


def _image_part(m: _Mapping, part: Json, param: str) -> Json | None:
    m.check_extras(part, frozenset({"image_url", "detail", "file_id"}), param)
    if not m.profile.supports_images:
        m.refuse(param, "Image input")
        return None
    url = part.get("image_url")
    if not url:  # a file id names a file in OpenAI's Files API, which this upstream cannot read
        m.refuse(f"{param}.file_id", "Images by 'file_id'")
        return None
    image: Json = {"url": url}
    detail = part.get("detail")
    if detail in _CHAT_IMAGE_DETAIL:
        image["detail"] = detail
    elif detail is not None:
        m.refuse(f"{param}.detail", f"Image detail '{detail}'", code="unsupported_value")
    return {"type": "image_url", "image_url": image}


def _file_part(m: _Mapping, part: Json, param: str) -> Json | None:
    m.check_extras(part, frozenset({"file_data", "filename", "file_id", "file_url", "detail"}), param)
    if not m.profile.supports_files:
        m.refuse(param, "File input ('input_file')")
        return None
    for field in ("file_id", "file_url"):  # OpenAI-side references the upstream cannot resolve
        if part.get(field):
            m.refuse(f"{param}.{field}", f"Files by '{field}'")
            return None
    if part.get("detail") not in (None, "auto"):
        m.refuse(f"{param}.detail", "File 'detail'")
    file: Json = {"file_data": part.get("file_data", "")}
    if part.get("filename"):
        file["filename"] = part["filename"]
    return {"type": "file", "file": file}


def _function_call_item(conv: _Conversation, item: Json, param: str) -> None:
    conv.m.check_extras(item, frozenset({"call_id", "name", "arguments"}), param)
    conv.tool_call({"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}})


def _function_call_output_item(conv: _Conversation, item: Json, param: str) -> None:
    m = conv.m
    m.check_extras(item, frozenset({"call_id", "output"}), param)
    output = item["output"]
    if isinstance(output, str):
        content: str | list[Json] = output
    else:  # chat tool messages carry text only
        texts = []
        for j, part in enumerate(output):
            if part.get("type") == "input_text":
                texts.append({"type": "text", "text": part["text"]})
            else:
                m.refuse(f"{param}.output[{j}].type", f"Tool output content of type '{part.get('type')}'",
                         code="unsupported_value")
        content = _content(texts)
    conv.add({"role": "tool", "tool_call_id": item["call_id"], "content": content})


def _reasoning_item(conv: _Conversation, item: Json, param: str) -> None:
    if not conv.m.profile.accepts_reasoning_back:
        return  # the provider's own past thoughts: it takes none back, so they are not sent (not refused)
    texts = [p["text"] for p in item.get("content") or () if p.get("type") == "reasoning_text"]
    if not texts:  # providers that give summaries only
        texts = [p["text"] for p in item.get("summary") or () if p.get("type") == "summary_text"]
    text = "\n\n".join(t for t in texts if t)
    if text:  # encrypted_content belongs to OpenAI; nothing else here can read it
        conv.reasoning.append(text)


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

def _tools(m: _Mapping, tools: list[Json], out: Json) -> None:
    if not tools:
        return
    if not m.profile.supports_tools:
        m.refuse("tools", "Tools")
        return
    converted = [t for i, tool in enumerate(tools) if (t := _tool(m, tool, f"tools[{i}]"))]
    if converted:
        out["tools"] = converted


def _tool(m: _Mapping, tool: Json, param: str) -> Json | None:
    if tool.get("type") != "function":
        m.refuse(f"{param}.type", f"Tools of type '{tool.get('type')}'", code="unsupported_value")
        return None
    m.check_extras(tool, frozenset({"name", "description", "parameters", "strict"}), param)
    function: Json = {"name": tool["name"]}
    for key in ("description", "parameters"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    strict = tool.get("strict")
    if strict is not None:
        if m.profile.supports_strict:
            function["strict"] = strict
        elif strict:
            m.refuse(f"{param}.strict", "Strict function calling")
    return {"type": "function", "function": function}


def _tool_choice(m: _Mapping, choice: str | Json, out: Json) -> None:
    if isinstance(choice, str):
        out["tool_choice"] = choice  # auto / none / required: the same words in both APIs
    elif choice.get("type") == "function":
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        m.refuse("tool_choice", f"tool_choice of type '{choice.get('type')}'", code="unsupported_value")


def _parallel_tool_calls(m: _Mapping, value: bool, out: Json) -> None:
    if m.profile.supports_parallel_tool_calls:
        out["parallel_tool_calls"] = value
    elif not value:  # true is every upstream's default
        m.refuse("parallel_tool_calls", "Turning off parallel tool calls")


def _tidy_tool_fields(out: Json) -> None:
    """Chat APIs refuse tool_choice/parallel_tool_calls without tools; with none they mean nothing."""
    if "tools" not in out:
        if out.get("tool_choice") in ("auto", "none"):
            del out["tool_choice"]
        out.pop("parallel_tool_calls", None)


def _text(m: _Mapping, text: Json, out: Json) -> None:
    if text.get("verbosity") is not None:
        m.refuse("text.verbosity", "'text.verbosity'")
    fmt = text.get("format")
    kind = fmt.get("type") if fmt else "text"
    if kind == "json_schema" and fmt is not None:
        _json_schema(m, fmt, out)
    elif kind == "json_object":
        if m.profile.supports_json_object:
            out["response_format"] = {"type": "json_object"}
        else:
            m.refuse("text.format", "JSON mode (json_object)", code="unsupported_value")


def _json_schema(m: _Mapping, fmt: Json, out: Json) -> None:
    if not m.profile.supports_json_schema:
        m.refuse("text.format", "Structured output (json_schema)", code="unsupported_value")
        return
    schema: Json = {"name": fmt["name"], "schema": fmt["schema"]}
    if fmt.get("description") is not None:
        schema["description"] = fmt["description"]
    strict = fmt.get("strict")
    if strict is not None:
        if m.profile.supports_strict:
            schema["strict"] = strict
        elif strict:
            m.refuse("text.format.strict", "Strict structured output")
    out["response_format"] = {"type": "json_schema", "json_schema": schema}


def _reasoning(m: _Mapping, reasoning: Json, out: Json) -> None:
    effort = reasoning.get("effort")
    if effort is not None:
        if m.profile.supports_reasoning_effort:
            out["reasoning_effort"] = effort
        else:
            m.refuse("reasoning.effort", "'reasoning.effort'")
    for key in ("summary", "generate_summary", "context", "mode"):  # no chat counterpart
        if reasoning.get(key) is not None:
            m.refuse(f"reasoning.{key}", f"'reasoning.{key}'")


def _max_output_tokens(m: _Mapping, value: int, out: Json) -> None:
    out[m.profile.max_tokens_param] = value


def _top_logprobs(m: _Mapping, value: int, out: Json) -> None:
    if m.profile.supports_logprobs:
        out["logprobs"] = True
        out["top_logprobs"] = value
    else:
        m.refuse("top_logprobs", "Log probabilities")


def _user(param: str) -> Callable[[_Mapping, str, Json], None]:
    def mapper(m: _Mapping, value: str, out: Json) -> None:
        if not m.profile.supports_user:
            m.refuse(param, f"'{param}'")
        elif param == "user" or "user" not in out:  # an explicit `user` wins over safety_identifier
            out["user"] = value
    return mapper


def _flagged(param: str, flag: str, defaults: frozenset[object] = frozenset()) -> Callable[[_Mapping, Any, Json], None]:
    """A field with the same name on both sides, sent when the profile's `flag` says so."""
    def mapper(m: _Mapping, value: Any, out: Json) -> None:
        if getattr(m.profile, flag):
            out[param] = value
        elif value not in defaults:
            m.refuse(param, f"'{param}'")
    return mapper


def _same(param: str) -> Callable[[_Mapping, Any, Json], None]:
    def mapper(m: _Mapping, value: Any, out: Json) -> None:
        out[param] = value
    return mapper


_PARAMETERS: Final[dict[str, Callable[[_Mapping, Any, Json], None]]] = {
    "tools": _tools,  # before tool_choice / parallel_tool_calls, which look at the result
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _parallel_tool_calls,
    "text": _text,
    "reasoning": _reasoning,
    "max_output_tokens": _max_output_tokens,
    "temperature": _same("temperature"),
    "top_p": _same("top_p"),
    "top_logprobs": _top_logprobs,
    "user": _user("user"),
    "safety_identifier": _user("safety_identifier"),
    "prompt_cache_key": _flagged("prompt_cache_key", "supports_prompt_cache_key"),
    "service_tier": _flagged("service_tier", "supports_service_tier", frozenset({"auto", "default"})),
}
