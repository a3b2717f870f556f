"""Gemini end to end: the official openai SDK -> the proxy -> the strict fake Gemini (AI Studio and Vertex).

Multi-turn tool calls with thought signatures through previous_response_id, a chain that starts on
another provider, streaming grammar, errors with their statuses, Vertex bearer tokens from a real
google-auth service-account flow against the fake's token endpoint, and the compliance checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from openai import OpenAI
from openai.types.responses import Response

import compliance as c
from conftest import MASTER_KEY, ProxyFactory
from fakes.gemini_upstream import FakeGemini
from fakes.server import ServerThread
from grammar import check_stream
from respgate.providers import registry
from respgate.providers.gemini import PROVIDER_FACTORIES
from respgate.providers.vertex_ai import VertexAIProvider
from sse import post_stream

KEY = "gemini-upstream-secret"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
TOOLS: list[Any] = [
    {"type": "function", "name": "lookup", "description": "Look something up", "strict": True,
     "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"],
                    "additionalProperties": False}},
    {"type": "function", "name": "clock", "parameters": {"type": "object", "properties": {}}, "strict": False},
]


def test_gemini_and_vertex_are_registered() -> None:
    assert registry._FACTORIES["gemini"] is PROVIDER_FACTORIES["gemini"]
    assert registry._FACTORIES["vertex_ai"] is VertexAIProvider  # Gemini and Claude on Vertex


def _service_account(token_uri: str) -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    info = {"type": "service_account", "project_id": "proj-from-file", "private_key_id": "k1", "private_key": pem,
            "client_email": "gw@proj.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri}
    return orjson.dumps(info).decode(), public


@pytest.fixture
def gemini() -> Iterator[tuple[FakeGemini, str]]:
    fake = FakeGemini(api_key=KEY)
    with ServerThread(fake.app) as server:
        yield fake, server.url


def config(url: str, credentials: str) -> str:
    creds = orjson.dumps(credentials).decode()
    return f"""
model_list:
  - model_name: flash
    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: "{url}", api_key: "{KEY}"}}
  - model_name: old
    litellm_params: {{model: gemini/gemini-2.0-flash, api_base: "{url}", api_key: "{KEY}"}}
  - model_name: badkey
    litellm_params: {{model: gemini/gemini-2.0-flash, api_base: "{url}", api_key: "wrong-key"}}
  - model_name: vertex
    litellm_params: {{model: vertex_ai/gemini-3-pro-preview, api_base: "{url}", vertex_project: my-proj,
                      vertex_location: europe-west4, vertex_credentials: {creds}}}
  - model_name: mock/tool
    litellm_params: {{model: mock/tool}}
