"""Reusable prompts end to end: the admin API, and every provider path receiving the resolved prompt.

The official openai SDK calls the proxy with `prompt={id, version, variables}`; each strict fake
upstream records what it was sent, so the test sees the prompt as each provider's wire has it.
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
from grammar import check_stream
from respgate.calls import Principal
from sse import post_stream

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
USER_KEY = "sk-not-an-admin"
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
       "AAAABJRU5ErkJggg==")

PROMPTS = """
prompts:
  - prompt_id: greeter
    litellm_params:
      prompt_id: greeter
      prompt_integration: dotprompt
      dotprompt_content: |
        ---
        temperature: 0.3
        ---
        System: You greet {{who}} warmly.

        User: Please say hello to {{who}}.
  - prompt_id: photo
    instructions: "Describe pictures for {{who}}."
    input:
      - role: user
        content: "Here it is: {{picture}} Thanks."
"""


@pytest.fixture(autouse=True)
def _no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)


class Upstreams:
    def __init__(self) -> None:
        self.openai = FakeOpenAI(api_key="sk-up")
        self.chat = FakeChat(api_key="sk-chat")
        self.anthropic = FakeAnthropic(api_key="sk-ant")
        self.gemini = FakeGemini(api_key="g-key")
        self.bedrock = FakeBedrock()
        self.urls: dict[str, str] = {}


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams()
    servers = {name: ServerThread(getattr(ups, name).app).start()
               for name in ("openai", "chat", "anthropic", "gemini", "bedrock")}
    ups.urls = {name: s.url for name, s in servers.items()}
    try:
        yield ups
    finally:
        for s in servers.values():
            s.stop()


def models(u: dict[str, str]) -> str:
    return f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{u['openai']}/v1", api_key: sk-up}}
  - model_name: vllm
    litellm_params: {{model: hosted_vllm/qwen3, api_base: "{u['chat']}/v1", api_key: sk-chat}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{u['anthropic']}", api_key: sk-ant}}
  - model_name: gemini
    litellm_params: {{model: gemini/gemini-2.0-flash, api_base: "{u['gemini']}", api_key: g-key}}
  - model_name: nova
    litellm_params: {{model: "bedrock/converse/amazon.nova-pro-v1:0", api_base: "{u['bedrock']}",
                      aws_access_key_id: {ACCESS_KEY}, aws_secret_access_key: "{SECRET_KEY}",
                      aws_region_name: us-east-1}}
  - model_name: mock/echo
    litellm_params: {{model: mock/echo}}
"""


@pytest.fixture
def proxy(start_proxy: ProxyFactory, upstreams: Upstreams) -> ServerThread:
    return start_proxy(models(upstreams.urls) + PROMPTS)


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


def last(fake: Any) -> dict[str, Any]:
    body: dict[str, Any] = [r for r in fake.requests if isinstance(r.body, dict)][-1].body
    return body


GREET: Any = {"id": "greeter", "variables": {"who": "Ada"}}
SYSTEM = "You greet Ada warmly."
ASK = "Please say hello to Ada."


def test_every_provider_receives_the_resolved_prompt(client: OpenAI, upstreams: Upstreams) -> None:
    for model in ("gpt", "vllm", "claude", "gemini", "nova", "mock/echo"):
        r = client.responses.create(model=model, prompt=GREET, input="and to me", instructions="Keep it short.")
        assert r.output_text.endswith("and to me"), model  # every echo model answers the last user text
        assert r.temperature == 0.3, model  # the front matter's default
    assert last(upstreams.openai)["instructions"] == f"{SYSTEM}\n\nKeep it short."
    assert "prompt" not in last(upstreams.openai)  # a registry prompt never reaches OpenAI
    assert last(upstreams.openai)["input"][0] == {"type": "message", "role": "user", "content": ASK}
    chat = last(upstreams.chat)["messages"]
    assert chat[0] == {"role": "system", "content": f"{SYSTEM}\n\nKeep it short."}
    assert [m["content"] for m in chat[1:]] == [ASK, "and to me"]
    claude = last(upstreams.anthropic)
    assert claude["system"] == f"{SYSTEM}\n\nKeep it short." and claude["temperature"] == 0.3
    assert [b["text"] for b in claude["messages"][0]["content"]] == [ASK, "and to me"]
    gemini = last(upstreams.gemini)
    assert gemini["systemInstruction"] == {"parts": [{"text": f"{SYSTEM}\n\nKeep it short."}]}
    assert [p["text"] for p in gemini["contents"][0]["parts"]] == [ASK, "and to me"]
    nova = last(upstreams.bedrock)
    assert nova["system"][0]["text"] == f"{SYSTEM}\n\nKeep it short."
    assert [b["text"] for b in nova["messages"][0]["content"]] == [ASK, "and to me"]


