"""A prompt version's template and its rendering with a request's variables. Pure: no I/O.

A template is an ordered list of messages (role + content parts) and a few default create parameters.
It is read from a prompt's `litellm_params`, in LiteLLM's dotprompt forms or inline:

* `dotprompt_content`: optional YAML front matter (`temperature`, `max_tokens`, ...) between `---` lines,
  then the body with `System:` / `Developer:` / `User:` / `Assistant:` line prefixes (no prefix: one
  user message), as LiteLLM's dotprompt manager splits it;
* `prompt_data`: `{<id>: {content, metadata}}` (the body, and the front matter as a mapping);
* inline: `instructions` (a string) and/or `input` (a string, or a list of `{role, content}` messages
  whose content is a string or Responses content parts).

Variables are `{{name}}` (spaces allowed inside the braces); no other template language. A string or
`input_text` value replaces the placeholder in the text; an `input_image` / `input_file` value splits
the text there and becomes a part of its own, so it can only stand in a user message. Leading system
and developer messages become the request's `instructions` (merged before the request's own), the
other messages go before the request's input: OpenAI's semantics for a prompt with messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import yaml

from ..errors import InvalidRequestError

__all__ = ["PromptFormatError", "Rendered", "Template", "parse_template"]

Json = dict[str, Any]

PLACEHOLDER: Final = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")
_ROLE_PREFIXES: Final = (("System:", "system"), ("Developer:", "developer"), ("User:", "user"),
                         ("Assistant:", "assistant"))
_ROLES: Final = frozenset({"system", "developer", "user", "assistant"})
_TEXT_PARTS: Final = frozenset({"input_text", "output_text"})
_MEDIA_PARTS: Final = frozenset({"input_image", "input_file"})
#: front matter keys that become create parameters when the request leaves them out (LiteLLM's names too)
_DEFAULTS: Final = {"temperature": "temperature", "top_p": "top_p", "max_output_tokens": "max_output_tokens",
                    "max_tokens": "max_output_tokens"}


class PromptFormatError(ValueError):
    """A prompt definition that cannot be read; `field` names where, relative to `litellm_params`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Rendered:
    instructions: str | None
    messages: list[Json]  # EasyInputMessage-shaped input items
    defaults: Json


@dataclass(frozen=True, slots=True)
class Template:
    messages: tuple[Json, ...]  # {"role": str, "parts": [content part, ...]}
    defaults: Json
    variables: tuple[str, ...]  # placeholders, in order of first use

    def render(self, values: dict[str, Any]) -> Rendered:
        """The messages with `values` (already checked by `check_variables`) substituted."""
        instructions: list[str] = []
        messages: list[Json] = []
        leading = True
        for message in self.messages:
            role = message["role"]
            parts = [p for part in message["parts"] for p in _render_part(part, role, values)]
            leading = leading and role in ("system", "developer")
            if leading:
                instructions.append("".join(p["text"] for p in parts))
                continue
            messages.append(_message(role, parts))
        return Rendered("\n\n".join(instructions) if instructions else None, messages, dict(self.defaults))


def check_variables(template: Template, variables: Any) -> dict[str, Any]:
    """The request's `prompt.variables` as {name: str | media part}; a missing one is a 400 naming it."""
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        raise InvalidRequestError("Invalid type for 'prompt.variables': expected an object.",
                                  param="prompt.variables", code="invalid_type")
    values: dict[str, Any] = {}
    for name, value in variables.items():
        values[name] = _variable_value(name, value)
    for name in template.variables:
        if name not in values:
            raise InvalidRequestError(f"Missing value for prompt variable '{name}'.",
                                      param=f"prompt.variables.{name}", code="missing_required_parameter")
    media_in = {name for m in template.messages if m["role"] != "user" for p in m["parts"]
                if p["type"] in _TEXT_PARTS for name in PLACEHOLDER.findall(p["text"])}
    for name in sorted(media_in):
        if isinstance(values[name], dict):
            raise InvalidRequestError(f"Prompt variable '{name}' is a {values[name]['type']}, but the prompt uses it "
                                      "outside a user message, where only text can go.",
                                      param=f"prompt.variables.{name}", code="invalid_value")
    return values


def _variable_value(name: str, value: Any) -> str | Json:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "input_text" and isinstance(value.get("text"), str):
            return str(value["text"])
        if kind in _MEDIA_PARTS:
            return dict(value)
    raise InvalidRequestError(f"Invalid value for prompt variable '{name}': expected a string or an input_text, "
                              "input_image or input_file object.", param=f"prompt.variables.{name}",
                              code="invalid_value")


def _render_part(part: Json, role: str, values: dict[str, Any]) -> list[Json]:
    if part["type"] not in _TEXT_PARTS:
        return [part]
    out: list[Json] = []
    text: list[str] = []
    at = 0
    source = part["text"]
    for match in PLACEHOLDER.finditer(source):
        text.append(source[at:match.start()])
        value = values[match.group(1)]
        if isinstance(value, str):
            text.append(value)
        else:  # a media part: the text so far, then the part (only in user messages: see check_variables)
            out += _text_part("".join(text), role)
            text = []
            out.append(value)
        at = match.end()
    text.append(source[at:])
    out += _text_part("".join(text), role)
    return out


def _text_part(text: str, role: str) -> list[Json]:
    if not text:
        return []
    return [{"type": "output_text" if role == "assistant" else "input_text", "text": text}]


def _message(role: str, parts: list[Json]) -> Json:
    if all(p["type"] in _TEXT_PARTS for p in parts):  # the common case: plain text content
        return {"type": "message", "role": role, "content": "".join(p["text"] for p in parts)}
    return {"type": "message", "role": role, "content": parts}


