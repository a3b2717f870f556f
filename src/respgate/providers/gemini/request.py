"""Responses request -> Gemini `generateContent` body (AI Studio and Vertex AI). Pure: no I/O, no state.

Every Responses field is mapped (the `_PARAMETERS` table and the item converters), consumed by the
gateway (`GATEWAY_FIELDS`), accepted as an identifier with no effect on the answer (`_NO_EFFECT`:
user, safety_identifier, prompt_cache_key), or refused with a 400 naming it — dropped instead
under `drop_params`.

Choices worth knowing:
* system and developer messages join `systemInstruction` (Gemini has only user and model turns);
* images and files by URL travel as `fileData` with a MIME type guessed from the URL — nothing is
  fetched; data URLs travel inline;
* tool parameters go as `parametersJsonSchema` (full JSON Schema, `additionalProperties` included)
  and `text.format` json_schema as `responseJsonSchema`, so no schema is rewritten or narrowed;
  `strict` has no Gemini counterpart and is accepted as a hint;
* a function call's signature comes back from the reasoning item of its model turn (see
  signatures.py); a call that has none (made by another provider) gets Gemini's documented
  `skip_thought_signature_validator` so a thinking model accepts the chain;
* reasoning items from other providers are their own past thoughts and are not sent;
* `web_search` / `web_search_preview` become Google Search grounding (`googleSearch`), which has no
  domain filter or location (those are refused); a past `web_search_call` item is left out, its
  answer carries what it found. Other hosted tools are refused as `tools[i].type`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import Any, Final

import orjson

from ...errors import InvalidRequestError
from ..chat.request import GATEWAY_FIELDS
from ..refusals import FieldMapping
from . import signatures
from .signatures import Signed

__all__ = ["thinking_family", "to_gemini_request"]

Json = dict[str, Any]

_NO_EFFECT: Final = frozenset({"user", "safety_identifier", "prompt_cache_key"})


class _Mapping(FieldMapping):
    __slots__ = ("provider",)

    def __init__(self, provider: str, drop_params: bool) -> None:
        super().__init__(f"the '{provider}' provider (Gemini)", drop_params)
        self.provider = provider


def to_gemini_request(body: Json, items: list[Json], model: str, *, provider: str = "gemini",
                      drop_params: bool = False, extra: Json | None = None) -> Json:
    """The generateContent body for a validated Responses `body` with input `items` (chain + turn).
    `extra` is the deployment's other litellm_params (top_k, safety_settings, ...)."""
    m = _Mapping(provider, drop_params)
    out: Json = {}
    turns = _Turns(m)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        turns.system.append({"text": instructions})
    elif isinstance(instructions, list):
        for j, item in enumerate(instructions):
            turns.message(item, f"instructions[{j}]")
    for i, item in enumerate(items):
        turns.add(item, f"input[{i}]")
    out["contents"] = turns.finish()
    if not out["contents"]:  # Gemini refuses a request without one (systemInstruction alone is not one)
        raise InvalidRequestError("The input has no content Gemini accepts: it needs a user or model turn.",
                                  param="input", code="invalid_value")
    if turns.system:
        out["systemInstruction"] = {"parts": turns.system}
    for key, value in body.items():
        if value is None or key in GATEWAY_FIELDS or key in _NO_EFFECT or key == "instructions":
            continue
        mapper = _PARAMETERS.get(key)
        if mapper is None:
            m.refuse(key, f"'{key}'")
        else:
            mapper(m, value, out, model)
    _deployment_extras(extra or {}, out)
    return out


# --- input items -> contents ------------------------------------------------------------------------

