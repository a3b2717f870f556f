"""Responses -> Anthropic Messages request: golden files, refusals, drop_params, headers.

Each file in tests/golden/anthropic/ holds a Responses body (with any stored chain items), deployment
settings, and the exact Messages body expected upstream, written by hand from Anthropic's docs. Every
produced body is also validated by the strict fake (anthropic.types, unknown keys refused).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fakes.anthropic_upstream import ApiError, validate
from respgate.deployments import Deployment
from respgate.errors import InvalidRequestError
from respgate.providers.anthropic.provider import AnthropicProvider
from respgate.providers.anthropic.request import beta_header, to_messages_request
from respgate.request import normalize_input, validate_create

GOLDEN = Path(__file__).parent / "golden" / "anthropic"


def deployment(**settings: Any) -> Deployment:
    return Deployment("c", "anthropic", "claude-sonnet-4-5", api_key="k", **settings)


def translate(body: dict[str, Any], chain: list[dict[str, Any]] | None = None, *, drop_params: bool = False,
              d: Deployment | None = None) -> dict[str, Any]:
    checked = validate_create(body)
    items = (chain or []) + normalize_input(checked.get("input"))
    return to_messages_request(checked, items, d or deployment(), stream=bool(body.get("stream")),
                               drop_params=drop_params)


def _cases() -> list[Any]:
    return [pytest.param(json.loads(p.read_text()), id=p.stem) for p in sorted(GOLDEN.glob("*.json"))]


def test_golden_directory_is_populated() -> None:
    assert len(_cases()) >= 12


@pytest.mark.parametrize("case", _cases())
def test_golden_request(case: dict[str, Any]) -> None:
    out = translate(case["body"], case.get("chain"), d=deployment(**case.get("deployment", {})))
    assert out == case["expected"]
    validate(out)  # the strict fake accepts it


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type"),  # web_search maps
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"text": {"format": {"type": "json_object"}}}, "text.format"),
    ({"text": {"verbosity": "low"}}, "text.verbosity"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1", "detail": "auto"},
                                             {"type": "input_text", "text": "hi"}]}]},
     "input[0].content[0].file_id"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/a.png",
                                              "detail": "high"}]}]}, "input[0].content[0].detail"),
    ({"service_tier": "flex"}, "service_tier"),
    ({"prompt_cache_key": "k"}, "prompt_cache_key"),
])
def test_unsupported_fields_are_refused_and_dropped_with_drop_params(body: dict[str, Any], param: str) -> None:
    full = {"model": "c", "input": "hi", **body}
    with pytest.raises(InvalidRequestError) as err:
        translate(full)
    assert err.value.param == param and err.value.status == 400
    validate(translate(full, drop_params=True))


def test_max_output_tokens_too_small_for_thinking_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as err:
        translate({"model": "c", "input": "x", "reasoning": {"effort": "low"}, "max_output_tokens": 1000})
    assert err.value.param == "max_output_tokens"


def test_the_fake_refuses_a_tool_result_without_its_tool_use() -> None:
    body = translate({"model": "c", "input": [{"type": "function_call_output", "call_id": "toolu_9", "output": "x"}]})
    with pytest.raises(ApiError, match="unexpected `tool_use_id`"):
        validate(body)


def test_headers_and_url() -> None:
    d = deployment(extra={"anthropic_beta": ["a-1", "b-2"], "extra_headers": {"anthropic-beta": "c-3"}})
    headers = AnthropicProvider().headers(d)
    assert headers["x-api-key"] == "k" and headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "a-1,b-2,c-3" and beta_header(deployment()) is None
    assert AnthropicProvider.url(deployment()) == "https://api.anthropic.com/v1/messages"
    assert AnthropicProvider.url(deployment(api_base="http://h/v1/")) == "http://h/v1/messages"


def test_extra_body_is_merged() -> None:
    out = translate({"model": "c", "input": "x"}, d=deployment(extra={"extra_body": {"inference_geo": "us"}}))
    assert out["inference_geo"] == "us"


@pytest.mark.parametrize("blob", ["gAAAAABopenai-encrypted", "bedrock-signature:abc", "gemini.sig.v1.xyz"])
def test_another_providers_encrypted_reasoning_is_not_sent_to_anthropic(blob: str) -> None:
    chain = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
             {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thought"}],
              "encrypted_content": blob},
             {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
              "content": [{"type": "output_text", "text": "hello", "annotations": []}]}]
    sent = translate({"model": "claude", "input": "next"}, chain)
    assert all(block.get("type") != "thinking" for m in sent["messages"] for block in
               (m["content"] if isinstance(m["content"], list) else []))
