"""Hypothesis properties of the request side: validation and the four translators. Pure, no network.

* `validate_create` on any JSON value, and on the bodies schemathesis makes from (and against) the
  `/openapi.json` create schema: the body back, or an `InvalidRequestError` that names the field;
  `validate_passthrough` likewise, and `normalize_input` on whatever it lets through.
* Every translator (chat bridge for each profile, Anthropic, Gemini, Bedrock) on valid Responses
  requests — messages with text, image and file parts, function tools and tool_choice, function calls
  and their outputs, reasoning items, instructions, sampling limits, structured output: a request the
  strict fake of that upstream accepts (the fakes' own validators, called directly), or an
  `InvalidRequestError` whose `param` names a field of the request — never another exception.
* Every translator on whatever the create schema allows that `validate_create` passes (any item and tool
  type, in any order): a body, or an `InvalidRequestError` naming a field.

    RESPGATE_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_translators.py     # a longer run (bench/fuzz.sh)
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis import GenerationMode

from fakes import anthropic_upstream, bedrock_upstream
from fakes.chat_upstream import Dialect, validate_chat
from fakes.gemini_upstream import ApiError as GeminiError
from fakes.gemini_upstream import FakeGemini, GenerateContentRequest
from fakes.openai_upstream import ApiError as ChatError
from respgate.deployments import Deployment
from respgate.errors import InvalidRequestError
from respgate.providers.anthropic.request import to_messages_request
from respgate.providers.bedrock.request import to_converse_request
from respgate.providers.chat.profiles import PROFILES, ChatProfile
from respgate.providers.chat.request import to_chat_request
from respgate.providers.gemini.request import to_gemini_request
from respgate.proxy.openapi import openapi_document
from respgate.request import KNOWN_PARAMETERS, normalize_input, validate_create, validate_passthrough

EXAMPLES = int(os.environ.get("RESPGATE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
Json = dict[str, Any]

# -- valid Responses requests ---------------------------------------------------------------------------

_WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=24)
TEXT = st.one_of(_WORDS.filter(str.strip), st.sampled_from(["hi", "call all", " ", ""]))
NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)


def _data_url(mime: str) -> st.SearchStrategy[str]:
    return st.binary(min_size=1, max_size=16).map(lambda b: f"data:{mime};base64,{base64.b64encode(b).decode()}")


IMAGE = st.fixed_dictionaries(
    {"type": st.just("input_image"),
     "image_url": st.one_of(*map(_data_url, ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")),
                            st.just("https://example.com/cat.png"))},
    optional={"detail": st.sampled_from(["auto", "low", "high"])})
FILE = st.one_of(
    st.fixed_dictionaries({"type": st.just("input_file"),
                           "file_data": st.one_of(_data_url("application/pdf"), _data_url("text/plain"),
                                                  _data_url("text/csv"), _data_url("application/zip"))},
                          optional={"filename": st.sampled_from(["report.pdf", "notes.txt", "a b.csv", "x"])}),
    st.fixed_dictionaries({"type": st.just("input_file"), "file_url": st.just("https://example.com/doc.pdf")}))
INPUT_TEXT = st.builds(lambda t: {"type": "input_text", "text": t}, TEXT)


def _message(role: str, parts: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    content = st.one_of(TEXT, st.lists(parts, min_size=1, max_size=3))
    return st.builds(lambda c, typed: {**({"type": "message"} if typed else {}), "role": role, "content": c},
                     content, st.booleans())


USER = _message("user", st.one_of(INPUT_TEXT, INPUT_TEXT, IMAGE, FILE))
SYSTEM = st.one_of(_message("system", INPUT_TEXT), _message("developer", INPUT_TEXT))
ASSISTANT = st.one_of(
    st.builds(lambda t: {"role": "assistant", "content": t}, TEXT),
    st.builds(lambda texts, n: {"type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                                "content": [{"type": "output_text", "text": t, "annotations": []} for t in texts]},
              st.lists(TEXT, min_size=1, max_size=2), st.integers(0, 99)))
SEALED = st.one_of(st.none(), st.sampled_from([  # another provider's blob, or our markers with a forged payload
    "opaque-openai-blob", "anthropic-signature:c2ln", "bedrock-signature:c2ln", "anthropic-redacted:cmVk",
    "bedrock-redacted:cmVk", "gemini.sig.v1.%%%"]))
ARGUMENTS = st.dictionaries(NAMES, st.one_of(st.integers(-5, 5), TEXT, st.booleans()), max_size=3).map(json.dumps)


@st.composite
def _tool_round(draw: st.DrawFn, names: list[str], counter: list[int]) -> list[Json]:
    """A model turn that calls functions (maybe after reasoning), then the output of every call."""
    items: list[Json] = []
    if draw(st.booleans()):
        reasoning: Json = {"type": "reasoning", "id": f"rs_{counter[0]}",
                           "summary": [{"type": "summary_text", "text": draw(TEXT)}]}
        sealed = draw(SEALED)
        if sealed is not None:
            reasoning["encrypted_content"] = sealed
        items.append(reasoning)
    calls = []
    for _ in range(draw(st.integers(1, 3))):
        counter[0] += 1
        name = draw(st.sampled_from(names)) if names else draw(NAMES)
        calls.append({"type": "function_call", "call_id": f"call_{counter[0]}", "name": name,
                      "arguments": draw(ARGUMENTS)})
    items += calls
    for call in calls:
        output = draw(st.one_of(TEXT, st.lists(INPUT_TEXT, min_size=1, max_size=2)))
        items.append({"type": "function_call_output", "call_id": call["call_id"], "output": output})
    return items


FUNCTION = st.builds(
    lambda desc, props, strict: {"type": "function", "name": "", **({"description": desc} if desc else {}),
                                 "parameters": {"type": "object", "properties": {p: {"type": "string"} for p in props},
                                                "required": sorted(props), "additionalProperties": False},
                                 **({"strict": strict} if strict is not None else {})},
    st.one_of(st.none(), TEXT), st.lists(NAMES, max_size=3, unique=True), st.one_of(st.none(), st.booleans()))
JSON_SCHEMA_FORMAT = st.builds(
    lambda name, strict: {"type": "json_schema", "name": name, "strict": strict, "schema": {
        "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
        "additionalProperties": False}}, NAMES, st.booleans())


@st.composite
def valid_requests(draw: st.DrawFn) -> Json:
    """A Responses create body a client could send: validate_create accepts it."""
    body: Json = {"model": "m"}
    names = draw(st.lists(NAMES, max_size=3, unique=True))
    if names:
        body["tools"] = [{**draw(FUNCTION), "name": n} for n in names]
        choice = st.one_of(st.sampled_from(["auto", "none", "required"]),
                           st.sampled_from(names).map(lambda n: {"type": "function", "name": n}))
        if draw(st.booleans()):
            body["tool_choice"] = draw(choice)
    if draw(st.booleans()):
        body["input"] = draw(TEXT)
    else:
        counter = [0]
        items: list[Json] = [*draw(st.lists(SYSTEM, max_size=1)), draw(USER)]
        for _ in range(draw(st.integers(0, 3))):
            step = draw(st.sampled_from(["assistant", "tools", "user"]))
            if step == "assistant":
                items.append(draw(ASSISTANT))
            elif step == "tools":
                items += draw(_tool_round(names, counter))
            else:
                items.append(draw(USER))
        body["input"] = items
    optional: dict[str, st.SearchStrategy[Any]] = {
        "instructions": TEXT, "temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
        "max_output_tokens": st.integers(16, 40_000), "parallel_tool_calls": st.booleans(),
        "text": st.one_of(st.builds(lambda f: {"format": f}, st.one_of(
            JSON_SCHEMA_FORMAT, st.just({"type": "json_object"}), st.just({"type": "text"}))),
            st.just({"verbosity": "low"})),
        "reasoning": st.fixed_dictionaries({}, optional={
            "effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh"]),
            "summary": st.sampled_from(["auto", "concise", "detailed"])}),
        "user": NAMES, "safety_identifier": NAMES, "store": st.booleans(), "metadata": st.just({"k": "v"}),
        "service_tier": st.sampled_from(["auto", "default", "flex", "priority"]), "top_logprobs": st.integers(0, 20),
        "prompt_cache_key": NAMES, "stream": st.booleans(),
    }
    for name, strategy in optional.items():
        if draw(st.integers(0, 3)) == 0:
            body[name] = draw(strategy)
    return body


# -- the four translators, each with its fake's validator ----------------------------------------------

Translate = Callable[[Json, list[Json], bool], Json]
Accept = Callable[[Json], None]
_GEMINI = FakeGemini()


def _chat(profile: ChatProfile) -> tuple[Translate, Accept]:
    dialect = Dialect(profile.reasoning_field, profile.max_tokens_param, profile.supports_strict)

    def translate(body: Json, items: list[Json], drop: bool) -> Json:
        return to_chat_request(body, items, profile, "upstream-model", stream=bool(body.get("stream")),
                               drop_params=drop)

    def accept(out: Json) -> None:
        validate_chat(json.loads(json.dumps(out)), dialect)

    return translate, accept


def _anthropic(model: str) -> tuple[Translate, Accept]:
    d = Deployment("c", "anthropic", model, api_key="k")

    def translate(body: Json, items: list[Json], drop: bool) -> Json:
        return to_messages_request(body, items, d, stream=bool(body.get("stream")), drop_params=drop)

    def accept(out: Json) -> None:
        anthropic_upstream.validate(json.loads(json.dumps(out)))

    return translate, accept


def _gemini(model: str) -> tuple[Translate, Accept]:
    def translate(body: Json, items: list[Json], drop: bool) -> Json:
        return to_gemini_request(body, items, model, drop_params=drop)

    def accept(out: Json) -> None:
        raw = json.loads(json.dumps(out))
        try:
            request = GenerateContentRequest.model_validate(raw)
        except ValidationError as e:  # what the fake answers such a body with (its own request model)
            raise GeminiError(400, f"Invalid JSON payload received: {e}") from None
        _GEMINI._check(model, request, raw)

    return translate, accept


def _bedrock(model: str) -> tuple[Translate, Accept]:
    def translate(body: Json, items: list[Json], drop: bool) -> Json:
        return to_converse_request(body, items, model, {}, drop_params=drop)

    def accept(out: Json) -> None:
        bedrock_upstream.validate_converse(model, json.loads(json.dumps(out)))

    return translate, accept


TARGETS: dict[str, tuple[Translate, Accept]] = {
    **{f"chat:{name}": _chat(profile) for name, profile in PROFILES.items()},
    "anthropic": _anthropic("claude-sonnet-4-5"),
    "gemini-2.0": _gemini("gemini-2.0-flash"),
    "gemini-2.5": _gemini("gemini-2.5-flash"),
    "gemini-3": _gemini("gemini-3-pro-preview"),
    "bedrock:claude": _bedrock("anthropic.claude-sonnet-4-20250514-v1:0"),
    "bedrock:nova": _bedrock("amazon.nova-pro-v1:0"),
}
_REFUSALS = (anthropic_upstream.ApiError, bedrock_upstream.BedrockFault, ChatError, GeminiError)


def names_a_field(err: InvalidRequestError, body: Json) -> None:
    """The error's `param` is a path (`input[2].content[0].detail`) that starts at a field of the request, or
    at a create parameter it left out."""
    assert isinstance(err.param, str), f"no param: {err.message}"
    assert err.param or err.code == "unknown_parameter", f"empty param: {err.message}"  # a key named ''
    root = err.param if err.param in body else re.split(r"[.\[]", err.param, maxsplit=1)[0]  # keys may hold '.'
    assert root in body or root in KNOWN_PARAMETERS, f"param {err.param!r} names no field: {err.message}"
    assert err.message and "Traceback" not in err.message


def _translate_or_refuse(target: str, body: Json, drop: bool) -> Json | None:
    translate, _ = TARGETS[target]
    checked = validate_create(body)
    items = normalize_input(checked.get("input"))
    try:
        return translate(checked, items, drop)
    except InvalidRequestError as e:
        names_a_field(e, body)
        reference = re.fullmatch(r"input\[(\d+)\]", e.param or "")  # names an item no one can send: not dropped
        if drop and not (reference and items[int(reference[1])].get("type") == "item_reference"):
            # drop_params drops what the target cannot honour instead of refusing it
            assert e.code not in ("unsupported_parameter", "unsupported_value"), e.message
        return None


FAMILIES = {family: [t for t in TARGETS if t.split(":")[0].split("-")[0] == family]
            for family in ("chat", "anthropic", "gemini", "bedrock")}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_valid_request_becomes_one_the_upstream_accepts(family: str) -> None:
    """Each generated request goes to every target of the family (every chat profile, every model kind)."""

    @FUZZ
    @given(body=valid_requests(), drop=st.booleans())
    def check(body: Json, drop: bool) -> None:
        for target in FAMILIES[family]:
            out = _translate_or_refuse(target, body, drop)
            if out is None:
                continue
            try:
                TARGETS[target][1](out)
            except _REFUSALS as e:
                raise AssertionError(f"{target} refuses the translated request: {getattr(e, 'message', e)}\n"
                                     f"request: {json.dumps(body)[:1500]}\ntranslated: {json.dumps(out)[:1500]}"
                                     ) from None

    check()


# -- whatever the document allows ----------------------------------------------------------------------

_CREATE = schemathesis.openapi.from_dict(openapi_document())["/v1/responses"]["POST"]


def _bodies(mode: GenerationMode) -> st.SearchStrategy[Any]:
    return _CREATE.as_strategy(generation_mode=mode).map(lambda case: case.body)


@pytest.mark.parametrize("target", ["chat:hosted_vllm", "chat:ollama", "chat:perplexity", "anthropic", "gemini-2.5",
                                    "bedrock:claude"])
def test_any_request_the_schema_allows_translates_or_names_a_field(target: str) -> None:
    @FUZZ
    @given(body=_bodies(GenerationMode.POSITIVE), drop=st.booleans())
    def check(body: Any, drop: bool) -> None:
        try:
            validate_create(body)
        except InvalidRequestError:
            return  # limits JSON Schema cannot say (2.0 is no integer to OpenAI): validate_create's own test
        _translate_or_refuse(target, body, drop)

    check()


# -- validate_create on anything -----------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=20)
_KNOWN = ["model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "temperature",
          "max_output_tokens", "include", "metadata", "conversation", "prompt", "stream", "truncation"]
_ITEM_TYPES = ["message", "function_call", "function_call_output", "reasoning", "item_reference", "input_text",
               "input_image", "input_file", "output_text", "web_search_call", "computer_call_output", "mcp_call"]
# Near-valid bodies: the real names, any values, items and parts with real `type` tags and random fields.
NEAR_ITEM = st.dictionaries(st.sampled_from(["type", "role", "content", "call_id", "output", "name", "arguments",
                                             "text", "id", "summary", "status"]),
                            st.one_of(st.sampled_from([*_ITEM_TYPES, "user", "assistant", "system"]), JSON_VALUES),
                            max_size=5)
NEAR_BODIES = st.dictionaries(st.sampled_from(_KNOWN), st.one_of(
    JSON_VALUES, st.lists(st.one_of(NEAR_ITEM, st.builds(lambda i, c: {**i, "content": c}, NEAR_ITEM,
                                                         st.lists(NEAR_ITEM, max_size=3))), max_size=4)),
                              min_size=1, max_size=6)


def _validated_or_refused(body: Any) -> None:
    try:
        validate_create(body)
    except InvalidRequestError as e:
        assert e.status == 400 and e.message
        if isinstance(body, dict):
            names_a_field(e, body)


@FUZZ
@given(JSON_VALUES)
def test_validate_create_on_any_json(body: Any) -> None:
    _validated_or_refused(body)


@FUZZ
@given(NEAR_BODIES)
def test_validate_create_on_near_valid_bodies(body: Json) -> None:
    _validated_or_refused(body)


@FUZZ
@given(_bodies(GenerationMode.NEGATIVE))
def test_validate_create_on_what_the_schema_refuses(body: Any) -> None:
    _validated_or_refused(body)


# What passthrough reads is `model` and the item list: a real model, any input.
PASSTHROUGH_BODIES = st.builds(lambda rest, given: {**rest, "model": "m", "input": given}, NEAR_BODIES,
                               st.one_of(JSON_VALUES, st.lists(st.one_of(NEAR_ITEM, JSON_VALUES), max_size=4)))


@FUZZ
@given(st.one_of(JSON_VALUES, NEAR_BODIES, PASSTHROUGH_BODIES))
def test_passthrough_validation_leaves_input_the_gateway_can_read(body: Any) -> None:
    """Native passthrough, compact and input_tokens check only what the gateway reads; what they let through
    is normalised (stored as the turn's input items) without an error of any other kind."""
    try:
        checked = validate_passthrough(body)
    except InvalidRequestError as e:
        if isinstance(body, dict):
            names_a_field(e, body)
        return
    normalize_input(checked.get("input"))
