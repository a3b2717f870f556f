"""Responses -> Bedrock Converse request mapping: golden files, refusals, drop_params.

Each file in tests/golden/bedrock/ holds a Responses body (and any stored chain items), the
deployment's litellm_params, and the exact Converse body expected, written by hand from the Converse
API reference. Every expected body is also checked against botocore's `bedrock-runtime` Converse
input shape, so a misspelt or misplaced field fails here as it would upstream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.validate import ParamValidator

from fakes.bedrock_upstream import _CONVERSE_INPUT
from respgate.errors import InvalidRequestError
from respgate.providers.bedrock.request import to_converse_request
from respgate.request import normalize_input, validate_create

GOLDEN = Path(__file__).parent / "golden" / "bedrock"
CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"


def assert_valid_converse(body: dict[str, Any], model_id: str = CLAUDE) -> None:
    report = ParamValidator().validate({**body, "modelId": model_id}, _CONVERSE_INPUT)
    assert not report.has_errors(), report.generate_report()


def _cases() -> list[Any]:
    return [pytest.param(json.loads(p.read_text()), id=p.stem) for p in sorted(GOLDEN.glob("*.json"))]


def test_golden_directory_is_populated() -> None:
    assert len(_cases()) >= 12


@pytest.mark.parametrize("case", _cases())
def test_golden(case: dict[str, Any]) -> None:
    body = validate_create(case["body"])
    items = [*case.get("chain", []), *normalize_input(body.get("input"))]
    got = to_converse_request(body, items, case["model_id"], case["extra"], drop_params=case["drop_params"])
    assert got == case["expected"], case["description"]
    assert_valid_converse(got, case["model_id"])


def test_the_validator_catches_a_misplaced_field() -> None:
    report = ParamValidator().validate({"modelId": "m", "messages": [], "maxTokens": 5}, _CONVERSE_INPUT)
    assert report.has_errors()


WEATHER = {"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {}}}

# (case id, model id, body fields besides model/input, input, refused param, code)
REFUSALS: list[tuple[str, str, dict[str, Any], Any, str, str]] = [
    ("remote_image", CLAUDE, {}, [{"role": "user", "content": [
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}]}],
     "input[0].content[0].image_url", "unsupported_value"),
    ("svg_image", CLAUDE, {}, [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/svg+xml;base64,PHN2Zz4=", "detail": "auto"}]}],
     "input[0].content[0].image_url", "unsupported_value"),
    ("file_by_id", CLAUDE, {}, [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}],
     "input[0].content[0].file_id", "unsupported_parameter"),
    ("hosted_tool", CLAUDE, {"tools": [{"type": "web_search"}]}, "Hi", "tools[0].type", "unsupported_value"),
    ("tool_choice_none", CLAUDE, {"tools": [WEATHER], "tool_choice": "none"}, "Hi", "tool_choice",
     "unsupported_value"),
    ("serial_tools", CLAUDE, {"tools": [WEATHER], "parallel_tool_calls": False}, "Hi", "parallel_tool_calls",
     "unsupported_parameter"),
    ("json_object", CLAUDE, {"text": {"format": {"type": "json_object"}}}, "Hi", "text.format", "unsupported_value"),
    ("logprobs", CLAUDE, {"top_logprobs": 3}, "Hi", "top_logprobs", "unsupported_parameter"),
    ("effort_not_claude", "amazon.nova-pro-v1:0", {"reasoning": {"effort": "low"}}, "Hi", "reasoning.effort",
     "unsupported_value"),
    ("item_reference", CLAUDE, {}, [{"type": "item_reference", "id": "msg_x"}], "input[0]", "unsupported_value"),
]


@pytest.mark.parametrize(("model_id", "fields", "input_", "param", "code"),
                         [pytest.param(*r[1:], id=r[0]) for r in REFUSALS])
def test_refusals_name_the_field(model_id: str, fields: dict[str, Any], input_: Any, param: str, code: str) -> None:
    body = validate_create({"model": "b", "input": input_, **fields})
    with pytest.raises(InvalidRequestError) as refused:
        to_converse_request(body, normalize_input(body["input"]), model_id, {}, drop_params=False)
    assert refused.value.param == param and refused.value.code == code
    assert param in refused.value.message


@pytest.mark.parametrize(("model_id", "fields", "input_", "param", "code"),
                         [pytest.param(*r[1:], id=r[0]) for r in REFUSALS if r[0] != "item_reference"])
def test_drop_params_drops_what_is_refused(model_id: str, fields: dict[str, Any], input_: Any, param: str,
                                          code: str) -> None:
    keep = [{"role": "user", "content": "keep"}]
    body = validate_create({"model": "b", "input": [*keep, *input_] if isinstance(input_, list) else input_, **fields})
    got = to_converse_request(body, normalize_input(body["input"]), model_id, {}, drop_params=True)
    assert_valid_converse(got, model_id)


def test_bad_base64_is_a_client_error() -> None:
    body = validate_create({"model": "b", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,@@@", "detail": "auto"}]}]})
    with pytest.raises(InvalidRequestError) as refused:
        to_converse_request(body, normalize_input(body["input"]), CLAUDE, {}, drop_params=True)
    assert refused.value.param == "input[0].content[0].image_url"


def test_thinking_needs_room_under_a_small_limit() -> None:
    body = validate_create({"model": "b", "input": "x", "max_output_tokens": 500, "reasoning": {"effort": "low"}})
    with pytest.raises(InvalidRequestError) as refused:
        to_converse_request(body, normalize_input("x"), CLAUDE, {}, drop_params=False)
    assert refused.value.param == "max_output_tokens"


def test_a_turn_without_tools_declares_the_ones_its_history_used() -> None:
    chain = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}], "id": "m1"},
             {"type": "function_call", "id": "fc_1", "call_id": "t1", "name": "weather", "arguments": "{}"}]
    body = validate_create({"model": "b", "input": [{"type": "function_call_output", "call_id": "t1", "output": "ok"}]})
    got = to_converse_request(body, [*chain, *normalize_input(body["input"])], CLAUDE, {}, drop_params=False)
    spec = {"name": "weather", "inputSchema": {"json": {"type": "object"}}}
    assert got["toolConfig"] == {"tools": [{"toolSpec": spec}]}
    assert_valid_converse(got)


def test_a_history_opening_with_the_assistant_gets_a_neutral_user_turn() -> None:
    body = validate_create({"model": "b", "input": [{"role": "assistant", "content": "Earlier."},
                                                    {"role": "user", "content": "Now"}]})
    got = to_converse_request(body, normalize_input(body["input"]), CLAUDE, {}, drop_params=False)
    assert [m["role"] for m in got["messages"]] == ["user", "assistant", "user"]
