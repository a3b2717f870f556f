"""One session across providers, and Claude on Vertex AI.

A chain started on Anthropic continues on Gemini, then on native OpenAI, then through the Chat
Completions bridge: each upstream must receive the whole conversation so far in its own format.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from openai import OpenAI

from conftest import MASTER_KEY, ProxyFactory
from fakes.anthropic_upstream import FakeAnthropic
from fakes.chat_upstream import FakeChat
from fakes.gemini_upstream import FakeGemini
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from grammar import check_stream
from sse import post_stream


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
def upstreams() -> Iterator[dict[str, Any]]:
    anthropic, gemini = FakeAnthropic(api_key="sk-ant"), FakeGemini(api_key="g-key")
    openai_, chat = FakeOpenAI(api_key="sk-oa"), FakeChat(api_key="sk-chat", reasoning_field="reasoning_content")
    anthropic.vertex_tokens = gemini.tokens  # the Google token endpoint (in the Gemini fake) mints them
    with ServerThread(anthropic.app) as a, ServerThread(gemini.app) as g, ServerThread(openai_.app) as o, \
            ServerThread(chat.app) as c:
        creds, public = _service_account(g.url + "/token")
        gemini.public_key = public
        yield {"anthropic": (anthropic, a.url), "gemini": (gemini, g.url), "openai": (openai_, o.url),
               "chat": (chat, c.url), "creds": creds}


@pytest.fixture
def client(start_proxy: ProxyFactory, upstreams: dict[str, Any]) -> Iterator[OpenAI]:
    creds = orjson.dumps(upstreams["creds"]).decode()
    a, g, o, c = (upstreams[k][1] for k in ("anthropic", "gemini", "openai", "chat"))
    proxy = start_proxy(f"""
model_list:
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{a}", api_key: sk-ant}}
  - model_name: gemini
    litellm_params: {{model: gemini/gemini-2.0-flash, api_base: "{g}", api_key: g-key}}
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{o}/v1", api_key: sk-oa}}
  - model_name: ds
    litellm_params: {{model: deepseek/deepseek-chat, api_base: "{c}/v1", api_key: sk-chat}}
  - model_name: vertex-claude
    litellm_params: {{model: vertex_ai/claude-sonnet-4-5@20250929, api_base: "{a}", vertex_project: my-proj,
                      vertex_location: us-east5, vertex_credentials: {creds}}}
""")
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as openai_client:
        openai_client._test_proxy_url = proxy.url  # type: ignore[attr-defined]
        yield openai_client


def test_a_session_moves_across_four_providers(client: OpenAI, upstreams: dict[str, Any]) -> None:
    t1 = client.responses.create(model="claude", input="first on claude")
    t2 = client.responses.create(model="gemini", input="second on gemini", previous_response_id=t1.id)
    t3 = client.responses.create(model="gpt", input="third on gpt", previous_response_id=t2.id)
    t4 = client.responses.create(model="ds", input="fourth via the bridge", previous_response_id=t3.id)
    assert [t.output_text for t in (t1, t2, t3, t4)] == [
        "Echo: first on claude", "Echo: second on gemini", "Echo: third on gpt", "Echo: fourth via the bridge"]
    gemini_body = upstreams["gemini"][0].requests[-1].body
    assert [c["role"] for c in gemini_body["contents"]] == ["user", "model", "user"]
    assert gemini_body["contents"][1]["parts"][0]["text"] == "Echo: first on claude"
    openai_body = upstreams["openai"][0].requests[-1].body
    assert "previous_response_id" not in openai_body  # the chain lives in our store, not OpenAI's
    assert [i["role"] for i in openai_body["input"]] == ["user", "assistant", "user", "assistant", "user"]
    chat_body = upstreams["chat"][0].requests[-1].body
    assert [m["content"] for m in chat_body["messages"]] == [
        "first on claude", "Echo: first on claude", "second on gemini", "Echo: second on gemini",
        "third on gpt", "Echo: third on gpt", "fourth via the bridge"]
    # and back to Claude with the whole history
    t5 = client.responses.create(model="claude", input="home again", previous_response_id=t4.id)
    assert t5.output_text == "Echo: home again"
    assert len(upstreams["anthropic"][0].requests[-1].body["messages"]) == 9


def test_claude_on_vertex_ai(client: OpenAI, upstreams: dict[str, Any]) -> None:
    r = client.responses.create(model="vertex-claude", input="hello vertex")
    assert r.output_text == "Echo: hello vertex" and r.model == "vertex-claude"
    seen = upstreams["anthropic"][0].requests[-1]
    assert seen.headers["authorization"].startswith("Bearer ya29.fake-")
    assert "x-api-key" not in seen.headers and "model" not in seen.body
    assert seen.body["anthropic_version"] == "vertex-2023-10-16"
    events = post_stream(client._test_proxy_url, MASTER_KEY,  # type: ignore[attr-defined]
                         {"model": "vertex-claude", "input": "stream on vertex", "reasoning": {"effort": "low"}})
    final = check_stream(events)
    assert [o["type"] for o in final["output"]] == ["reasoning", "message"]
    follow = client.responses.create(model="vertex-claude", input="again", previous_response_id=final["id"])
    assert follow.output_text == "Echo: again"