"""


@pytest.fixture
def proxy(start_proxy: ProxyFactory, gemini: tuple[FakeGemini, str]) -> ServerThread:
    credentials, public = _service_account(gemini[1] + "/token")
    gemini[0].public_key = public
    return start_proxy(config(gemini[1], credentials))


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as cl:
        yield cl


def sent(gemini: tuple[FakeGemini, str]) -> dict[str, Any]:
    body: dict[str, Any] = gemini[0].requests[-1].body
    return body


def test_json_create_maps_request_and_answer(client: OpenAI, proxy: ServerThread,
                                             gemini: tuple[FakeGemini, str]) -> None:
    raw = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={
        "model": "flash", "input": "hello", "instructions": "Be brief.", "max_output_tokens": 64,
        "temperature": 0.5, "reasoning": {"effort": "low", "summary": "auto"}}).json()
    Response.model_validate(raw)
    assert raw["status"] == "completed" and raw["model"] == "flash"
    kinds = [o["type"] for o in raw["output"]]
    assert kinds == ["reasoning", "message", "reasoning"]  # thoughts, text, then the text's signature
    assert raw["output"][0]["summary"][0]["text"] == "Thinking about: hello"
    assert raw["output"][1]["content"][0]["text"] == "Echo: hello"
    assert raw["output"][2]["encrypted_content"].startswith("gemini.sig.v1.")
    usage = raw["usage"]
    assert usage["output_tokens_details"]["reasoning_tokens"] > 0
    assert usage["output_tokens"] > usage["output_tokens_details"]["reasoning_tokens"]
    seen = gemini[0].requests[-1]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == KEY
    assert seen.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert seen.body["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.5,
                                             "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}


def test_stream_grammar_and_agreement_with_json(proxy: ServerThread, gemini: tuple[FakeGemini, str]) -> None:
    body = {"model": "flash", "input": "a longer sentence to split up", "reasoning": {"summary": "auto"}}
    events = post_stream(proxy.url, MASTER_KEY, body)
    final = check_stream(events)
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == \
        "Echo: a longer sentence to split up"
    assert gemini[0].requests[-1].path.endswith(":streamGenerateContent")
    as_json = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body).json()
    def strip(r: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in o.items() if k not in ("id", "encrypted_content")} for o in r["output"]]
    assert strip(final) == strip(as_json)
    assert final["usage"] == {**as_json["usage"]}


def test_parallel_tool_calls_and_signatures_round_trip(client: OpenAI, proxy: ServerThread,
                                                       gemini: tuple[FakeGemini, str]) -> None:
    events = post_stream(proxy.url, MASTER_KEY, {"model": "flash", "input": "call all", "tools": TOOLS,
                                                 "tool_choice": "auto"})
    first = check_stream(events)
    calls = [o for o in first["output"] if o["type"] == "function_call"]
    assert [o["type"] for o in first["output"]] == ["reasoning", "function_call", "function_call"]
    assert [cl["name"] for cl in calls] == ["lookup", "clock"]
    assert orjson.loads(calls[0]["arguments"]) == {"q": "call all"}
    decl = sent(gemini)["tools"][0]["functionDeclarations"][0]
    assert decl["parametersJsonSchema"]["additionalProperties"] is False
    second = client.responses.create(
        model="flash", previous_response_id=first["id"], tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "42"},
               {"type": "function_call_output", "call_id": calls[1]["call_id"], "output": "noon"}])
    assert second.output_text == "Tool results: 42; noon"
    contents = sent(gemini)["contents"]
    assert [cn["role"] for cn in contents] == ["user", "model", "user"]
    model_parts = contents[1]["parts"]
    assert "thoughtSignature" in model_parts[0] and "thoughtSignature" not in model_parts[1]
    assert [p["functionResponse"]["name"] for p in contents[2]["parts"]] == ["lookup", "clock"]
    # a third turn chains through both: the fake checks every model turn's signature again
    third = client.responses.create(model="flash", previous_response_id=second.id, input="call lookup now",
                                    tools=TOOLS)
    assert [o.type for o in third.output][-1] == "function_call"


def test_a_dropped_signature_is_refused_by_the_fake(proxy: ServerThread, gemini: tuple[FakeGemini, str]) -> None:
    """The oracle really checks: a call replayed without its reasoning item gets the skip marker only on the
    first call; a corrupted blob is refused."""
    first = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                       json={"model": "flash", "input": "call lookup", "tools": TOOLS}).json()
    reasoning, call = first["output"][0], first["output"][1]
    bad = dict(reasoning, encrypted_content="gemini.sig.v1." + "WyJbXCJjYWxsXCIiXQ")  # not our records
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "flash", "tools": TOOLS, "input": [
        {"role": "user", "content": "call lookup"},
        {**bad, "encrypted_content": bad["encrypted_content"]}, call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "1"}]})
    assert r.status_code == 200  # undecodable blob -> the documented skip marker
    assert sent(gemini)["contents"][1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"
    forged = reasoning | {"encrypted_content": reasoning["encrypted_content"]}
    forged_call = call | {"arguments": '{"q": "changed"}'}
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "flash", "tools": TOOLS, "input": [
        {"role": "user", "content": "call lookup"}, forged, forged_call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "1"}]})
    assert r.status_code == 400 and "thought signature" in r.json()["error"]["message"]


def test_cross_provider_chain_mock_then_gemini(client: OpenAI) -> None:
    first = client.responses.create(model="mock/tool", input="what is the weather", tools=TOOLS)
    call = next(o for o in first.output if o.type == "function_call")
    second = client.responses.create(model="flash", previous_response_id=first.id, tools=TOOLS,
                                     input=[{"type": "function_call_output", "call_id": call.call_id,
                                             "output": "sunny"}])
    assert second.output_text == "Tool results: sunny"


def test_vertex_uses_a_google_auth_token(client: OpenAI, gemini: tuple[FakeGemini, str]) -> None:
    r1 = client.responses.create(model="vertex", input="hi", reasoning={"effort": "high"})
    r2 = client.responses.create(model="vertex", input="again")
    assert r1.output_text == "Echo: hi" and r2.output_text == "Echo: again"
    seen = gemini[0].requests[-1]
    assert seen.path == ("/v1/projects/my-proj/locations/europe-west4/publishers/google/models/"
                         "gemini-3-pro-preview:generateContent")
    assert seen.headers["authorization"].removeprefix("Bearer ") in gemini[0].tokens
    assert gemini[0].token_grants == 1  # one token, reused until it nears expiry
    assert gemini[0].requests[-2].body["generationConfig"]["thinkingConfig"] == {
        "thinkingLevel": "high", "includeThoughts": True}


@pytest.mark.parametrize(("code", "message", "reason", "status"), [
    (429, "Resource has been exhausted (e.g. check quota).", None, 429),
    (400, "Invalid value at contents", None, 400),
    (503, "The model is overloaded. Please try again later.", None, 503),
    (504, "Deadline exceeded", None, 504),
    (500, "An internal error has occurred.", None, 500),
    (403, "Permission denied on resource project.", None, 502),
])
def test_google_errors_map_to_statuses(client: OpenAI, gemini: tuple[FakeGemini, str], code: int, message: str,
                                       reason: str | None, status: int) -> None:
    gemini[0].fail_next(code, message, reason)
    with pytest.raises(openai.APIStatusError) as info:
        client.responses.create(model="old", input="hi")
    assert info.value.status_code == status
    if status != 502:
        assert message in str(info.value.body)


def test_a_bad_api_key_is_a_gateway_problem_and_not_leaked(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.responses.create(model="badkey", input="hi")
    assert info.value.status_code == 502 and "wrong-key" not in str(info.value.body)


def test_stream_error_before_first_byte_is_an_http_error(proxy: ServerThread,
                                                         gemini: tuple[FakeGemini, str]) -> None:
    gemini[0].fail_next(429, "Quota exceeded")
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "old", "input": "x", "stream": True})
    assert r.status_code == 429 and r.json()["error"]["message"] == "Quota exceeded"


def test_broken_stream_ends_with_response_failed(proxy: ServerThread, gemini: tuple[FakeGemini, str]) -> None:
    gemini[0].break_stream_after = 2
    events = post_stream(proxy.url, MASTER_KEY, {"model": "old", "input": "a long sentence to break"})
    final = check_stream(events)
    assert final["status"] == "failed"


def test_finish_reasons(client: OpenAI) -> None:
    blocked = client.responses.create(model="old", input="trigger safety")
    assert blocked.status == "incomplete" and blocked.incomplete_details is not None
    assert blocked.incomplete_details.reason == "content_filter"
    cut = client.responses.create(model="old", input="a rather long sentence", max_output_tokens=16)
    assert cut.status == "completed"
    cut = client.responses.create(model="old", input="x" * 200, max_output_tokens=16)
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"


def test_structured_output(client: OpenAI, gemini: tuple[FakeGemini, str]) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    r = client.responses.create(model="old", input="Paris",
                                text={"format": {"type": "json_schema", "name": "c", "schema": schema}})
    assert orjson.loads(r.output_text) == {"city": "Paris"}
    assert sent(gemini)["generationConfig"] == {"responseMimeType": "application/json",
                                                "responseJsonSchema": schema}


@pytest.mark.parametrize("check", c.ALL_CHECKS)
def test_compliance(start_proxy: ProxyFactory, gemini: tuple[FakeGemini, str], check: str) -> None:
    proxy = start_proxy(config(gemini[1], _service_account(gemini[1] + "/token")[0]))
    with httpx.Client(base_url=proxy.url + "/v1", timeout=30, headers=AUTH) as http:
        problems = c.run_check(http, check, "flash", c.Prompts(tool="call get_weather for San Francisco"))
    assert problems == []