def test_the_stored_turn_and_the_echoed_instructions(client: OpenAI) -> None:
    r = client.responses.create(model="mock/echo", prompt=GREET, input="hi")
    assert r.instructions == SYSTEM  # the instructions in effect, as OpenAI echoes them
    items = client.responses.input_items.list(r.id, order="asc").data
    assert [item.content[0].text for item in items] == [ASK, "hi"]  # type: ignore[union-attr]


def test_image_variables_become_parts_of_the_user_message(client: OpenAI, upstreams: Upstreams) -> None:
    picture = {"type": "input_image", "image_url": PNG, "detail": "auto"}
    prompt: Any = {"id": "photo", "variables": {"who": "Bo", "picture": picture}}
    client.responses.create(model="claude", prompt=prompt)
    claude = last(upstreams.anthropic)
    assert claude["system"] == "Describe pictures for Bo."
    assert [b["type"] for b in claude["messages"][0]["content"]] == ["text", "image", "text"]
    assert claude["messages"][0]["content"][1]["source"]["media_type"] == "image/png"
    client.responses.create(model="gemini", prompt=prompt, input="more")
    parts = last(upstreams.gemini)["contents"][0]["parts"]
    assert [next(iter(p)) for p in parts] == ["text", "inlineData", "text", "text"]
    client.responses.create(model="vllm", prompt=prompt)
    content = last(upstreams.chat)["messages"][1]["content"]
    assert [p["type"] for p in content] == ["text", "image_url", "text"]


def test_a_stream_uses_the_prompt_too(proxy: ServerThread, upstreams: Upstreams) -> None:
    final = check_stream(post_stream(proxy.url, MASTER_KEY, {"model": "claude", "prompt": GREET, "input": "yo"}))
    assert final["status"] == "completed" and final["instructions"] == SYSTEM
    assert last(upstreams.anthropic)["stream"] is True and last(upstreams.anthropic)["system"] == SYSTEM


def test_openai_prompt_ids_pass_through_to_openai_only(client: OpenAI, upstreams: Upstreams) -> None:
    prompt: Any = {"id": "pmpt_abc123", "version": "2", "variables": {"customer_name": "Jane Doe"}}
    client.responses.create(model="gpt", prompt=prompt, input="hi")
    assert last(upstreams.openai)["prompt"] == prompt  # untouched
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="claude", prompt=prompt, input="hi")
    assert err.value.body["param"] == "prompt.id"  # type: ignore[index]


def test_missing_variable_and_unknown_prompt_are_client_errors(client: OpenAI, upstreams: Upstreams) -> None:
    sent = len(upstreams.anthropic.requests)
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="claude", prompt={"id": "greeter", "variables": {}}, input="hi")
    assert bad.value.body["param"] == "prompt.variables.who"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="claude", prompt={"id": "nobody"}, input="hi")
    assert missing.value.body["param"] == "prompt.id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as version:
        client.responses.create(model="claude", prompt={"id": "greeter", "version": "9", "variables": {"who": "x"}})
    assert version.value.body["param"] == "prompt.version"  # type: ignore[index]
    assert len(upstreams.anthropic.requests) == sent  # nothing reached the upstream


# --- the admin API ------------------------------------------------------------------------------------------

def test_create_version_and_use_prompts_through_the_admin_api(proxy: ServerThread, client: OpenAI) -> None:
    url = proxy.url
    made = httpx.post(url + "/prompts", headers=AUTH, json={
        "prompt_id": "jack", "litellm_params": {"prompt_id": "jack", "prompt_integration": "dotprompt",
                                                "dotprompt_content": "System: Talk like {{pirate}}."}})
    assert made.status_code == 200, made.text
    assert made.json()["version"] == 1 and made.json()["prompt_info"] == {"prompt_type": "db"}
    assert made.json()["variables"] == ["pirate"]
    again = httpx.put(url + "/prompts/jack", headers=AUTH, json={
        "prompt_id": "jack", "litellm_params": {"dotprompt_content": "System: Talk like {{pirate}}, v2."}})
    assert again.json()["version"] == 2
    patched = httpx.patch(url + "/prompts/jack", headers=AUTH, json={"prompt_info": {"owner": "ops"}})
    assert patched.json()["version"] == 3 and patched.json()["prompt_info"] == {"owner": "ops", "prompt_type": "db"}
    assert "v2" in patched.json()["litellm_params"]["dotprompt_content"]
    versions = httpx.get(url + "/prompts/jack/versions", headers=AUTH).json()["prompts"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    info = httpx.get(url + "/prompts/jack.v1/info", headers=AUTH).json()  # LiteLLM's versioned id
    assert info["prompt_spec"]["version"] == 1
    assert info["template"]["instructions"] == "Talk like {{pirate}}."
    assert httpx.get(url + "/prompts/jack?version=2", headers=AUTH).json()["prompt_spec"]["version"] == 2
    listed = httpx.get(url + "/prompts/list", headers=AUTH).json()["prompts"]
    assert [(p["prompt_id"], p["version"], p["prompt_info"]["prompt_type"]) for p in listed] == [
        ("greeter", 1, "config"), ("photo", 1, "config"), ("jack", 3, "db")]

    prompt: Any = {"id": "jack", "variables": {"pirate": "Jack Sparrow"}}
    assert client.responses.create(model="mock/echo", prompt=prompt, input="x").instructions == \
        "Talk like Jack Sparrow, v2."
    pinned: Any = {**prompt, "version": "1"}
    assert client.responses.create(model="mock/echo", prompt=pinned, input="x").instructions == \
        "Talk like Jack Sparrow."

    assert httpx.delete(url + "/prompts/jack", headers=AUTH).json() == {"message": "Prompt jack deleted successfully"}
    assert httpx.get(url + "/prompts/jack/versions", headers=AUTH).status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="mock/echo", prompt=prompt, input="x")


