"""Responses request -> Anthropic Messages request. Pure: no I/O, no state.

Every Responses field lands in exactly one place: mapped (the `_PARAMETERS` table and the item
converters), consumed by the gateway (`GATEWAY_FIELDS`), or refused with a 400 naming it unless
`drop_params` asks to drop it. Provider-only parameters come from the deployment's
`litellm_params` (`Deployment.extra`): `top_k`, `anthropic_beta`, `extra_headers`, `extra_body`,
`thinking_budgets`, and the prompt-caching switches:

* `prompt_caching: true` marks the system prompt, the last tool and the last message block with
  `cache_control: {"type": "ephemeral"}` (three of Anthropic's four breakpoints);
* `cache_control_injection_points` (LiteLLM's form) lists where instead: `{"location": "message",
  "role": "system" | "user" | "assistant"}` marks the last block of every message of that role,
  `{"location": "message", "index": n}` the last block of message `n` (negative from the end).

Reasoning items go back as the blocks they came from: a `thinking` block (the summary text as the
thinking, `encrypted_content` as the signature) or, when `encrypted_content` carries the
`REDACTED_PREFIX` marker, a `redacted_thinking` block. Anthropic refuses a tool-use turn whose
thinking was altered or dropped, so they are copied exactly. A reasoning item without
`encrypted_content` (another provider's thoughts) cannot be signed and is left out.

Hosted tools (hosted.py): web search becomes Anthropic's web search server tool, the computer tool
Claude's computer tool (computer.py: the tool version, its beta, the actions both ways); a past
`computer_call` goes back as the tool_use it was, its `computer_call_output` as a tool_result with the
screenshot, and a past `web_search_call` is left out (Anthropic's result blocks are sealed).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Final

import orjson

from ...deployments import Deployment
from ...errors import InvalidRequestError
from ..chat.request import GATEWAY_FIELDS
from ..refusals import FieldMapping
from . import computer
from .caching import inject_cache_control
from .hosted import COMPUTER_TYPES, WEB_SEARCH_NAME, WEB_SEARCH_TYPES, hosted_tool

__all__ = ["DEFAULT_MAX_TOKENS", "REDACTED_PREFIX", "SIGNATURE_PREFIX", "THINKING_BUDGETS", "beta_header",
           "to_messages_request"]

Json = dict[str, Any]

DEFAULT_MAX_TOKENS: Final = 4096
#: marks a redacted_thinking block's opaque data inside a reasoning item's encrypted_content
REDACTED_PREFIX: Final = "anthropic-redacted:"
#: marks a thinking block's signature: only what Anthropic signed goes back to Anthropic (an OpenAI or
#: Gemini blob in encrypted_content would be refused as a bad signature)
SIGNATURE_PREFIX: Final = "anthropic-signature:"
#: reasoning.effort -> thinking budget_tokens (Anthropic's minimum is 1024); none/minimal: no thinking
THINKING_BUDGETS: Final[dict[str, int]] = {"low": 1024, "medium": 4096, "high": 16384}
_NO_THINKING: Final = frozenset({"none", "minimal"})
_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
#: the names Anthropic gives its hosted tools, and the OpenAI tool types that become them
_HOSTED_NAMES: Final = {computer.NAME: COMPUTER_TYPES, WEB_SEARCH_NAME: WEB_SEARCH_TYPES}
_BATCH_MARK: Final = "_batch"  # joins a computer call_id and the index of an action of its batch (ids: [A-Za-z0-9_-])


class _Mapping(FieldMapping):
    __slots__ = ("deployment",)

    def __init__(self, drop_params: bool, deployment: Deployment) -> None:
        super().__init__("the 'anthropic' provider (Messages API)", drop_params)
        self.deployment = deployment


def to_messages_request(body: Json, items: list[Json], d: Deployment, *, stream: bool,
                        drop_params: bool) -> Json:
    """The Messages body for a validated Responses `body` whose input (chain + this turn) is `items`."""
    m = _Mapping(drop_params, d)
    for key, value in body.items():
        if value is not None and key not in _PARAMETERS and key not in GATEWAY_FIELDS and key != "instructions":
            m.refuse(key, f"'{key}'")
    conv = _Conversation(m)
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        conv.system.append({"type": "text", "text": body["instructions"]})
    elif isinstance(body.get("instructions"), list):  # a stored prompt's instructions arrive as items
        for j, item in enumerate(body["instructions"]):
            _message_item(conv, item, f"instructions[{j}]")
    for i, item in enumerate(items):
        convert = _ITEMS.get(item.get("type", "message"))
        if convert is None:
            m.refuse(f"input[{i}].type", f"Input items of type '{item.get('type')}'", code="unsupported_value")
        else:
            convert(conv, item, f"input[{i}]")
    if not conv.messages:  # Anthropic refuses a request without one (system text alone is not one)
        raise InvalidRequestError("The input has no message Anthropic accepts: it needs a user or assistant message "
                                  "with content.", param="input", code="invalid_value")
    out: Json = {"model": d.upstream_model, "max_tokens": _default_max_tokens(d), "messages": conv.messages}
    if conv.system:
        out["system"] = conv.system
    for key, mapper in _PARAMETERS.items():  # table order: tools before the fields that depend on them
        value = body.get(key)
        if value is not None:
            mapper(m, value, out)
    _fit_thinking_budget(body, out)
    if "tools" not in out:  # Anthropic refuses tool_choice without tools; with none it means nothing
        out.pop("tool_choice", None)
    if d.extra.get("top_k") is not None:
        out["top_k"] = d.extra["top_k"]
    inject_cache_control(out, d.extra)
    if isinstance(d.extra.get("extra_body"), dict):
        out.update(d.extra["extra_body"])
    if stream:
        out["stream"] = True
    _tidy_system(out)
    return out


def beta_header(d: Deployment) -> str | None:
    """`anthropic-beta` from litellm_params `anthropic_beta` (str or list) or `extra_headers`."""
    betas: list[str] = []
    raw = d.extra.get("anthropic_beta")
    betas += [raw] if isinstance(raw, str) else [str(b) for b in raw or ()]
    headers = d.extra.get("extra_headers")
    if isinstance(headers, dict):
        betas += [str(v) for k, v in headers.items() if k.lower() == "anthropic-beta"]
    return ",".join(betas) or None


def _default_max_tokens(d: Deployment) -> int:
    for key in ("max_output_tokens", "max_tokens"):
        value = d.model_info.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_TOKENS


# --- input items -> system and messages -----------------------------------------------------------

class _Conversation:
    """Alternating user/assistant messages; consecutive items of one role share a message."""

    __slots__ = ("batches", "m", "messages", "system")

    def __init__(self, m: _Mapping) -> None:
        self.m = m
        self.system: list[Json] = []
        self.messages: list[Json] = []
        self.batches: dict[str, list[str]] = {}  # computer call_id -> the ids of its batch's other actions

    def add(self, role: str, blocks: list[Json]) -> None:
        if not blocks:
            return
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == role:
            last["content"].extend(blocks)
        else:
            self.messages.append({"role": role, "content": list(blocks)})

    def add_tool_result(self, block: Json) -> None:
        """tool_result blocks come first in their user message, before any text the client added."""
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "user":
            content = last["content"]
            at = next((k for k, b in enumerate(content) if b["type"] != "tool_result"), len(content))
            content.insert(at, block)
        else:
            self.messages.append({"role": "user", "content": [block]})


def _message_item(conv: _Conversation, item: Json, param: str) -> None:
    m = conv.m
    m.check_extras(item, frozenset({"role", "content"}), param)
    role = item["role"]
    content = item["content"]
    parts: list[Json] = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
    if role in ("system", "developer"):  # Anthropic has one system prompt, before the messages
        for j, part in enumerate(parts):
            if part.get("type") in ("input_text", "output_text"):
                conv.system.append({"type": "text", "text": part["text"]})
            else:
                m.refuse(f"{param}.content[{j}].type", f"'{part.get('type')}' content in a {role} message",
                         code="unsupported_value")
        return
    blocks = [b for j, part in enumerate(parts) if (b := _content_block(m, role, part, f"{param}.content[{j}]"))]
    conv.add(role, blocks)


def _content_block(m: _Mapping, role: str, part: Json, param: str) -> Json | None:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        m.check_extras(part, frozenset({"text"}), param)
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and role == "assistant":
        return {"type": "text", "text": part["refusal"]}
    if role == "user" and kind == "input_image":
        return _image_block(m, part, param)
    if role == "user" and kind == "input_file":
        return _document_block(m, part, param)
    m.refuse(f"{param}.type", f"'{kind}' content in a {role} message", code="unsupported_value")
    return None


def _data_url(url: str) -> tuple[str, str] | None:
    """`data:<media type>;base64,<data>` -> (media type, data)."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    media_type, _, encoding = head.partition(";")
    return (media_type, data) if sep and encoding == "base64" else None


