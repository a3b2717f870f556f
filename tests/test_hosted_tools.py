"""OpenAI's hosted tools across providers: web search mapped to Anthropic's server tool and to Gemini's
Google Search grounding (web_search_call items, url_citation annotations, streamed and not); the
hosted tools a provider has no counterpart for refused with a 400 naming the tool, or dropped with
drop_params; OpenAI upstreams get them untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import MASTER_KEY, ProxyFactory
from fakes.anthropic_upstream import FakeAnthropic
from fakes.bedrock_upstream import ACCESS_KEY, SECRET_KEY, FakeBedrock
from fakes.chat_upstream import FakeChat
from fakes.gemini_upstream import FakeGemini
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from grammar import check_stream, validate_openai_event
from sse import post_stream

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
SEARCH: Any = {"type": "web_search"}


@pytest.fixture(autouse=True)
def _no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)


class Fakes:
    def __init__(self) -> None:
        self.anthropic = FakeAnthropic(api_key="sk-ant")
        self.gemini = FakeGemini(api_key="g-key")
        self.chat = FakeChat(api_key="sk-chat")
        self.bedrock = FakeBedrock()
        self.openai = FakeOpenAI(api_key="sk-up")
        self.urls: dict[str, str] = {}


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    f = Fakes()
    servers = {name: ServerThread(getattr(f, name).app).start()
               for name in ("anthropic", "gemini", "chat", "bedrock", "openai")}
    f.urls = {name: s.url for name, s in servers.items()}
    try:
        yield f
    finally:
        for s in servers.values():
            s.stop()


def config(u: dict[str, str], drop: str = "") -> str:
    return f"""