@pytest.mark.parametrize(("method", "path", "body", "status", "param"), [
    ("POST", "/prompts", {"prompt_id": "greeter", "litellm_params": {"instructions": "x"}}, 400, "prompt_id"),
    ("PUT", "/prompts/greeter", {"litellm_params": {"instructions": "x"}}, 400, "prompt_id"),
    ("DELETE", "/prompts/photo", None, 400, "prompt_id"),
    ("PUT", "/prompts/nobody", {"litellm_params": {"instructions": "x"}}, 404, "prompt_id"),
    ("GET", "/prompts/nobody", None, 404, "prompt_id"),
    ("POST", "/prompts", {"prompt_id": "p", "litellm_params": {"prompt_integration": "langfuse"}}, 400,
     "litellm_params.prompt_integration"),
    ("POST", "/prompts", {"prompt_id": "p", "litellm_params": {"prompt_integration": "dotprompt",
                                                               "prompt_directory": "/etc"}}, 400,
     "litellm_params.prompt_directory"),
    ("POST", "/prompts", ["not", "an", "object"], 400, None),
])
def test_admin_api_errors(proxy: ServerThread, method: str, path: str, body: Any, status: int,
                          param: str | None) -> None:
    answer = httpx.request(method, proxy.url + path, headers=AUTH, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["param"] == param


def test_only_admins_manage_prompts(proxy: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    from respgate.proxy.auth import Authenticator

    real = Authenticator.authenticate

    async def authenticate(self: Authenticator, authorization: str | None, api_key: str | None,
                           litellm_key: str | None = None) -> Principal:
        if authorization == f"Bearer {USER_KEY}":
            return Principal("user-owner")
        return await real(self, authorization, api_key, litellm_key)

    monkeypatch.setattr(Authenticator, "authenticate", authenticate)
    user = {"Authorization": f"Bearer {USER_KEY}"}
    create = {"prompt_id": "mine", "litellm_params": {"instructions": "x"}}
    assert httpx.post(proxy.url + "/prompts", headers=user, json=create).status_code == 403
    assert httpx.get(proxy.url + "/prompts/greeter", headers=user).status_code == 403
    assert httpx.get(proxy.url + "/prompts/list", headers=user).json() == {"prompts": []}
    with OpenAI(base_url=proxy.url + "/v1", api_key=USER_KEY, max_retries=0) as as_user:  # using them is open
        assert as_user.responses.create(model="mock/echo", prompt=GREET, input="hi").instructions == SYSTEM
    assert httpx.post(proxy.url + "/prompts", json=create).status_code == 401


def test_the_response_echoes_the_prompt(client: OpenAI, proxy: ServerThread) -> None:
    """Needs the gateway to keep `PromptRegistry.echo_of(body)` for the Response (resolve removes it)."""
    for model in ("mock/echo", "claude", "gpt"):
        r = client.responses.create(model=model, prompt=GREET, input="hi")
        assert r.prompt is not None and r.prompt.model_dump() == {"id": "greeter", "variables": {"who": "Ada"},
                                                                  "version": None}, model
        stored = httpx.get(f"{proxy.url}/v1/responses/{r.id}", headers=AUTH).json()
        assert stored["prompt"] == r.prompt.model_dump(), model
    streamed = check_stream(post_stream(proxy.url, MASTER_KEY, {"model": "claude", "prompt_id": "greeter",
                                                               "prompt_variables": {"who": "Ada"}, "input": "x"}))
    assert streamed["prompt"] == {"id": "greeter", "variables": {"who": "Ada"}, "version": None}
