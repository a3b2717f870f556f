"""Responses -> Gemini request mapping: golden bodies (each validated by the strict fake's model),
refusals naming the field, drop_params."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fakes.gemini_upstream import GenerateContentRequest
from respgate.errors import InvalidRequestError
from respgate.providers.gemini.request import to_gemini_request
from respgate.request import normalize_input, validate_create

GOLDEN = Path(__file__).parent / "golden" / "gemini"


def _translate(body: dict[str, Any], model: str = "gemini-2.0-flash", **kw: Any) -> dict[str, Any]:
    valid = validate_create(body)
    return to_gemini_request(valid, normalize_input(valid.get("input")), model, **kw)


def _cases() -> list[Any]:
    return [pytest.param(json.loads(p.read_text()), id=p.stem) for p in sorted(GOLDEN.glob("*.json"))]


def test_golden_directory_is_populated() -> None:
    assert len(_cases()) >= 15


@pytest.mark.parametrize("case", _cases())
def test_golden(case: dict[str, Any]) -> None:
    got = _translate(case["body"], case["model"], extra=case["extra"])
    assert got == case["expected"]
    GenerateContentRequest.model_validate(got)  # the strict fake's validator accepts every golden body


@pytest.mark.parametrize(("fields", "param"), [
    ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0].type"),  # web_search maps
    ({"parallel_tool_calls": False}, "parallel_tool_calls"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"max_tool_calls": 2}, "max_tool_calls"),
    ({"service_tier": "flex"}, "service_tier"),
    ({"text": {"verbosity": "low"}}, "text.verbosity"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": "see"},  # dropped: text is left
                                              {"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[1].file_id"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png",
                                              "detail": "low"}]}]}, "input[0].content[0].detail"),
])
def test_refused_with_a_400_naming_the_field(fields: dict[str, Any], param: str) -> None:
    body = {"model": "g", "input": "x", **fields}
    with pytest.raises(InvalidRequestError) as info:
        _translate(body)
    assert info.value.param == param
    dropped = _translate(body, drop_params=True)  # drop_params: the same request goes, without the field
    GenerateContentRequest.model_validate(dropped)


def test_function_output_without_its_call_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        _translate({"model": "g", "input": [{"type": "function_call_output", "call_id": "c9", "output": "1"}]})
    assert info.value.param == "input[0].call_id"


def test_gateway_fields_never_reach_gemini() -> None:
    body = _translate({"model": "g", "input": "x", "store": True, "metadata": {"a": "b"}, "truncation": "disabled",
                       "include": ["reasoning.encrypted_content"], "stream": True})
    assert body == {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
