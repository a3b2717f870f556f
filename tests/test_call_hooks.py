"""The gateway's accounting contract: every call gets pre_call, then post_call exactly once, with how it
ended — JSON, stream, a client that leaves, a refused call, a routed retry, a background run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from respgate.calls import Call, Hooks, Principal
from respgate.config import Config, config_from_dicts
from respgate.errors import NotFoundError, RateLimitError
from respgate.events import Event
from respgate.gateway import Gateway
from respgate.store.memory import MemoryStore

ME = Principal("me")


class Recorder:
    """A hook that writes down what it saw, and refuses calls whose input says "refuse"."""

    def __init__(self) -> None:
        self.pre: list[Call] = []
        self.post: list[Call] = []
        self.events: list[str] = []

    async def pre_call(self, call: Call) -> None:
        self.pre.append(call)
        if isinstance(call.body, dict) and call.body.get("input") == "refuse":
            raise RateLimitError("refused by the recorder", code="recorder")
        if isinstance(call.body, dict) and call.body.get("input") == "rewrite me":
            call.body = {**call.body, "input": "rewritten"}

    async def post_call(self, call: Call) -> None:
        self.post.append(call)

    def stream_event(self, call: Call, event: Event) -> None:
        self.events.append(event.type)


def _config() -> Config:
    return config_from_dicts([
        {"model_name": "echo", "litellm_params": {"model": "mock/echo"}},
        {"model_name": "slow", "litellm_params": {"model": "mock/echo", "mock_tokens_per_second": 20}},
        {"model_name": "fail", "litellm_params": {"model": "mock/fail"}},
    ])


@pytest.fixture
async def hooked() -> AsyncIterator[tuple[Gateway, Recorder]]:
    gw = Gateway(_config(), MemoryStore())
    recorder = Recorder()
    gw.platform.hooks = Hooks([recorder])
    await gw.start()
    yield gw, recorder
    await gw.close()


async def test_json_call_is_seen_before_and_after(hooked: tuple[Gateway, Recorder]) -> None:
    gw, rec = hooked
    call = Call(ME, {"model": "echo", "input": "hello"})
    raw = orjson.loads(await gw.create(call.body, ME, call=call))
    assert rec.pre == [call] and rec.post == [call]
    assert call.response is not None and call.response["id"] == raw["id"] == call.response_id
    assert call.deployment is not None and call.deployment.model_name == "echo"
    assert call.status == "completed" and call.usage is not None and call.error is None
    assert call.latency is not None and call.latency >= 0


async def test_pre_call_may_rewrite_the_body(hooked: tuple[Gateway, Recorder]) -> None:
    gw, _ = hooked
    out = orjson.loads(await gw.create({"model": "echo", "input": "rewrite me"}, ME))
    assert out["output"][0]["content"][0]["text"] == "rewritten"


async def test_refused_call_still_gets_post_call(hooked: tuple[Gateway, Recorder]) -> None:
    gw, rec = hooked
    with pytest.raises(RateLimitError):
        await gw.create({"model": "echo", "input": "refuse"}, ME)
    assert len(rec.post) == 1 and isinstance(rec.post[0].error, RateLimitError)
    assert rec.post[0].status == "error"


async def test_failed_response_is_reported(hooked: tuple[Gateway, Recorder]) -> None:
    gw, rec = hooked
    out = orjson.loads(await gw.create({"model": "fail", "input": "x"}, ME))
    assert out["status"] == "failed"
    assert len(rec.post) == 1 and rec.post[0].status == "failed" and rec.post[0].deployment is not None


async def test_unknown_model_is_reported_as_an_error(hooked: tuple[Gateway, Recorder]) -> None:
    gw, rec = hooked
    with pytest.raises(NotFoundError):
        await gw.create({"model": "nope", "input": "x"}, ME)
    assert len(rec.post) == 1 and isinstance(rec.post[0].error, NotFoundError)


async def test_stream_is_accounted_once_at_its_end(hooked: tuple[Gateway, Recorder]) -> None:
    gw, rec = hooked
    call = Call(ME, {"model": "echo", "input": "streamed", "stream": True}, stream=True)
    events = [ev async for ev in await gw.stream(call.body, ME, call=call)]
    assert rec.post == [call]
    assert call.first_event is not None and call.time_to_first_event is not None
    assert call.response is not None and call.response["status"] == "completed"
    assert rec.events == [ev.type for ev in events]


async def test_client_leaving_a_stream_is_accounted(hooked: tuple[Gateway, Recorder]) -> None:
    gw, rec = hooked
    stream = await gw.stream({"model": "slow", "input": "a b c d e f g h", "stream": True}, ME)
    assert isinstance(stream, AsyncIterator)
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert len(rec.post) == 1
    call = rec.post[0]
    assert call.response is None and call.error is not None and call.error.status == 499


async def test_background_run_is_accounted_at_its_final_state(hooked: tuple[Gateway, Recorder]) -> None:
    gw, rec = hooked
    queued = orjson.loads(await gw.create({"model": "slow", "input": "one two three", "background": True}, ME))
    assert queued["status"] == "queued" and rec.post == []  # not yet: the run is still going
    for _ in range(500):
        if rec.post:
            break
        await asyncio.sleep(0.01)
    assert len(rec.post) == 1 and rec.post[0].response is not None
    assert rec.post[0].response["status"] == "completed" and rec.post[0].response_id == queued["id"]


async def test_compact_and_input_tokens_are_calls(hooked: tuple[Gateway, Recorder]) -> None:
    gw, rec = hooked
    await gw.input_tokens({"model": "echo", "input": "count me"}, ME)
    await gw.compact({"model": "echo", "input": "fold me"}, ME)
    # compaction is two calls: the summary a model writes, inside the compact call itself
    assert [c.route for c in rec.post] == ["responses.input_tokens", "responses", "responses.compact"]


def test_proxy_sends_the_request_id_and_the_deployment(start_proxy: object) -> None:
    from conftest import MASTER_KEY

    server = start_proxy()  # type: ignore[operator]
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    r = httpx.post(server.url + "/v1/responses", json={"model": "mock/echo", "input": "hi"},
                   headers={**auth, "x-request-id": "req-abc-1"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-abc-1"
    assert r.headers["x-litellm-model-id"]
    bad = httpx.post(server.url + "/v1/responses", json={"input": "no model"}, headers=auth)
    assert bad.status_code == 400 and len(bad.headers["x-request-id"]) == 32
    other = httpx.get(server.url + "/v1/models", headers={**auth, "x-request-id": "req-abc-2"})
    assert other.headers["x-request-id"] == "req-abc-2"


async def test_a_hook_with_a_plain_ended_is_called_without_a_coroutine_and_its_failure_is_contained(
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    class Plain:
        async def post_call(self, call: Call) -> None:
            seen.append("post_call")  # not used: `ended` is

        def ended(self, call: Call) -> None:
            seen.append("ended")
            raise ValueError("broken")

    recorder = Recorder()
    hooks = Hooks([Plain(), recorder])
    call = Call(ME, {"model": "echo", "input": "hi"})
    await hooks.post_call(call)
    assert seen == ["ended"] and recorder.post == [call]  # the next hook still ran
    assert any("Plain failed: ValueError" in r.getMessage() for r in caplog.records)