class _Turns:
    """Contents being built: consecutive items of one role share a Content, as Gemini expects."""

    def __init__(self, m: _Mapping) -> None:
        self.m = m
        self.system: list[Json] = []
        self.contents: list[Json] = []
        self.call_names: dict[str, str] = {}  # call_id -> function name, for functionResponse
        self.signed: list[Signed] = []  # signatures of the model turn being built

    def part(self, role: str, part: Json) -> None:
        if not self.contents or self.contents[-1]["role"] != role:
            self._seal()
            if role == "user":
                self.signed.clear()  # signatures with no model turn after them belong nowhere
            self.contents.append({"role": role, "parts": []})
        self.contents[-1]["parts"].append(part)

    def add(self, item: Json, param: str) -> None:
        kind = item.get("type", "message")
        if kind == "message":
            self.message(item, param)
        elif kind == "function_call":
            self.m.check_extras(item, frozenset({"call_id", "name", "arguments"}), param)
            self.call_names[item["call_id"]] = item["name"]
            call: Json = {"name": item["name"], "args": _arguments(item.get("arguments") or "{}", param)}
            self.part("model", {"functionCall": call, "_call_id": item["call_id"]})
        elif kind == "function_call_output":
            self._function_output(item, param)
        elif kind == "reasoning":
            records = signatures.decode(item.get("encrypted_content"))
            if records:  # our own signatures: they belong to the model turn this item opens or joins
                self.signed.extend(records)
                thought = next((r for r in records if r.kind == "thought"), None)
                if thought is not None:
                    text = "".join(p.get("text", "") for p in item.get("summary") or [])
                    self.part("model", {"text": text, "thought": True, "thoughtSignature": thought.signature})
        elif kind != "web_search_call":  # a past search: its answer carries what it found (grounding is not replayed)
            self.m.refuse(f"{param}.type", f"Input items of type '{kind}'", code="unsupported_value")

    def message(self, item: Json, param: str) -> None:
        self.m.check_extras(item, frozenset({"role", "content"}), param)
        role, content = item["role"], item["content"]
        parts: list[Any] = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
        for j, part in enumerate(parts):
            where = f"{param}.content[{j}]"
            if role in ("system", "developer"):
                converted = self._input_part(part, where, media=False)
                if converted is not None:
                    self.system.append(converted)
            elif role == "assistant":
                self._assistant_part(part, where)
            else:
                converted = self._input_part(part, where, media=True)
                if converted is not None:
                    self.part("user", converted)

    def _assistant_part(self, part: Json, param: str) -> None:
        kind = part.get("type")
        if kind in ("output_text", "input_text"):
            self.part("model", {"text": part["text"]})
        elif kind == "refusal":
            self.part("model", {"text": part["refusal"]})
        else:
            self.m.refuse(f"{param}.type", f"Assistant content of type '{kind}'", code="unsupported_value")

    def _input_part(self, part: Json, param: str, *, media: bool) -> Json | None:
        kind = part.get("type")
        if kind == "input_text":
            self.m.check_extras(part, frozenset({"text"}), param)
            return {"text": part["text"]}
        if media and kind == "input_image":
            self.m.check_extras(part, frozenset({"image_url", "detail", "file_id"}), param)
            if part.get("detail") not in (None, "auto"):
                self.m.refuse(f"{param}.detail", f"Image detail '{part['detail']}'", code="unsupported_value")
            return self._media(part.get("image_url"), None, part, param)
        if media and kind == "input_file":
            self.m.check_extras(part, frozenset({"file_data", "filename", "file_id", "file_url", "detail"}), param)
            if part.get("file_data"):
                return self._media(part["file_data"], part.get("filename"), part, param)
            return self._media(part.get("file_url"), part.get("filename"), part, param)
        self.m.refuse(f"{param}.type", f"Content of type '{kind}' here", code="unsupported_value")
        return None

    def _media(self, url: object, filename: object, part: Json, param: str) -> Json | None:
        if not isinstance(url, str) or not url:
            self.m.refuse(f"{param}.file_id", "Content by 'file_id' (OpenAI's Files API)")
            return None
        if url.startswith("data:"):
            header, _, data = url.partition(",")
            mime = header[5:].split(";", 1)[0] or "application/octet-stream"
            return {"inlineData": {"mimeType": mime, "data": data}}
        guess = mimetypes.guess_type(str(filename or url.split("?", 1)[0]))[0]
        return {"fileData": {"mimeType": guess or "application/octet-stream", "fileUri": url}}

    def _function_output(self, item: Json, param: str) -> None:
        self.m.check_extras(item, frozenset({"call_id", "output"}), param)
        name = self.call_names.get(item["call_id"])
        if name is None:
            raise InvalidRequestError(f"No tool call found for function call output with call_id "
                                      f"{item['call_id']}.", param=f"{param}.call_id")
        output = item["output"]
        if isinstance(output, list):  # content parts: Gemini's functionResponse takes an object; texts kept
            texts = []
            for j, p in enumerate(output):
                if p.get("type") == "input_text":
                    texts.append(p["text"])
                else:
                    self.m.refuse(f"{param}.output[{j}].type", f"Tool output of type '{p.get('type')}'",
                                  code="unsupported_value")
            output = "".join(texts)
        self.part("user", {"functionResponse": {"name": name, "response": {"output": output}}})

    def _seal(self) -> None:
        """The model turn is complete: put its signatures on its parts."""
        if not self.contents or self.contents[-1]["role"] != "model":
            return
        parts = self.contents[-1]["parts"]
        by_call = {r.call_id: r.signature for r in self.signed if r.kind == "call"}
        text_sig = next((r.signature for r in self.signed if r.kind == "text"), None)
        first_call = True
        for p in parts:
            call_id = p.pop("_call_id", None)
            if call_id is not None:
                sig = by_call.get(call_id) or (signatures.SKIP_VALIDATION if first_call else None)
                if sig:
                    p["thoughtSignature"] = sig
                first_call = False
        texts = [p for p in parts if "text" in p and not p.get("thought")]
        if text_sig and texts:
            texts[-1]["thoughtSignature"] = text_sig
        self.signed.clear()

    def finish(self) -> list[Json]:
        self._seal()
        return self.contents


