"""Guardrails (guardrails/): the PII patterns, the config, and through the proxy — the echo model says
back what the upstream received, so a masked input comes back masked; a blocked one is a 400."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import MASTER_KEY, MOCK_MODELS
from fakes.server import ServerThread
from respgate.calls import Call, Principal
from respgate.config import load_config
from respgate.errors import ConfigError, InvalidRequestError
from respgate.guardrails import Guardrails, build
from respgate.guardrails.config import parse_guardrails
from respgate.guardrails.patterns import luhn
from respgate.proxy.app import Proxy

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
PII = "mail jane.doe@example.com, card 4111 1111 1111 1111, ssn 123-45-6789, phone (555) 123-4567"
MASKED = "mail [EMAIL_REDACTED], card [CREDIT_CARD_REDACTED], ssn [US_SSN_REDACTED], phone [PHONE_REDACTED]"

MASK_ALL = """
guardrails:
  - guardrail_name: pii-mask
    litellm_params:
      guardrail: litellm_content_filter
      mode: pre_call
      default_on: true
"""
BLOCK_SSN = """
  - guardrail_name: ssn-block
    litellm_params:
      guardrail: regex
      mode: [pre_call]
      patterns:
        - {pattern_type: prebuilt, pattern_name: us_ssn, action: BLOCK}
        - {pattern_type: regex, name: employee_id, pattern: 'EMP-\\d{6}', action: MASK}
      blocked_words:
        - {keyword: project-x, action: BLOCK}