model_list:
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{u['anthropic']}", api_key: sk-ant{drop}}}
  - model_name: gemini
    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: "{u['gemini']}", api_key: g-key{drop}}}
  - model_name: vllm
    litellm_params: {{model: hosted_vllm/qwen3, api_base: "{u['chat']}/v1", api_key: sk-chat{drop}}}
  - model_name: nova
    litellm_params: {{model: "bedrock/converse/amazon.nova-pro-v1:0", api_base: "{u['bedrock']}",
                      aws_access_key_id: {ACCESS_KEY}, aws_secret_access_key: "{SECRET_KEY}",
                      aws_region_name: us-east-1{drop}}}
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{u['openai']}/v1", api_key: sk-up}}
"""


@pytest.fixture
def proxy(start_proxy: ProxyFactory, fakes: Fakes) -> ServerThread:
    return start_proxy(config(fakes.urls))


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


def strip_ids(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "id"} for item in response["output"]]


# --- Anthropic's web search ------------------------------------------------------------------------------

def test_web_search_on_claude(client: OpenAI, fakes: Fakes) -> None:
    tool: Any = {"type": "web_search", "filters": {"allowed_domains": ["docs.example.com"]},
                 "search_context_size": "low",
                 "user_location": {"type": "approximate", "city": "Paris", "country": "FR", "region": None}}
    r = client.responses.create(model="claude", tools=[tool], input="search tides",
                                include=["web_search_call.action.sources"])
    assert fakes.anthropic.requests[-1].body["tools"] == [
        {"type": "web_search_20250305", "name": "web_search", "allowed_domains": ["docs.example.com"],
         "user_location": {"type": "approximate", "city": "Paris", "country": "FR"}, "max_uses": 1}]
    assert "anthropic-beta" not in fakes.anthropic.requests[-1].headers  # web search is generally available
    call, message = r.output
    assert call.type == "web_search_call" and call.status == "completed"
    assert call.action.model_dump(exclude_none=True) == {  # type: ignore[union-attr]
        "type": "search", "query": "tides", "sources": [{"type": "url", "url": "https://docs.example.com/1"},
                                                        {"type": "url", "url": "https://docs.example.com/2"}]}
    assert message.type == "message"
    text = message.content[0]
    assert text.type == "output_text"
    assert text.text == "About tides: the first source says yes. The second agrees."
    spans = [(a.url, text.text[a.start_index:a.end_index]) for a in text.annotations]  # type: ignore[union-attr]
    assert spans == [("https://docs.example.com/1", "the first source says yes."),
                     ("https://docs.example.com/2", "The second agrees."),
                     ("https://docs.example.com/1", "The second agrees.")]
    assert text.annotations[0].model_dump() == {  # type: ignore[union-attr]
        "type": "url_citation", "url": "https://docs.example.com/1", "title": "Result 1 for tides",
        "start_index": 13, "end_index": 39}

    follow = client.responses.create(model="claude", tools=[tool], previous_response_id=r.id, input="thanks")
    assert follow.output_text == "Echo: thanks"
    sent = fakes.anthropic.requests[-1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": [{"type": "text", "text": text.text}]}  # search left out


def test_a_streamed_web_search_agrees_with_json(proxy: ServerThread, fakes: Fakes) -> None:
    body = {"model": "claude", "tools": [SEARCH], "input": "search moons"}
    events = post_stream(proxy.url, MASTER_KEY, body)
    for event in events:
        validate_openai_event(event)
    final = check_stream(events)
    kinds = [e["type"] for e in events]
    assert kinds.count("response.output_text.annotation.added") == 3
    at = kinds.index("response.web_search_call.in_progress")
    assert kinds[at - 1:at + 4] == ["response.output_item.added", "response.web_search_call.in_progress",
                                    "response.web_search_call.searching", "response.web_search_call.completed",
                                    "response.output_item.done"]
    as_json = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body).json()
    assert strip_ids(final) == strip_ids(as_json)
    assert "sources" not in final["output"][0]["action"]  # only when include asks for them


def test_a_failed_search_and_a_forced_search(client: OpenAI, fakes: Fakes) -> None:
    r = client.responses.create(model="claude", tools=[SEARCH], input="search fail")
    assert r.output[0].type == "web_search_call" and r.output[0].status == "failed"
    assert r.output_text == "The search failed."
    client.responses.create(model="claude", tools=[SEARCH], tool_choice={"type": "web_search_preview"},
                            input="search x")
    assert fakes.anthropic.requests[-1].body["tool_choice"] == {"type": "tool", "name": "web_search"}


# --- Gemini's Google Search grounding ---------------------------------------------------------------------

def test_google_search_grounding_on_gemini(client: OpenAI, fakes: Fakes) -> None:
    r = client.responses.create(model="gemini", tools=[{"type": "web_search_preview", "search_context_size": "high"}],
                                input="search coffee", include=["web_search_call.action.sources"])
    assert fakes.gemini.requests[-1].body["tools"] == [{"googleSearch": {}}]
    message, call = r.output
    assert call.type == "web_search_call"
    assert call.action.model_dump(exclude_none=True) == {  # type: ignore[union-attr]
        "type": "search", "query": "coffee", "queries": ["coffee", "coffee details"],
        "sources": [{"type": "url", "url": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/1"},
                    {"type": "url", "url": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/2"}]}
    text = message.content[0]  # type: ignore[union-attr]
    assert text.type == "output_text"
    spans = [(a.title, text.text[a.start_index:a.end_index]) for a in text.annotations]  # type: ignore[union-attr]
    assert spans == [("source1.example", "Le café est bon."), ("source2.example", "The second source agrees."),
                     ("source1.example", "The second source agrees.")]  # character offsets, not bytes
    follow = client.responses.create(model="gemini", tools=[SEARCH], previous_response_id=r.id, input="thanks")
    assert follow.output_text == "Echo: thanks"
    turns = fakes.gemini.requests[-1].body["contents"]
    assert [t["role"] for t in turns] == ["user", "model", "user"]  # the search itself is not replayed
    assert turns[1]["parts"][0]["text"] == text.text


def test_a_streamed_grounded_answer_agrees_with_json(proxy: ServerThread) -> None:
    body = {"model": "gemini", "tools": [SEARCH], "input": "search tea"}
    events = post_stream(proxy.url, MASTER_KEY, body)
    for event in events:
        validate_openai_event(event)
    final = check_stream(events)
    as_json = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body).json()
    assert strip_ids(final) == strip_ids(as_json)
    assert [o["type"] for o in final["output"]] == ["message", "web_search_call"]
    assert len(final["output"][0]["content"][0]["annotations"]) == 3


@pytest.mark.parametrize(("tool", "param"), [
    ({"type": "web_search", "filters": {"allowed_domains": ["a.com"]}}, "tools[0].filters"),
    ({"type": "web_search", "user_location": {"type": "approximate", "city": "Oslo"}}, "tools[0].user_location"),
    ({"type": "web_search", "external_web_access": False}, "tools[0].external_web_access"),
])
def test_google_search_refuses_what_it_cannot_do(client: OpenAI, tool: Any, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gemini", tools=[tool], input="search x")
    assert err.value.body["param"] == param  # type: ignore[index]


def test_gemini_2_refuses_search_beside_functions_upstream(client: OpenAI) -> None:
    function: Any = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}},
                     "strict": False}
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gemini", tools=[SEARCH, function], input="search x")
    assert "Tool use with function calling is unsupported" in err.value.message


# --- refusals and passthrough -----------------------------------------------------------------------------

HOSTED: list[Any] = [
    {"type": "file_search", "vector_store_ids": ["vs_1"]},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "image_generation"},
]


@pytest.mark.parametrize("model", ["claude", "gemini", "vllm", "nova"])
@pytest.mark.parametrize("tool", HOSTED, ids=lambda t: t["type"])
def test_hosted_tools_without_a_counterpart_are_refused(client: OpenAI, model: str, tool: Any) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=model, tools=[tool], input="hi")
    assert err.value.body["param"] == "tools[0].type"  # type: ignore[index]
    assert tool["type"] in err.value.message


@pytest.mark.parametrize("model", ["vllm", "nova"])
def test_web_search_is_refused_where_there_is_no_search(client: OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=model, tools=[SEARCH], input="hi")
    assert err.value.body["param"] == "tools[0].type"  # type: ignore[index]


def test_drop_params_drops_them(start_proxy: ProxyFactory, fakes: Fakes) -> None:
    proxy = start_proxy(config(fakes.urls, drop=", drop_params: true"))
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
        for model in ("claude", "gemini", "vllm", "nova"):
            r = client.responses.create(model=model, tools=HOSTED, input="hi")
            assert r.output_text.endswith("hi"), model
    assert "tools" not in fakes.anthropic.requests[-1].body and "tools" not in fakes.gemini.requests[-1].body


def test_openai_gets_hosted_tools_untouched(client: OpenAI, fakes: Fakes) -> None:
    tools: Any = [SEARCH, *HOSTED]
    client.responses.create(model="gpt", tools=tools, input="hi")
    assert [r for r in fakes.openai.requests if r.method == "POST"][-1].body["tools"] == tools