def _arguments(arguments: str, param: str) -> Json:
    try:
        args = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        raise InvalidRequestError("Function call arguments must be a JSON object.",
                                  param=f"{param}.arguments") from None
    if not isinstance(args, dict):
        raise InvalidRequestError("Function call arguments must be a JSON object.", param=f"{param}.arguments")
    return args


# --- parameters -------------------------------------------------------------------------------------

Mapper = Callable[[_Mapping, Any, Json, str], None]


def _generation(out: Json) -> Json:
    config: Json = out.setdefault("generationConfig", {})
    return config


def _set(name: str) -> Mapper:
    def mapper(m: _Mapping, value: Any, out: Json, model: str) -> None:
        _generation(out)[name] = value
    return mapper


_WEB_SEARCH: Final = frozenset({"web_search", "web_search_2025_08_26", "web_search_preview",
                                "web_search_preview_2025_03_11"})


def _tools(m: _Mapping, tools: list[Json], out: Json, model: str) -> None:
    declarations = []
    search = False
    for i, tool in enumerate(tools):
        if tool.get("type") in _WEB_SEARCH:
            search = _google_search(m, tool, f"tools[{i}]") or search
            continue
        if tool.get("type") != "function":
            m.refuse(f"tools[{i}].type", f"Tools of type '{tool.get('type')}'", code="unsupported_value")
            continue
        m.check_extras(tool, frozenset({"name", "description", "parameters", "strict"}), f"tools[{i}]")
        declaration: Json = {"name": tool["name"]}
        if tool.get("description"):
            declaration["description"] = tool["description"]
        if tool.get("parameters"):
            declaration["parametersJsonSchema"] = tool["parameters"]
        declarations.append(declaration)
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
    if search:  # Gemini 2.x refuses it beside functions ("Tool use with function calling is unsupported")
        out.setdefault("tools", []).append({"googleSearch": {}})


def _google_search(m: _Mapping, tool: Json, param: str) -> bool:
    """OpenAI's web search -> Google Search grounding, which has no domain filter or location; the
    search_context_size hint has no counterpart either and is accepted as one."""
    m.check_extras(tool, frozenset({"search_context_size", "user_location", "search_content_types",
                                    "external_web_access"}), param)
    if tool.get("external_web_access") is False:
        m.refuse(f"{param}.external_web_access", "Cached-only web search (external_web_access: false)",
                 code="unsupported_value")
    location = tool.get("user_location") or {}
    if any(location.get(k) for k in ("city", "region", "country", "timezone")):
        m.refuse(f"{param}.user_location", "A web search user_location", code="unsupported_value")
    if any(t != "text" for t in tool.get("search_content_types") or ()):
        m.refuse(f"{param}.search_content_types", "Image web search", code="unsupported_value")
    return True


_MODES: Final = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


