"""Responses -> Chat Completions request mapping: golden files, refusals, drop_params, profiles.

Each file in tests/golden/chat/ holds a Responses body (and any stored chain items), the profile,
and the exact Chat Completions body expected upstream, written by hand from the provider docs.
Every produced body is also checked against openai's `CompletionCreateParams*` TypedDicts with
unknown keys forbidden at every depth, so a misspelt or misplaced field fails here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from pydantic import TypeAdapter
from pydantic_core import SchemaValidator, ValidationError

from respgate.errors import InvalidRequestError
from respgate.providers.chat.profiles import PROFILES, ChatProfile, profile_for
from respgate.providers.chat.request import GATEWAY_FIELDS, to_chat_request
from respgate.request import normalize_input, validate_create

GOLDEN = Path(__file__).parent / "golden" / "chat"

# Provider-specific fields we add on purpose, outside openai's chat types: (message role, key).
DELIBERATE_EXTRAS = {("assistant", "reasoning_content"), ("assistant", "reasoning")}


def _strict(schema: Any) -> Any:
    """openai's TypedDicts as the wire takes them: unknown keys refused, iterables as JSON lists."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "json-or-python":
        return _strict(schema["json_schema"])
    out = {k: _strict(v) for k, v in schema.items() if k != "serialization"}
    if schema.get("type") == "generator":
        out["type"] = "list"
    elif schema.get("type") == "typed-dict":
        out["extra_behavior"] = "forbid"
    return out


_CHAT_STREAMING = SchemaValidator(_strict(TypeAdapter(CompletionCreateParamsStreaming).core_schema))
_CHAT_NON_STREAMING = SchemaValidator(_strict(TypeAdapter(CompletionCreateParamsNonStreaming).core_schema))


def assert_valid_chat_body(body: dict[str, Any]) -> None:
    bare = {**body, "messages": []}
    for message in body["messages"]:
        message = dict(message)
        for role, key in DELIBERATE_EXTRAS:
            if message["role"] == role:
                message.pop(key, None)
        bare["messages"].append(message)
    validator = _CHAT_STREAMING if body.get("stream") else _CHAT_NON_STREAMING
    validator.validate_python(bare, strict=True)


def _profile(case: dict[str, Any]) -> ChatProfile:
    profile = PROFILES[case["profile"]]
    return dataclasses.replace(profile, **case.get("profile_overrides", {}))


def _golden_cases() -> list[Any]:
    return [pytest.param(json.loads(p.read_text()), id=p.stem) for p in sorted(GOLDEN.glob("*.json"))]


def test_golden_directory_is_populated() -> None:
    assert len(_golden_cases()) >= 20


@pytest.mark.parametrize("case", _golden_cases())
def test_golden(case: dict[str, Any]) -> None:
    body = validate_create(case["body"])  # the golden input is itself a valid Responses request
    items = [*case.get("chain", []), *normalize_input(body.get("input"))]
    got = to_chat_request(body, items, _profile(case), case["model"], stream=case["stream"],
                          drop_params=case["drop_params"])
    assert got == case["expected"], case["description"]
    assert_valid_chat_body(got)


def test_validator_catches_a_misplaced_field() -> None:
    with pytest.raises(ValidationError):
        assert_valid_chat_body({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                "max_output_tokens": 5})
    with pytest.raises(ValidationError):
        assert_valid_chat_body({"model": "m", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "name": "f", "arguments": "{}"}]}]})


def test_gateway_fields_never_reach_the_upstream() -> None:
    body = validate_create({"model": "g", "input": "Hi", "store": False, "background": False,
                            "previous_response_id": "resp_1", "truncation": "auto", "include": [],
                            "metadata": {"a": "b"}, "prompt": {"id": "pmpt_1"}})
    got = to_chat_request(body, normalize_input("Hi"), PROFILES["openai_like"], "m", stream=False, drop_params=False)
    assert set(got) == {"model", "messages"}
    assert {"store", "metadata", "previous_response_id", "include"} <= GATEWAY_FIELDS