# --- reading a definition ------------------------------------------------------------------------------

def parse_template(prompt_id: str, params: Any) -> Template:
    """The template a prompt's `litellm_params` define; `PromptFormatError` names what is wrong."""
    if not isinstance(params, dict):
        raise PromptFormatError("", "litellm_params must be a mapping")
    integration = params.get("prompt_integration", "dotprompt")
    if integration not in ("dotprompt", "inline"):
        raise PromptFormatError("prompt_integration", f"prompt_integration {integration!r} is not supported; use "
                                                      "dotprompt (dotprompt_content, prompt_data) or inline messages")
    messages: list[Json]
    defaults: Json
    if params.get("dotprompt_content") is not None:
        messages, defaults = _dotprompt(params["dotprompt_content"], "dotprompt_content")
    elif params.get("prompt_data") is not None:
        messages, defaults = _prompt_data(prompt_id, params["prompt_data"])
    elif params.get("instructions") is not None or params.get("input") is not None:
        messages, defaults = _inline(params), {}
    else:
        raise PromptFormatError("", "a prompt needs dotprompt_content, prompt_data, or instructions/input")
    if not messages:
        raise PromptFormatError("", "the prompt has no text")
    names: dict[str, None] = {}
    for m in messages:
        for p in m["parts"]:
            if p["type"] in _TEXT_PARTS:
                names.update(dict.fromkeys(PLACEHOLDER.findall(p["text"])))
    return Template(tuple(messages), defaults, tuple(names))


def _dotprompt(content: Any, field: str) -> tuple[list[Json], Json]:
    if not isinstance(content, str):
        raise PromptFormatError(field, f"{field} must be a string")
    metadata: Any = {}
    body = content
    if content.lstrip().startswith("---"):
        _, sep, rest = content.lstrip().partition("---")
        front, sep, body = rest.partition("\n---")
        if not sep:
            raise PromptFormatError(field, "front matter opened with --- is never closed")
        try:
            metadata = yaml.safe_load(front) or {}
        except yaml.YAMLError:
            raise PromptFormatError(field, "the front matter is not valid YAML") from None
        body = body.partition("\n")[2]
    return _split_roles(body), _defaults(metadata, field)


def _prompt_data(prompt_id: str, data: Any) -> tuple[list[Json], Json]:
    if not isinstance(data, dict) or not data:
        raise PromptFormatError("prompt_data", "prompt_data must map a prompt id to {content, metadata}")
    key = prompt_id if prompt_id in data else next(iter(data))
    entry = data[key]
    if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
        raise PromptFormatError(f"prompt_data.{key}.content", "content must be a string")
    messages = _split_roles(entry["content"])
    return messages, _defaults(entry.get("metadata") or {}, f"prompt_data.{key}.metadata")


def _split_roles(body: str) -> list[Json]:
    """LiteLLM's dotprompt reading: a line starting with a role prefix opens a message of that role."""
    messages: list[tuple[str, list[str]]] = []
    for line in body.strip().split("\n"):
        stripped = line.strip()
        prefix = next(((p, role) for p, role in _ROLE_PREFIXES if stripped.startswith(p)), None)
        if prefix is not None:
            messages.append((prefix[1], [stripped[len(prefix[0]):].strip()]))
        elif messages:
            messages[-1][1].append(stripped)
        else:
            messages.append(("user", [stripped]))
    out = []
    for role, lines in messages:
        text = "\n".join(lines).strip()
        if text:
            out.append({"role": role, "parts": _text_part(text, role)})
    return out


def _defaults(metadata: Any, field: str) -> Json:
    if not isinstance(metadata, dict):
        raise PromptFormatError(field, "the prompt's metadata must be a mapping")
    defaults: Json = {}
    for key, target in _DEFAULTS.items():
        value = metadata.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PromptFormatError(f"{field}.{key}", f"{key} must be a number")
        defaults[target] = int(value) if target == "max_output_tokens" else float(value)
    return defaults


def _inline(params: Json) -> list[Json]:
    messages: list[Json] = []
    instructions = params.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise PromptFormatError("instructions", "instructions must be a string")
        messages.append({"role": "developer", "parts": _text_part(instructions, "developer")})
    given = params.get("input")
    if isinstance(given, str):
        given = [{"role": "user", "content": given}]
    if given is None:
        given = []
    if not isinstance(given, list):
        raise PromptFormatError("input", "input must be a string or a list of messages")
    for i, message in enumerate(given):
        messages.append(_inline_message(message, f"input[{i}]"))
    return messages


def _inline_message(message: Any, field: str) -> Json:
    if not isinstance(message, dict) or not isinstance(message.get("role"), str) or message["role"] not in _ROLES:
        raise PromptFormatError(f"{field}.role", "each message needs a role: system, developer, user or assistant")
    unknown = set(message) - {"role", "content", "type"}
    if unknown or message.get("type", "message") != "message":
        raise PromptFormatError(field, f"unexpected keys in a message: {sorted(unknown) or ['type']}")
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return {"role": role, "parts": _text_part(content, role)}
    if not isinstance(content, list):
        raise PromptFormatError(f"{field}.content", "content must be a string or a list of content parts")
    parts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            parts += _text_part(part["text"], role)
        elif kind in _MEDIA_PARTS and role == "user":
            parts.append(dict(part))
        else:
            raise PromptFormatError(f"{field}.content[{j}]", "parts are input_text (any role), or input_image / "
                                                             "input_file (user messages only)")
    return {"role": role, "parts": parts}
