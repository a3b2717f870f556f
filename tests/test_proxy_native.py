"""Native passthrough through the proxy, against the strict fake OpenAI upstream (and its Azure paths)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import MASTER_KEY, ProxyFactory
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from grammar import check_stream
from sse import parse_sse, post_stream

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
UPSTREAM_KEY = "sk-upstream-secret-987654"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    f = FakeOpenAI(api_key=UPSTREAM_KEY, azure_api_version="2025-03-01-preview")
    with ServerThread(f.app) as server:
        f.url = server.url  # type: ignore[attr-defined]
        yield f


def native_config(url: str, *, timeout: float | None = None, key: str = UPSTREAM_KEY) -> str:
    extra = f", timeout: {timeout}" if timeout else ""
    return f"""
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{url}/v1", api_key: "{key}"{extra}}}
  - model_name: my-azure
    litellm_params: {{model: azure/gpt-4o-deploy, api_base: "{url}", api_key: "{key}",
                      api_version: "2025-03-01-preview"}}
  - model_name: mock/recall
    litellm_params: {{model: mock/recall}}
"""


@pytest.fixture
def proxy(start_proxy: ProxyFactory, fake: FakeOpenAI) -> ServerThread:
    return start_proxy(native_config(fake.url))  # type: ignore[attr-defined]


def last_request(fake: FakeOpenAI, method: str = "POST") -> Any:
    return [r for r in fake.requests if r.method == method][-1]


def test_create_relays_the_upstream_body_with_only_ids_and_model_rewritten(
        proxy: ServerThread, fake: FakeOpenAI) -> None:
    body = {"model": "gpt-4o", "input": "hello", "prompt_cache_key": "k1", "safety_identifier": "u1",
            "metadata": {"a": "b"}}
    ours = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body).json()
    sent = last_request(fake)
    assert sent.body == {**body, "model": "gpt-4o"}  # fields pass through untouched; nothing added
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    upstream = next(s.body for s in fake.responses.values())
    assert ours["id"] != upstream["id"] and ours["id"].startswith("resp_")
    assert ours["model"] == "gpt-4o" and upstream["model"] != "gpt-4o"
    assert list(ours) == list(upstream)
    assert {k: v for k, v in ours.items() if k not in ("id", "model")} == \
        {k: v for k, v in upstream.items() if k not in ("id", "model")}


def test_stream_is_relayed_and_the_final_response_stored(proxy: ServerThread, fake: FakeOpenAI) -> None:
    events = post_stream(proxy.url, MASTER_KEY, {"model": "gpt-4o", "input": "stream this text"})
    final = check_stream(events)
    assert final["id"].startswith("resp_") and final["model"] == "gpt-4o"
    assert all(e["response"]["id"] == final["id"] for e in events if "response" in e)
    got = httpx.get(proxy.url + f"/v1/responses/{final['id']}", headers=AUTH).json()
    assert got == final
    assert last_request(fake).body["stream"] is True


def test_sdk_against_native(proxy: ServerThread) -> None:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        r = c.responses.create(model="gpt-4o", input="one")
        assert r.output_text == "Echo: one"
        follow = c.responses.create(model="gpt-4o", input="recall", previous_response_id=r.id)
        assert follow.output_text == "one"  # the fake's `recall`: earlier user texts of the chain
        assert follow.previous_response_id == r.id
        items = c.responses.input_items.list(follow.id)
        assert items.data
        with c.responses.stream(model="gpt-4o", input="streamed") as s:
            final = s.get_final_response()
        assert c.responses.retrieve(final.id).output_text == final.output_text
        c.responses.delete(r.id)
        with pytest.raises(openai.NotFoundError):
            c.responses.retrieve(r.id)


def test_previous_response_id_goes_upstream_as_the_upstream_id(proxy: ServerThread, fake: FakeOpenAI) -> None:
    first = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt-4o", "input": "a"}).json()
    upstream_first = next(iter(fake.responses))
    httpx.post(proxy.url + "/v1/responses", headers=AUTH,
               json={"model": "gpt-4o", "input": "recall", "previous_response_id": first["id"]})
    assert last_request(fake).body["previous_response_id"] == upstream_first


def test_chain_started_on_mock_continues_natively_by_replay(proxy: ServerThread, fake: FakeOpenAI) -> None:
    first = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                       json={"model": "mock/recall", "input": "from mock"}).json()
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                   json={"model": "gpt-4o", "input": "recall", "previous_response_id": first["id"]})
    assert r.status_code == 200, r.text
    sent = last_request(fake).body
    assert "previous_response_id" not in sent
    assert [i["type"] for i in sent["input"]] == ["message", "message", "message"]
    assert r.json()["output"][0]["content"][0]["text"] == "from mock"


def test_delete_and_input_items_reach_the_upstream(proxy: ServerThread, fake: FakeOpenAI) -> None:
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt-4o", "input": "x"}).json()
    items = httpx.get(proxy.url + f"/v1/responses/{r['id']}/input_items", headers=AUTH)
    assert items.status_code == 200 and last_request(fake, "GET").path.endswith("/input_items")
    assert httpx.delete(proxy.url + f"/v1/responses/{r['id']}", headers=AUTH).json()["deleted"] is True
    assert not fake.responses


def test_background_retrieve_and_cancel_go_upstream(proxy: ServerThread, fake: FakeOpenAI) -> None:
    fake.background_seconds = 0.3
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                   json={"model": "gpt-4o", "input": "slow", "background": True}).json()
    assert r["status"] in ("queued", "in_progress") and r["background"] is True
    cancelled = httpx.post(proxy.url + f"/v1/responses/{r['id']}/cancel", headers=AUTH)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["id"] == r["id"]
    fake.background_seconds = 0.05
    r2 = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                    json={"model": "gpt-4o", "input": "quick", "background": True}).json()
    for _ in range(100):
        got = httpx.get(proxy.url + f"/v1/responses/{r2['id']}", headers=AUTH).json()
        if got["status"] == "completed":
            break
        time.sleep(0.02)
    assert got["status"] == "completed" and got["id"] == r2["id"]
    events = parse_sse(httpx.get(proxy.url + f"/v1/responses/{r2['id']}?stream=true", headers=AUTH).text)
    assert check_stream(events)["id"] == r2["id"]


def test_compact_and_input_tokens_pass_through(proxy: ServerThread, fake: FakeOpenAI) -> None:
    c = httpx.post(proxy.url + "/v1/responses/compact", headers=AUTH,
                   json={"model": "gpt-4o", "input": [{"role": "user", "content": "hello there"}]})
    assert c.status_code == 200, c.text
    assert c.json()["object"] == "response.compaction"
    t = httpx.post(proxy.url + "/v1/responses/input_tokens", headers=AUTH,
                   json={"model": "gpt-4o", "input": "12345678"})
    assert t.json() == {"object": "response.input_tokens", "input_tokens": 2}
    assert last_request(fake).body["model"] == "gpt-4o"


def test_upstream_validation_errors_are_relayed(proxy: ServerThread) -> None:
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                   json={"model": "gpt-4o", "input": "x", "not_a_param": 1})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "not_a_param" and r.json()["error"]["code"] == "unknown_parameter"
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt-4o", "input": "x", "top_p": "a"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_p"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_upstream_failures_keep_their_status(proxy: ServerThread, fake: FakeOpenAI, status: int) -> None:
    fake.fail_next(status)
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt-4o", "input": "x"})
    assert r.status_code == status and set(r.json()["error"]) == {"message", "type", "param", "code"}
    fake.fail_next(status)
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt-4o", "input": "x", "stream": True})
    assert r.status_code == status


def test_garbage_upstream_is_502(proxy: ServerThread, fake: FakeOpenAI) -> None:
    fake.garbage_next()
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt-4o", "input": "x"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "bad_gateway"


def test_unreachable_upstream_is_502(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(native_config("http://127.0.0.1:9"))
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt-4o", "input": "x"})
    assert r.status_code == 502


def test_slow_upstream_is_504(start_proxy: ProxyFactory, fake: FakeOpenAI) -> None:
    proxy = start_proxy(native_config(fake.url, timeout=0.3))  # type: ignore[attr-defined]
    fake.delay_next(2.0)
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt-4o", "input": "x"}, timeout=10)
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"


def test_stream_dropped_midway_ends_with_response_failed(proxy: ServerThread, fake: FakeOpenAI) -> None:
    fake.drop_stream_after(4)
    events = post_stream(proxy.url, MASTER_KEY, {"model": "gpt-4o", "input": "several words to stream here"})
    assert events[-1]["type"] == "response.failed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    rid = events[-1]["response"]["id"]
    got = httpx.get(proxy.url + f"/v1/responses/{rid}", headers=AUTH).json()
    assert got["status"] == "failed"


def test_wrong_upstream_key_is_502_without_the_key(start_proxy: ProxyFactory, fake: FakeOpenAI) -> None:
    proxy = start_proxy(native_config(fake.url, key="sk-wrong-upstream-key-42"))  # type: ignore[attr-defined]
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt-4o", "input": "x"})
    assert r.status_code == 502
    assert "sk-wrong" not in r.text and "42" not in r.json()["error"]["message"]


def test_azure_uses_its_path_version_and_header(proxy: ServerThread, fake: FakeOpenAI) -> None:
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "my-azure", "input": "az"})
    assert r.status_code == 200, r.text
    sent = last_request(fake)
    assert sent.path == "/openai/responses" and "api-version=2025-03-01-preview" in sent.query
    assert sent.headers["api-key"] == UPSTREAM_KEY and "authorization" not in sent.headers
    assert sent.body["model"] == "gpt-4o-deploy"
    rid = r.json()["id"]
    assert httpx.get(proxy.url + f"/v1/responses/{rid}", headers=AUTH).json()["model"] == "my-azure"
    assert httpx.delete(proxy.url + f"/v1/responses/{rid}", headers=AUTH).status_code == 200
    assert last_request(fake, "DELETE").path.startswith("/openai/responses/")


def test_upstream_retry_after_reaches_the_client(proxy: ServerThread, fake: FakeOpenAI) -> None:
    fake.fail_next(429, retry_after="7")
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "gpt-4o", "input": "x"})
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