"""


def guardrails(entries: list[dict[str, Any]]) -> Guardrails:
    g = Guardrails(parse_guardrails(entries))
    return g


def entry(name: str = "g", **params: Any) -> dict[str, Any]:
    return {"guardrail_name": name, "litellm_params": {"guardrail": "litellm_content_filter", **params}}


# -- patterns and config -------------------------------------------------------------------------------


def test_luhn() -> None:
    assert luhn("4111 1111 1111 1111") and luhn("5500-0000-0000-0004") and luhn("378282246310005")
    assert not luhn("4111 1111 1111 1112") and not luhn("1234")


@pytest.mark.parametrize(("text", "masked"), [
    (PII, MASKED),
    ("+44 20 7946 0958 or +14155552671", "[PHONE_REDACTED] or [PHONE_REDACTED]"),
    ("not a card 4111 1111 1111 1112, not an ssn 000-12-3456 or 666-12-3456", None),
    ("dates 2024-06-01, ip 192.168.1.100, version 1.2.3, order 12345678", None),
    ("user@localhost is not an address; a@b.io is", "user@localhost is not an address; [EMAIL_REDACTED] is"),
])
async def test_default_patterns_mask_pii_and_leave_the_rest(text: str, masked: str | None) -> None:
    g = guardrails([entry(mode="pre_call", default_on=True)])
    call = Call(Principal(), {"model": "m", "input": text})
    await g.pre_call(call)
    assert call.body["input"] == (masked or text)


async def test_every_text_the_model_reads_is_masked_and_the_callers_objects_are_untouched() -> None:
    g = guardrails([entry(mode="pre_call", default_on=True)])
    body: dict[str, Any] = {
        "model": "m", "instructions": "reply to jane@example.com",
        "input": [{"role": "user", "content": "ssn 123-45-6789"},
                  {"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "jane@example.com"},
                               {"type": "input_image", "image_url": "https://x/jane@example.com.png"}]},
                  {"type": "function_call_output", "call_id": "c1", "output": "phone 555-123-4567"},
                  {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}]}
    original = repr(body)
    call = Call(Principal(), body)
    await g.pre_call(call)
    assert repr(body) == original  # the SDK's caller keeps their own objects
    new = call.body
    assert new["instructions"] == "reply to [EMAIL_REDACTED]"
    assert new["input"][0]["content"] == "ssn [US_SSN_REDACTED]"
    assert new["input"][1]["content"][0]["text"] == "[EMAIL_REDACTED]"
    assert new["input"][1]["content"][1] is body["input"][1]["content"][1]  # images are not text
    assert new["input"][2]["output"] == "phone [PHONE_REDACTED]"
    assert new["input"][3] is body["input"][3]
    assert call.extra["guardrails"]["masked_input"] == {"g": 4}


async def test_chat_completions_messages_are_masked() -> None:
    g = guardrails([entry(mode="pre_call", default_on=True)])
    call = Call(Principal(), {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "jane@example.com"}]}]}, route="chat.completions")
    await g.pre_call(call)
    assert call.body["messages"][0]["content"][0]["text"] == "[EMAIL_REDACTED]"


async def test_block_names_the_guardrail_and_never_the_match() -> None:
    g = guardrails([entry("ssn-block", mode="pre_call", default_on=True,
                          patterns=[{"pattern_type": "prebuilt", "pattern_name": "us_ssn", "action": "BLOCK"}])])
    with pytest.raises(InvalidRequestError) as info:
        await g.pre_call(Call(Principal(), {"model": "m", "input": "my ssn is 123-45-6789"}))
    assert info.value.status == 400 and info.value.param == "input" and info.value.code == "content_blocked"
    assert "ssn-block" in info.value.message and "us_ssn" in info.value.message
    assert "123-45-6789" not in info.value.message


async def test_opt_in_per_request_and_the_field_is_taken_out_of_the_body() -> None:
    g = guardrails([entry("optional", mode="pre_call", patterns=["email"])])
    plain = Call(Principal(), {"model": "m", "input": "a@b.io"})
    await g.pre_call(plain)
    assert plain.body == {"model": "m", "input": "a@b.io"}  # not default_on, not asked for
    asked = Call(Principal(), {"model": "m", "input": "a@b.io", "guardrails": ["optional"]})
    await g.pre_call(asked)
    assert asked.body == {"model": "m", "input": "[EMAIL_REDACTED]"}
    in_meta = Call(Principal(), {"model": "m", "input": "a@b.io", "metadata": {"guardrails": ["optional"], "k": "v"}})
    await g.pre_call(in_meta)
    assert in_meta.body == {"model": "m", "input": "[EMAIL_REDACTED]", "metadata": {"k": "v"}}
    with pytest.raises(InvalidRequestError, match="Unknown guardrail 'nope'") as info:
        await g.pre_call(Call(Principal(), {"model": "m", "input": "x", "guardrails": ["nope"]}))
    assert info.value.param == "guardrails"
    with pytest.raises(InvalidRequestError) as info:
        await g.pre_call(Call(Principal(), {"model": "m", "input": "x", "guardrails": "optional"}))
    assert info.value.param == "guardrails"


async def test_output_guardrail_masks_or_blocks_a_response_before_it_is_sent() -> None:
    g = guardrails([entry("out", mode="post_call", default_on=True,
                          patterns=["email", {"pattern_type": "prebuilt", "pattern_name": "us_ssn",
                                              "action": "block"}])])
    response: dict[str, Any] = {"output": [{"type": "message", "content": [
        {"type": "output_text", "text": "write to jane@example.com"}]}]}
    call = Call(Principal(), {"model": "m", "input": "hi"})
    await g.pre_call(call)
    await g.on_response(call, response)
    assert response["output"][0]["content"][0]["text"] == "write to [EMAIL_REDACTED]"
    leaked = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "ssn 123-45-6789"}]}]}
    with pytest.raises(InvalidRequestError, match="guardrail 'out': us_ssn pattern detected in the output"):
        await g.on_response(Call(Principal(), {"model": "m", "input": "hi"}), leaked)


async def test_post_call_without_the_response_hook_records_what_it_cannot_change(
        caplog: pytest.LogCaptureFixture) -> None:
    g = guardrails([entry("out", mode="post_call", default_on=True)])
    call = Call(Principal(), {"model": "m", "input": "hi"})
    call.response = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "a@b.io"}]}]}
    await g.post_call(call)
    assert call.extra["guardrails"]["violations"] == {"out": ["email"]}
    assert "a@b.io" not in caplog.text and "guardrail out: email" in caplog.text


@pytest.mark.parametrize(("params", "key", "message"), [
    ({"guardrail": "aporia"}, "litellm_params.guardrail", "not a guardrail respgate has"),
    ({"guardrail": "regex", "mode": "sometimes"}, "litellm_params.mode", "not a mode"),
    ({"guardrail": "regex", "action": "shout"}, "litellm_params.action", "not an action"),
    ({"guardrail": "regex", "patterns": ["iban"]}, "litellm_params.patterns[0]", "not a prebuilt pattern"),
    ({"guardrail": "regex", "patterns": [{"pattern": "(unclosed"}]}, "litellm_params.patterns[0].pattern",
     "not a valid regular expression"),
    ({"guardrail": "presidio", "pii_entities_config": {"PERSON": "MASK"}},
     "litellm_params.pii_entities_config.PERSON", "by regex"),
    ({"guardrail": "regex", "default_on": "yes"}, "litellm_params.default_on", "true or false"),
])
def test_config_mistakes_stop_start_up_naming_the_key(params: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_guardrails([{"guardrail_name": "g", "litellm_params": params}])
    assert f"guardrails[0].{key}" in str(info.value) and message in str(info.value)


async def test_presidio_entities_are_done_by_regex() -> None:
    g = guardrails([{"guardrail_name": "p", "litellm_params": {
        "guardrail": "presidio", "mode": "pre_call", "default_on": True,
        "pii_entities_config": {"EMAIL_ADDRESS": "MASK", "US_SSN": "BLOCK"}}}])
    call = Call(Principal(), {"model": "m", "input": "a@b.io 555-123-4567"})
    await g.pre_call(call)
    assert call.body["input"] == "[EMAIL_REDACTED] 555-123-4567"


def test_no_section_builds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(MOCK_MODELS)
    assert build(load_config(str(path))) is None


# -- through the proxy ---------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Any:
    path = tmp_path / "c.yaml"
    path.write_text(MOCK_MODELS + MASK_ALL + BLOCK_SSN + f"general_settings:\n  master_key: {MASTER_KEY}\n"
                    f"  database_url: sqlite:///{tmp_path}/db.sqlite\n")
    s = ServerThread(Proxy(load_config(str(path))).app).start()
    yield s
    s.stop()


def test_the_upstream_receives_the_masked_input(server: ServerThread) -> None:
    with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
        r = client.responses.create(model="mock/echo", input=PII)
        assert r.output_text == MASKED  # mock/echo says back what it was sent
        items = client.responses.input_items.list(r.id)
        assert PII not in items.model_dump_json() and "[EMAIL_REDACTED]" in items.model_dump_json()
        with client.responses.stream(model="mock/echo", input="stream to jane@example.com") as stream:
            for _ in stream:
                pass
            assert stream.get_final_response().output_text == "stream to [EMAIL_REDACTED]"
        chat = client.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": PII}])
        assert chat.choices[0].message.content == MASKED


def test_blocked_input_is_a_400_naming_the_guardrail(server: ServerThread) -> None:
    opt_in = {"guardrails": ["ssn-block"]}
    with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model="mock/echo", input="ssn 123-45-6789", extra_body=opt_in)
        assert "ssn-block" in str(info.value) and "123-45-6789" not in str(info.value)
        with pytest.raises(openai.BadRequestError, match="keyword"):
            client.responses.create(model="mock/echo", input="about Project-X", extra_body=opt_in)
        r = client.responses.create(model="mock/echo", input="id EMP-123456", extra_body=opt_in)
        assert r.output_text == "id [EMPLOYEE_ID_REDACTED]"
        # not asked for: the default_on guardrail masks the same number instead of refusing it
        masked = client.responses.create(model="mock/echo", input="ssn 123-45-6789").output_text
        assert masked == "ssn [US_SSN_REDACTED]"


def test_guardrails_in_a_stream_request_are_refused_before_the_stream_starts(server: ServerThread) -> None:
    r = httpx.post(server.url + "/v1/responses", headers=AUTH, timeout=10,
                   json={"model": "mock/echo", "input": "ssn 123-45-6789", "stream": True, "guardrails": ["ssn-block"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "content_blocked"