def _tool_choice(m: _Mapping, choice: Any, out: Json, model: str) -> None:
    config: Json
    if isinstance(choice, str) and choice in _MODES:
        config = {"mode": _MODES[choice]}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        config = {"mode": "ANY", "allowedFunctionNames": [choice["name"]]}
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        names = [t["name"] for t in choice.get("tools") or [] if t.get("type") == "function"]
        config = {"mode": "ANY" if choice.get("mode") == "required" else "AUTO", "allowedFunctionNames": names}
    else:
        kind = choice.get("type") if isinstance(choice, dict) else choice
        m.refuse("tool_choice", f"tool_choice '{kind}'", code="unsupported_value")
        return
    if config == {"mode": "AUTO"}:
        return  # Gemini's default
    out["toolConfig"] = {"functionCallingConfig": config}


def _parallel_tool_calls(m: _Mapping, value: bool, out: Json, model: str) -> None:
    if value is False:  # Gemini decides alone how many calls a step makes
        m.refuse("parallel_tool_calls", "'parallel_tool_calls': false", code="unsupported_value")


def _text(m: _Mapping, text: Json, out: Json, model: str) -> None:
    fmt = text.get("format") or {}
    kind = fmt.get("type", "text")
    if kind == "json_schema":
        _generation(out).update(responseMimeType="application/json", responseJsonSchema=fmt["schema"])
    elif kind == "json_object":
        _generation(out)["responseMimeType"] = "application/json"
    elif kind != "text":
        m.refuse("text.format.type", f"text.format '{kind}'", code="unsupported_value")
    if text.get("verbosity") not in (None, "medium"):
        m.refuse("text.verbosity", "'text.verbosity'")


def thinking_family(model: str) -> str:
    """"level" for Gemini 3 (thinkingLevel), "budget" for 2.x (thinkingBudget)."""
    return "level" if "gemini-3" in model else "budget"


_BUDGETS: Final = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
_LEVELS: Final = {"none": "low", "minimal": "low", "low": "low", "medium": "high", "high": "high", "xhigh": "high"}


def _reasoning(m: _Mapping, reasoning: Json, out: Json, model: str) -> None:
    effort, summary = reasoning.get("effort"), reasoning.get("summary") or reasoning.get("generate_summary")
    if effort is None and summary is None:
        return
    config: Json = {}
    if effort is not None:
        if thinking_family(model) == "level":
            config["thinkingLevel"] = _LEVELS.get(effort, "high")
        else:
            config["thinkingBudget"] = _BUDGETS.get(effort, -1)
    config["includeThoughts"] = effort != "none"
    _generation(out)["thinkingConfig"] = config


def _service_tier(m: _Mapping, tier: str, out: Json, model: str) -> None:
    if tier not in ("auto", "default"):
        m.refuse("service_tier", f"service_tier '{tier}'", code="unsupported_value")



def _refuse_as(name: str) -> Mapper:
    def mapper(m: _Mapping, value: Any, out: Json, model: str) -> None:
        if value not in (0, False):
            m.refuse(name, f"'{name}'")
    return mapper


_PARAMETERS: Final[dict[str, Mapper]] = {
    "tools": _tools,
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _parallel_tool_calls,
    "text": _text,
    "reasoning": _reasoning,
    "max_output_tokens": _set("maxOutputTokens"),
    "temperature": _set("temperature"),
    "top_p": _set("topP"),
    "service_tier": _service_tier,
    "top_logprobs": _refuse_as("top_logprobs"),
    "max_tool_calls": _refuse_as("max_tool_calls"),
    "prompt_cache_retention": _refuse_as("prompt_cache_retention"),
}

# litellm_params that go into the body: (name in litellm_params, where, field)
_EXTRAS: Final = (("top_k", "generationConfig", "topK"), ("seed", "generationConfig", "seed"),
                  ("stop", "generationConfig", "stopSequences"), ("candidate_count", "generationConfig",
                                                                   "candidateCount"),
                  ("safety_settings", "", "safetySettings"), ("cached_content", "", "cachedContent"))


def _deployment_extras(extra: Json, out: Json) -> None:
    for name, where, field in _EXTRAS:
        value = extra.get(name)
        if value is None:
            continue
        (_generation(out) if where else out)[field] = value