WEATHER_TOOL = {"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {}}}
PDF = "data:application/pdf;base64,JVBERi0xLjQK"
IMAGE = {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}

# (case id, profile, body fields besides model/input, input, refused param, code)
REFUSALS: list[tuple[str, str, dict[str, Any], Any, str, str]] = [
    ("hosted_tool", "groq", {"tools": [{"type": "web_search"}]}, "Hi", "tools[0].type", "unsupported_value"),
    ("custom_tool", "openai_like", {"tools": [{"type": "custom", "name": "x"}]}, "Hi", "tools[0].type",
     "unsupported_value"),
    ("strict_tool", "together_ai", {"tools": [{**WEATHER_TOOL, "strict": True}]}, "Hi", "tools[0].strict",
     "unsupported_parameter"),
    ("deferred_tool", "groq", {"tools": [{**WEATHER_TOOL, "defer_loading": True}]}, "Hi", "tools[0].defer_loading",
     "unsupported_parameter"),
    ("no_tools_at_all", "perplexity", {"tools": [WEATHER_TOOL]}, "Hi", "tools", "unsupported_parameter"),
    ("allowed_tools_choice", "groq", {"tools": [WEATHER_TOOL], "tool_choice": {
        "type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "weather"}]}}, "Hi",
     "tool_choice", "unsupported_value"),
    ("serial_tool_calls", "deepseek", {"tools": [WEATHER_TOOL], "parallel_tool_calls": False}, "Hi",
     "parallel_tool_calls", "unsupported_parameter"),
    ("json_schema", "deepseek", {"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}, "Hi",
     "text.format", "unsupported_value"),
    ("json_object", "perplexity", {"text": {"format": {"type": "json_object"}}}, "Hi", "text.format",
     "unsupported_value"),
    ("strict_schema", "xai", {"text": {"format": {"type": "json_schema", "name": "x", "schema": {},
                                                  "strict": True}}}, "Hi", "text.format.strict",
     "unsupported_parameter"),
    ("verbosity", "groq", {"text": {"verbosity": "low"}}, "Hi", "text.verbosity", "unsupported_parameter"),
    ("reasoning_effort", "mistral", {"reasoning": {"effort": "low"}}, "Hi", "reasoning.effort",
     "unsupported_parameter"),
    ("reasoning_summary", "deepseek", {"reasoning": {"summary": "auto"}}, "Hi", "reasoning.summary",
     "unsupported_parameter"),
    ("logprobs", "groq", {"top_logprobs": 2}, "Hi", "top_logprobs", "unsupported_parameter"),
    ("user", "mistral", {"user": "u"}, "Hi", "user", "unsupported_parameter"),
    ("safety_identifier", "perplexity", {"safety_identifier": "u"}, "Hi", "safety_identifier",
     "unsupported_parameter"),
    ("prompt_cache_key", "groq", {"prompt_cache_key": "k"}, "Hi", "prompt_cache_key", "unsupported_parameter"),
    ("service_tier", "deepseek", {"service_tier": "priority"}, "Hi", "service_tier", "unsupported_parameter"),
    ("max_tool_calls", "openai_like", {"max_tool_calls": 2}, "Hi", "max_tool_calls", "unsupported_parameter"),
    ("file_input", "groq", {}, [{"role": "user", "content": [
        {"type": "input_text", "text": "Read"}, {"type": "input_file", "file_data": PDF, "filename": "a.pdf"}]}],
     "input[0].content[1]", "unsupported_parameter"),
    ("file_by_id", "openrouter", {}, [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}],
     "input[0].content[0].file_id", "unsupported_parameter"),
    ("image_unsupported", "deepseek", {}, [{"role": "user", "content": [IMAGE]}], "input[0].content[0]",
     "unsupported_parameter"),
    ("image_by_file_id", "groq", {}, [{"role": "user", "content": [
        {"type": "input_image", "file_id": "file-1", "detail": "auto"}]}], "input[0].content[0].file_id",
     "unsupported_parameter"),
    ("image_detail_original", "groq", {}, [{"role": "user", "content": [{**IMAGE, "detail": "original"}]}],
     "input[0].content[0].detail", "unsupported_value"),
    ("image_in_tool_output", "groq", {}, [
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image", "image_url": "u"}]}],
     "input[1].output[0].type", "unsupported_value"),
    ("hosted_tool_item", "groq", {}, [{"type": "code_interpreter_call", "id": "ci_1", "status": "completed",
                                       "code": "print(1)", "container_id": "cntr_1", "outputs": []}],
     "input[0].type", "unsupported_value"),
]


@pytest.mark.parametrize(("profile", "fields", "input_", "param", "code"),
                         [pytest.param(*r[1:], id=r[0]) for r in REFUSALS])
def test_refused_with_a_400_naming_the_field(profile: str, fields: dict[str, Any], input_: Any, param: str,
                                              code: str) -> None:
    body = validate_create({"model": "g", "input": input_, **fields})
    with pytest.raises(InvalidRequestError) as caught:
        to_chat_request(body, normalize_input(body["input"]), PROFILES[profile], "m", stream=False,
                        drop_params=False)
    err = caught.value
    assert (err.status, err.param, err.code) == (400, param, code)
    assert err.to_dict()["error"]["type"] == "invalid_request_error"
    assert param in err.message and profile in err.message


# What must be gone from the upstream body once drop_params drops the refused field.
DROPPED_MARKERS = {
    "hosted_tool": '"web_search"', "custom_tool": '"custom"', "strict_tool": '"strict"',
    "deferred_tool": "defer_loading", "no_tools_at_all": '"tools"', "allowed_tools_choice": '"tool_choice"',
    "serial_tool_calls": "parallel_tool_calls", "json_schema": "response_format", "json_object": "response_format",
    "strict_schema": '"strict"', "verbosity": "verbosity", "reasoning_effort": "reasoning",
    "reasoning_summary": "summary", "logprobs": "logprobs", "user": '"user":', "safety_identifier": '"user":',
    "prompt_cache_key": "prompt_cache_key", "service_tier": "service_tier", "max_tool_calls": "max_tool_calls",
    "file_input": "pdf", "file_by_id": "file-1", "image_unsupported": "image_url", "image_by_file_id": "file-1",
    "image_detail_original": "original", "image_in_tool_output": "input_image", "hosted_tool_item": "ci_1",
}


def test_every_refusal_has_a_drop_marker() -> None:
    assert set(DROPPED_MARKERS) == {r[0] for r in REFUSALS}


@pytest.mark.parametrize(("case_id", "profile", "fields", "input_"),
                         [pytest.param(*r[:4], id=r[0]) for r in REFUSALS])
def test_drop_params_drops_instead(case_id: str, profile: str, fields: dict[str, Any], input_: Any) -> None:
    body = validate_create({"model": "g", "input": input_, **fields})
    got = to_chat_request(body, normalize_input(body["input"]), PROFILES[profile], "m", stream=False,
                          drop_params=True)
    assert_valid_chat_body(got)
    assert DROPPED_MARKERS[case_id] not in json.dumps(got)


def test_item_reference_is_refused_even_with_drop_params() -> None:
    items = [{"type": "item_reference", "id": "msg_123"}]
    for drop in (False, True):
        with pytest.raises(InvalidRequestError) as caught:
            to_chat_request({"model": "g"}, items, PROFILES["groq"], "m", stream=False, drop_params=drop)
        assert (caught.value.status, caught.value.param) == (400, "input[0]")
        assert "msg_123" in caught.value.message


def test_unknown_top_level_field_is_named() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        to_chat_request({"model": "g", "moderation": {"mode": "x"}}, [], PROFILES["groq"], "m", stream=False,
                        drop_params=False)
    assert caught.value.param == "moderation"


def test_stream_false_sends_no_stream_field() -> None:
    got = to_chat_request({"model": "g", "stream": False}, normalize_input("Hi"), PROFILES["groq"], "m",
                          stream=False, drop_params=False)
    assert "stream" not in got and "stream_options" not in got


def test_instructions_come_before_everything() -> None:
    items = normalize_input([{"role": "system", "content": "second"}, {"role": "user", "content": "hi"}])
    got = to_chat_request({"model": "g", "instructions": "first"}, items, PROFILES["vllm"], "m", stream=False,
                          drop_params=False)
    assert [m["content"] for m in got["messages"]] == ["first", "second", "hi"]


def test_orphan_reasoning_is_not_sent() -> None:
    items = normalize_input([
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "hm"}]},
        {"role": "user", "content": "next"},
        {"role": "assistant", "content": "ok"}])
    got = to_chat_request({"model": "g"}, items, PROFILES["deepseek"], "m", stream=False, drop_params=False)
    assert got["messages"] == [{"role": "user", "content": "next"}, {"role": "assistant", "content": "ok"}]


# --- profiles ----------------------------------------------------------------------------------------

REQUIRED_PROVIDERS = {"hosted_vllm", "vllm", "ollama", "ollama_chat", "lm_studio", "groq", "deepseek", "mistral",
                      "together_ai", "openrouter", "fireworks_ai", "xai", "perplexity", "cerebras", "azure_ai",
                      "openai_like", "custom_openai"}


def test_every_required_provider_has_a_profile() -> None:
    assert set(PROFILES) >= REQUIRED_PROVIDERS
    assert all(profile_for(name) is PROFILES[name] for name in PROFILES)
    assert profile_for("anthropic") is None


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_rows_are_coherent(name: str) -> None:
    p = PROFILES[name]
    assert p.name == name
    assert p.max_tokens_param in ("max_tokens", "max_completion_tokens")
    assert p.default_api_base is None or (p.default_api_base.startswith("http")
                                          and not p.default_api_base.endswith("/"))
    assert not p.accepts_reasoning_back or p.reasoning_field is not None
    assert all(env.isupper() for env in (*p.api_key_env, *p.api_base_env))


@pytest.mark.parametrize(("name", "base", "key_env"), [
    ("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    ("deepseek", "https://api.deepseek.com/beta", "DEEPSEEK_API_KEY"),
    ("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    ("together_ai", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    ("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    ("fireworks_ai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    ("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    ("perplexity", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    ("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    ("ollama", "http://localhost:11434/v1", "OLLAMA_API_KEY"),
    ("hosted_vllm", None, "HOSTED_VLLM_API_KEY"),
    ("azure_ai", None, "AZURE_AI_API_KEY"),
])
def test_litellm_defaults(name: str, base: str | None, key_env: str) -> None:
    assert PROFILES[name].default_api_base == base
    assert key_env in PROFILES[name].api_key_env


def test_another_providers_web_search_in_the_chain_is_left_out() -> None:
    """A chain that searched on Claude or Gemini continues here: the search's results are in the text."""
    items = normalize_input([
        {"type": "message", "role": "user", "content": "find it"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "found", "annotations": []}]},
        {"type": "message", "role": "user", "content": "more"}])
    got = to_chat_request({"model": "m"}, items, PROFILES["groq"], "m", stream=False, drop_params=False)
    assert [(m["role"], m["content"]) for m in got["messages"]] == [
        ("user", "find it"), ("assistant", "found"), ("user", "more")]
    assert_valid_chat_body(got)