def _image_block(m: _Mapping, part: Json, param: str) -> Json | None:
    m.check_extras(part, frozenset({"image_url", "detail", "file_id"}), param)
    if part.get("detail") not in (None, "auto"):
        m.refuse(f"{param}.detail", f"Image detail '{part['detail']}'", code="unsupported_value")
    url = part.get("image_url")
    if not url:
        m.refuse(f"{param}.file_id", "Images by 'file_id'")
        return None
    inline = _data_url(url)
    if inline is None:
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = inline
    if media_type not in _IMAGE_TYPES:
        m.refuse(f"{param}.image_url", f"Images of type '{media_type}'", code="unsupported_value")
        return None
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document_block(m: _Mapping, part: Json, param: str) -> Json | None:
    m.check_extras(part, frozenset({"file_data", "filename", "file_id", "file_url", "detail"}), param)
    if part.get("file_id"):
        m.refuse(f"{param}.file_id", "Files by 'file_id'")
        return None
    block: Json
    if part.get("file_url"):
        block = {"type": "document", "source": {"type": "url", "url": part["file_url"]}}
    else:
        inline = _data_url(part.get("file_data") or "")
        if inline is None or inline[0] not in ("application/pdf", "text/plain"):
            m.refuse(f"{param}.file_data", "Files other than base64 PDF or plain text", code="unsupported_value")
            return None
        media_type, data = inline
        if media_type == "text/plain":  # Anthropic takes plain text documents as text, not base64
            text = base64.b64decode(data).decode("utf-8", "replace")
            block = {"type": "document", "source": {"type": "text", "media_type": media_type, "data": text}}
        else:
            block = {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if part.get("filename"):
        block["title"] = part["filename"]
    return block


def _function_call_item(conv: _Conversation, item: Json, param: str) -> None:
    conv.m.check_extras(item, frozenset({"call_id", "name", "arguments"}), param)
    try:
        arguments = orjson.loads(item["arguments"] or "{}")
    except orjson.JSONDecodeError:
        raise InvalidRequestError(f"'{param}.arguments' is not valid JSON; Anthropic takes tool input as an "
                                  "object.", param=f"{param}.arguments", code="invalid_value") from None
    if not isinstance(arguments, dict):
        arguments = {"value": arguments}
    conv.add("assistant", [{"type": "tool_use", "id": item["call_id"], "name": item["name"], "input": arguments}])


def _function_call_output_item(conv: _Conversation, item: Json, param: str) -> None:
    m = conv.m
    m.check_extras(item, frozenset({"call_id", "output"}), param)
    output = item["output"]
    content: str | list[Json]
    if isinstance(output, str):
        content = output
    else:
        content = [b for j, part in enumerate(output)
                   if (b := _content_block(m, "user", part, f"{param}.output[{j}]"))]
    conv.add_tool_result({"type": "tool_result", "tool_use_id": item["call_id"], "content": content})


def _reasoning_item(conv: _Conversation, item: Json, param: str) -> None:
    sealed = item.get("encrypted_content")
    if not isinstance(sealed, str) or not sealed:
        return  # another provider's thoughts: Anthropic takes back only what it signed
    if sealed.startswith(REDACTED_PREFIX):
        conv.add("assistant", [{"type": "redacted_thinking", "data": sealed[len(REDACTED_PREFIX):]}])
        return
    if not sealed.startswith(SIGNATURE_PREFIX):
        return  # another provider's encrypted reasoning: not Anthropic's to verify
    texts = [p["text"] for p in item.get("summary") or () if p.get("type") == "summary_text"]
    texts += [p["text"] for p in item.get("content") or () if p.get("type") == "reasoning_text"]
    conv.add("assistant", [{"type": "thinking", "thinking": "".join(texts),
                            "signature": sealed[len(SIGNATURE_PREFIX):]}])


def _item_reference(conv: _Conversation, item: Json, param: str) -> None:
    conv.m.unresolved_reference(item, param)


def _computer_call_item(conv: _Conversation, item: Json, param: str) -> None:
    """A computer call sent back: Claude's tool_use. A batch of actions becomes one tool_use each (the
    extra ones get ids of their own, answered with the batch's output)."""
    conv.m.check_extras(item, frozenset({"call_id", "action", "actions", "pending_safety_checks"}), param)
    actions = item.get("actions") or ([item["action"]] if item.get("action") else [{"type": "screenshot"}])
    ids = [item["call_id"]] + [f"{item['call_id']}{_BATCH_MARK}{k}" for k in range(1, len(actions))]
    conv.add("assistant", [{"type": "tool_use", "id": use_id, "name": computer.NAME, "input": computer.to_anthropic(a)}
                           for use_id, a in zip(ids, actions, strict=True)])
    conv.batches[item["call_id"]] = ids[1:]


def _computer_call_output_item(conv: _Conversation, item: Json, param: str) -> None:
    m = conv.m
    m.check_extras(item, frozenset({"call_id", "output", "acknowledged_safety_checks"}), param)
    shot = item["output"]
    url = shot.get("image_url")
    content: list[Json] = []
    if not url:
        m.refuse(f"{param}.output.file_id", "Screenshots by 'file_id'")
    else:
        block = _image_block(m, {"type": "input_image", "image_url": url}, f"{param}.output.image_url")
        content = [block] if block is not None else []
    for extra in conv.batches.pop(item["call_id"], []):  # the earlier actions of a batch: done
        conv.add_tool_result({"type": "tool_result", "tool_use_id": extra, "content": "done"})
    conv.add_tool_result({"type": "tool_result", "tool_use_id": item["call_id"], "content": content})


def _hosted_call_item(conv: _Conversation, item: Json, param: str) -> None:
    """A web search the model made (here or at OpenAI): its answer carries what it found; the search itself
    cannot be replayed (Anthropic's result blocks are sealed), so it is left out."""


_ITEMS: Final[dict[str, Callable[[_Conversation, Json, str], None]]] = {
    "message": _message_item,
    "function_call": _function_call_item,
    "function_call_output": _function_call_output_item,
    "reasoning": _reasoning_item,
    "item_reference": _item_reference,
    "computer_call": _computer_call_item,
    "computer_call_output": _computer_call_output_item,
    "web_search_call": _hosted_call_item,
}


# --- top-level parameters ---------------------------------------------------------------------------

def _tools(m: _Mapping, tools: list[Json], out: Json) -> None:
    converted: list[Json] = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            hosted = hosted_tool(m, tool, f"tools[{i}]", m.deployment)
            if hosted is not None and any(t.get("name") == hosted["name"] for t in converted):
                m.refuse(f"tools[{i}].type", f"A second '{tool['type']}' tool", code="unsupported_value")
            elif hosted is not None:
                converted.append(hosted)
            continue
        if tool["name"] in _HOSTED_NAMES and any(t.get("type") in _HOSTED_NAMES[tool["name"]] for t in tools):
            raise InvalidRequestError(f"A function named '{tool['name']}' clashes with the hosted tool Anthropic "
                                      "calls by that name; rename the function.", param=f"tools[{i}].name",
                                      code="invalid_value")
        m.check_extras(tool, frozenset({"name", "description", "parameters", "strict"}), f"tools[{i}]")
        spec: Json = {"name": tool["name"],
                      "input_schema": tool.get("parameters") or {"type": "object", "properties": {}}}
        if tool.get("description"):
            spec["description"] = tool["description"]
        if tool.get("strict"):
            spec["strict"] = True
        converted.append(spec)
    if converted:
        out["tools"] = converted


def _tool_choice(m: _Mapping, choice: str | Json, out: Json) -> None:
    hosted = next((name for name, types in _HOSTED_NAMES.items() if isinstance(choice, dict)
                   and choice.get("type") in types), None)
    if isinstance(choice, str):
        out["tool_choice"] = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    elif choice.get("type") == "function":
        out["tool_choice"] = {"type": "tool", "name": choice["name"]}
    elif hosted is not None and any(t.get("name") == hosted for t in out.get("tools") or ()):
        out["tool_choice"] = {"type": "tool", "name": hosted}
    else:
        m.refuse("tool_choice", f"tool_choice of type '{choice.get('type')}'", code="unsupported_value")


def _parallel_tool_calls(m: _Mapping, value: bool, out: Json) -> None:
    if not value and "tools" in out:  # parallel calls are Anthropic's default
        choice = out.setdefault("tool_choice", {"type": "auto"})
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True


def _text(m: _Mapping, text: Json, out: Json) -> None:
    if text.get("verbosity") is not None:
        m.refuse("text.verbosity", "'text.verbosity'")
    fmt = text.get("format") or {"type": "text"}
    if fmt["type"] == "json_schema":  # Anthropic's native structured output (GA `output_config.format`)
        out["output_config"] = {"format": {"type": "json_schema", "schema": fmt["schema"]}}
    elif fmt["type"] == "json_object":
        m.refuse("text.format", "JSON mode (json_object); use json_schema", code="unsupported_value")


def _reasoning(m: _Mapping, reasoning: Json, out: Json) -> None:
    effort = reasoning.get("effort")
    if effort is not None and effort not in _NO_THINKING:
        budget = THINKING_BUDGETS.get(effort)
        if budget is None:
            m.refuse("reasoning.effort", f"reasoning.effort '{effort}'", code="unsupported_value")
        else:
            out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    # `summary` needs nothing: Claude's thinking arrives summarised. Nothing else has a counterpart.
    for key in ("generate_summary", "context", "mode"):
        if reasoning.get(key) is not None:
            m.refuse(f"reasoning.{key}", f"'reasoning.{key}'")


def _fit_thinking_budget(body: Json, out: Json) -> None:
    """Anthropic wants budget_tokens < max_tokens: an explicit limit shrinks the budget (to its
    1024 minimum, below which the request is refused); a default limit grows to hold the budget."""
    thinking = out.get("thinking")
    if thinking is None or thinking["budget_tokens"] < out["max_tokens"]:
        return
    if body.get("max_output_tokens") is None:
        out["max_tokens"] += thinking["budget_tokens"]
    elif out["max_tokens"] > 1024:
        thinking["budget_tokens"] = out["max_tokens"] - 1
    else:
        raise InvalidRequestError("max_output_tokens must exceed 1024 when reasoning is on: Anthropic needs a "
                                  "thinking budget of at least 1024 tokens below it.", param="max_output_tokens",
                                  code="invalid_value")


def _max_output_tokens(m: _Mapping, value: int, out: Json) -> None:
    out["max_tokens"] = value


def _same(param: str) -> Callable[[_Mapping, Any, Json], None]:
    def mapper(m: _Mapping, value: Any, out: Json) -> None:
        out[param] = value
    return mapper


def _user(m: _Mapping, value: str, out: Json) -> None:
    out.setdefault("metadata", {})["user_id"] = value


def _service_tier(m: _Mapping, value: str, out: Json) -> None:
    tier = {"auto": "auto", "default": "standard_only"}.get(value)
    if tier is None:
        m.refuse("service_tier", f"service_tier '{value}'", code="unsupported_value")
    else:
        out["service_tier"] = tier


def _refused(param: str) -> Callable[[_Mapping, Any, Json], None]:
    def mapper(m: _Mapping, value: Any, out: Json) -> None:
        m.refuse(param, f"'{param}'")
    return mapper


_PARAMETERS: Final[dict[str, Callable[[_Mapping, Any, Json], None]]] = {
    "tools": _tools,  # before tool_choice / parallel_tool_calls, which look at the result
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _parallel_tool_calls,
    "max_output_tokens": _max_output_tokens,
    "text": _text,
    "reasoning": _reasoning,
    "temperature": _same("temperature"),
    "top_p": _same("top_p"),
    "safety_identifier": _user,
    "user": _user,  # after safety_identifier: an explicit `user` wins
    "service_tier": _service_tier,
    "top_logprobs": _refused("top_logprobs"),
    "max_tool_calls": _refused("max_tool_calls"),
    "prompt_cache_key": _refused("prompt_cache_key"),
    "prompt_cache_retention": _refused("prompt_cache_retention"),
}


def _tidy_system(out: Json) -> None:
    """A system prompt of one unmarked text block travels as a plain string: the common form."""
    system = out.get("system")
    if system and len(system) == 1 and set(system[0]) == {"type", "text"}:
        out["system"] = system[0]["text"]
