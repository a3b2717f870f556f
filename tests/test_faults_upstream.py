"""Upstream faults on every provider path, JSON and stream: the client gets the right status before the
first event, or a valid stream ending in `response.failed` after it; the failed response is stored and
retrievable by the id the client was told; no connection hangs and no task outlives the proxy.

Each provider's strict fake sits behind a `FaultyUpstream` (tests/fakes/faulty_upstream.py), which
breaks one request at a time at the TCP/HTTP level. Waits are bounded (client timeouts, Event.wait);
nothing sleeps to synchronise and nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conftest import MASTER_KEY
from fakes import faulty_upstream as f
from fakes.anthropic_upstream import FakeAnthropic
from fakes.bedrock_upstream import ACCESS_KEY, SECRET_KEY, FakeBedrock, encode_frame, event_frame
from fakes.chat_upstream import FakeChat
from fakes.faulty_upstream import FaultyUpstream
from fakes.gemini_upstream import FakeGemini
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from grammar import check_stream
from procs import free_port
from respgate.config import load_config
from respgate.gateway import Gateway
from respgate.proxy.app import Proxy
from respgate.store.base import Store
from respgate.store.factory import database_target
from sse import parse_sse

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
KEY = "sk-upstream-faults-5150"
PROVIDERS = ["native", "chat", "anthropic", "gemini", "bedrock"]
SHORT = 0.5  # the timeouts of the `-short` deployments: only calls that never finish use them
CLIENT_TIMEOUT = 20.0  # no test waits longer than this on anything
TEXT = "the quick brown fox jumps over the lazy dog again and again"


# ---------------------------------------------------------------- the proxy and its fakes


class LeakWatch:
    """An ASGI wrapper: when the app's lifespan shutdown completes (the gateway closed its store, its
    HTTP session and its runs), every task still pending on the loop but uvicorn's own `Server.serve`
    is a leak. Unclosed sessions and sockets fail the test through filterwarnings=error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.leaks: list[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watching(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await asyncio.sleep(0)  # tasks cancelled by close() finish unwinding
                me = asyncio.current_task()
                self.leaks = [repr(t) for t in asyncio.all_tasks()
                              if t is not me and t.get_coro().__qualname__ != "Server.serve"]  # type: ignore[union-attr]
            await send(message)

        await self.app(scope, receive, watching)


class WatchedProxy:
    """A proxy in a thread whose stop() asserts that nothing leaked. `database_url` defaults to a SQLite
    file in `tmp_path`; `store` replaces the store it names (to tune it), on the same database."""

    def __init__(self, config_text: str, tmp_path: Path, name: str = "proxy", *, database_url: str | None = None,
                 store: Store | None = None) -> None:
        path = tmp_path / f"{name}.yaml"
        self.database_url = database_url or f"sqlite:///{tmp_path / name}.db"
        path.write_text(config_text + f"\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
                                      f"  database_url: \"{self.database_url}\"\n")
        config = load_config(str(path))
        gateway = None
        if store is not None:
            gateway = Gateway(config, store, database=database_target(self.database_url))
        self.proxy = Proxy(config, gateway)
        self.watch = LeakWatch(self.proxy.app)
        self.server = ServerThread(self.watch).start()
        self.url = self.server.url

    def stop(self) -> None:
        if self.watch.leaks is None:
            self.server.stop()
            assert self.watch.leaks == [], f"tasks outlived the proxy: {self.watch.leaks}"


@dataclass
class ProviderPath:
    """One provider path: its fake, and the FaultyUpstream in front of it that the models point at."""

    name: str
    upstream: FaultyUpstream

    def exchanges(self) -> list[f.Exchange]:
        return self.upstream.exchanges


def _fake_app(name: str) -> Any:
    if name == "native":
        return FakeOpenAI(api_key=KEY).app
    if name == "chat":
        return FakeChat(api_key=KEY).app
    if name == "anthropic":
        return FakeAnthropic(api_key=KEY).app
    if name == "gemini":
        return FakeGemini(api_key=KEY).app
    return FakeBedrock().app


def _params(name: str, url: str) -> str:
    if name == "native":
        return f'model: openai/gpt-4o, api_base: "{url}/v1", api_key: "{KEY}"'
    if name == "chat":
        return f'model: deepseek/deepseek-chat, api_base: "{url}/v1", api_key: "{KEY}"'
    if name == "anthropic":
        return f'model: anthropic/claude-sonnet-4-5, api_base: "{url}", api_key: "{KEY}"'
    if name == "gemini":
        return f'model: gemini/gemini-2.5-flash, api_base: "{url}", api_key: "{KEY}"'
    return (f'model: "bedrock/anthropic.claude-sonnet-4-20250514-v1:0", api_base: "{url}", '
            f'aws_access_key_id: {ACCESS_KEY}, aws_secret_access_key: "{SECRET_KEY}", aws_region_name: us-east-1')


def models_for(name: str, url: str) -> str:
    """`<name>` (generous timeouts), `<name>-short` (SHORT ones), `<name>-refused` (nothing listens)."""
    closed = f"http://127.0.0.1:{free_port()}"
    return f"""
  - model_name: {name}
    litellm_params: {{{_params(name, url)}, timeout: 15, stream_timeout: 15}}
  - model_name: {name}-short
    litellm_params: {{{_params(name, url)}, timeout: {SHORT}, stream_timeout: {SHORT}}}
  - model_name: {name}-refused
    litellm_params: {{{_params(name, closed)}, timeout: 5, stream_timeout: 5}}
"""


@pytest.fixture(scope="module")
def paths() -> Iterator[dict[str, ProviderPath]]:
    """Every provider's fake, once per module, each behind its own FaultyUpstream."""
    with ExitStack() as stack:
        found = {}
        for name in PROVIDERS:
            server = stack.enter_context(ServerThread(_fake_app(name)))
            found[name] = ProviderPath(name, stack.enter_context(FaultyUpstream(server.url)))
        yield found


@pytest.fixture(scope="module", params=PROVIDERS)
def site(request: pytest.FixtureRequest, paths: dict[str, ProviderPath],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProviderPath, WatchedProxy]]:
    """One proxy per provider, shared by that provider's tests (pytest groups them): when it stops, after
    every fault below, no task may be left and no upstream connection open."""
    p = paths[request.param]
    server = WatchedProxy("model_list:" + models_for(p.name, p.upstream.url), tmp_path_factory.mktemp(p.name))
    yield p, server
    server.stop()


@pytest.fixture
def path(site: tuple[ProviderPath, WatchedProxy]) -> Iterator[ProviderPath]:
    p = site[0]
    assert p.upstream.pending() == 0
    p.upstream.exchanges.clear()
    yield p
    # Every upstream connection this test opened was closed by the gateway or ended by the fault.
    for ex in p.upstream.exchanges:
        assert ex.done.wait(CLIENT_TIMEOUT), f"an upstream connection was left open: {ex}"
    leftover = p.upstream.pending()
    p.upstream._faults.clear()
    assert leftover == 0, "a scripted fault was never reached"


@pytest.fixture
def proxy(site: tuple[ProviderPath, WatchedProxy]) -> WatchedProxy:
    return site[1]


# ---------------------------------------------------------------- the client side


def post_json(proxy: WatchedProxy, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/responses", headers=AUTH, timeout=CLIENT_TIMEOUT,
                      json={"model": model, "input": TEXT, "max_output_tokens": 200, **extra})


@dataclass
class Streamed:
    status: int
    headers: httpx.Headers
    body: bytes

    def events(self) -> list[dict[str, Any]]:
        assert self.status == 200, self.body
        assert self.body.endswith(b"\n\n"), f"the stream was cut off: {self.body[-200:]!r}"
        return parse_sse(self.body.decode())


def post_stream(proxy: WatchedProxy, model: str, **extra: Any) -> Streamed:
    with httpx.Client(timeout=CLIENT_TIMEOUT) as h, h.stream(
            "POST", proxy.url + "/v1/responses", headers=AUTH,
            json={"model": model, "input": TEXT, "max_output_tokens": 200, "stream": True, **extra}) as r:
        return Streamed(r.status_code, r.headers, r.read())


def assert_error(r: httpx.Response | Streamed, status: int, code: str | None = None) -> dict[str, Any]:
    raw = r.content if isinstance(r, httpx.Response) else r.body
    assert r.status_code == status if isinstance(r, httpx.Response) else r.status == status, raw
    body = orjson.loads(raw)
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    assert KEY not in raw.decode() and MASTER_KEY not in raw.decode() and SECRET_KEY not in raw.decode()
    err: dict[str, Any] = body["error"]
    return err


def stored(proxy: WatchedProxy, rid: str) -> dict[str, Any]:
    r = httpx.get(f"{proxy.url}/v1/responses/{rid}", headers=AUTH, timeout=CLIENT_TIMEOUT)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_failed_stream(proxy: WatchedProxy, s: Streamed, code: str | None = None) -> dict[str, Any]:
    """A whole, valid stream that ends in response.failed; the stored response is that final one."""
    events = s.events()
    final = check_stream(events)
    assert events[-1]["type"] == "response.failed" and final["status"] == "failed", events[-1]
    assert final["error"]["message"], final
    if code is not None:
        assert final["error"]["code"] == code, final["error"]
    assert stored(proxy, final["id"]) == final
    assert KEY not in s.body.decode()
    return final


def assert_failed_before_or_after_the_first_event(proxy: WatchedProxy, s: Streamed, status: int, code: str) -> None:
    """Where the failure lands depends on how the bytes were split into reads (a binary event stream is
    decoded a read at a time): an HTTP error before the first event, or response.failed after it."""
    if s.status == 200:
        assert_failed_stream(proxy, s, code)
    else:
        assert_error(s, status, code)


def assert_all_hung_up(path: ProviderPath) -> None:
    """The gateway, not the fake, ended every upstream connection (its close may land just after the
    client's answer, so each is awaited, bounded)."""
    for ex in path.exchanges():
        assert ex.client_left.wait(CLIENT_TIMEOUT), f"the upstream connection was not closed: {ex.fault}"


def assert_completed(r: httpx.Response | Streamed) -> dict[str, Any]:
    if isinstance(r, httpx.Response):
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
    else:
        body = check_stream(r.events())
    assert body["status"] == "completed", body
    assert body["output"], body
    return body


# ---------------------------------------------------------------- status answers


@pytest.mark.parametrize("code", [500, 503])
def test_upstream_5xx_is_relayed_before_the_first_event(proxy: WatchedProxy, path: ProviderPath, code: int) -> None:
    path.upstream.push(f.status(code), f.status(code))
    assert_error(post_json(proxy, path.name), code)
    assert_error(post_stream(proxy, path.name), code)


def rate_limited(name: str) -> f.Fault:
    """A 429 in the provider's own error shape, with Retry-After."""
    if name == "anthropic":
        raw = b'{"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down."}}'
    elif name == "gemini":
        raw = b'{"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"}}'
    elif name == "bedrock":
        return f.status(429, b'{"message": "Too many requests."}', retry_after="7",
                        headers=(("x-amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/"),))
    else:
        raw = b'{"error": {"message": "Slow down.", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}'
    return f.status(429, raw, retry_after="7")


def test_upstream_429_is_relayed_with_its_retry_after(proxy: WatchedProxy, path: ProviderPath) -> None:
    path.upstream.push(rate_limited(path.name), rate_limited(path.name))
    r = post_json(proxy, path.name)
    assert_error(r, 429)
    assert r.headers.get("retry-after") == "7"
    s = post_stream(proxy, path.name)
    assert_error(s, 429)
    assert s.headers.get("retry-after") == "7"


# ---------------------------------------------------------------- transport failures


def test_an_upstream_that_never_answers_is_a_504(proxy: WatchedProxy, path: ProviderPath) -> None:
    path.upstream.push(f.hang(), f.hang())
    assert_error(post_json(proxy, f"{path.name}-short"), 504)
    assert_error(post_stream(proxy, f"{path.name}-short"), 504)
    assert_all_hung_up(path)


def test_a_reset_or_refused_connection_is_a_502(proxy: WatchedProxy, path: ProviderPath) -> None:
    path.upstream.push(f.reset(), f.reset())
    assert_error(post_json(proxy, path.name), 502)
    assert_error(post_stream(proxy, path.name), 502)
    assert_error(post_json(proxy, f"{path.name}-refused"), 502)
    assert_error(post_stream(proxy, f"{path.name}-refused"), 502)


def test_a_body_cut_short_is_a_502(proxy: WatchedProxy, path: ProviderPath) -> None:
    """JSON: the connection closes halfway through the body; stream: inside the first event."""
    path.upstream.push(f.cut(0), f.cut(0))
    assert_error(post_json(proxy, path.name), 502)
    assert_failed_before_or_after_the_first_event(proxy, post_stream(proxy, path.name), 502, "bad_gateway")


def test_a_stream_dropped_midway_ends_in_response_failed(proxy: WatchedProxy, path: ProviderPath) -> None:
    path.upstream.push(f.cut(3))
    final = assert_failed_stream(proxy, post_stream(proxy, path.name))
    assert final["error"]["code"] == "bad_gateway"


def test_a_stream_that_ends_cleanly_but_early_ends_in_response_failed(proxy: WatchedProxy, path: ProviderPath) -> None:
    """The body ends properly (the last chunk, or a close) but before the provider said it was done: the
    answer is cut off, never `completed`."""
    path.upstream.push(f.end(3))
    assert_failed_stream(proxy, post_stream(proxy, path.name))


def test_a_stalled_upstream_ends_by_the_stream_timeout(proxy: WatchedProxy, path: ProviderPath) -> None:
    """Silence after some events: response.failed once the stream timeout passes; a JSON body that stalls
    halfway is a 504; silence before the first event is a 504."""
    path.upstream.push(f.stall(3), f.stall(0), f.stall(0))
    # (On a loaded machine the first events may themselves come later than SHORT: a 504 then.)
    assert_failed_before_or_after_the_first_event(proxy, post_stream(proxy, f"{path.name}-short"), 504,
                                                  "upstream_timeout")
    assert_error(post_json(proxy, f"{path.name}-short"), 504)
    assert_error(post_stream(proxy, f"{path.name}-short"), 504)
    assert_all_hung_up(path)


def test_a_trickle_that_never_finishes_an_event_is_bounded_by_the_stream_timeout(
        proxy: WatchedProxy, path: ProviderPath) -> None:
    """Bytes keep coming (each well within the timeout) but no event ever completes."""
    path.upstream.push(f.trickle(3, pause=SHORT / 5))
    assert_failed_before_or_after_the_first_event(proxy, post_stream(proxy, f"{path.name}-short"), 504,
                                                  "upstream_timeout")
    assert_all_hung_up(path)


def test_a_slow_drip_in_tiny_pieces_still_completes(proxy: WatchedProxy, path: ProviderPath) -> None:
    """Every byte boundary is a possible split: the answer must come out whole, as without the drip."""
    plain_json = assert_completed(post_json(proxy, path.name))
    plain_stream = assert_completed(post_stream(proxy, path.name))
    path.upstream.push(f.drip(piece=3), f.drip(piece=3))
    dripped_json = assert_completed(post_json(proxy, path.name))
    dripped_stream = assert_completed(post_stream(proxy, path.name))
    assert texts(dripped_json) == texts(plain_json) and texts(dripped_json)
    assert texts(dripped_stream) == texts(plain_stream) and texts(dripped_stream)


def texts(response: dict[str, Any]) -> list[str]:
    return [part.get("text", "") for item in response["output"] if item["type"] == "message"
            for part in item["content"]]


# ---------------------------------------------------------------- answers that are not what they claim


MALFORMED_JSON = [
    (b'{"id": "resp_1", "output": [', "application/json"),  # truncated
    (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    (b"", "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b'"just a string"', "application/json"),
]


@pytest.mark.parametrize(("raw", "content_type"), MALFORMED_JSON)
def test_a_malformed_json_answer_is_a_502(proxy: WatchedProxy, path: ProviderPath, raw: bytes,
                                          content_type: str) -> None:
    path.upstream.push(f.body(raw, content_type=content_type))
    assert_error(post_json(proxy, path.name), 502)


def test_a_json_object_of_the_wrong_shape_is_a_502(proxy: WatchedProxy, path: ProviderPath) -> None:
    """Valid JSON, but not the provider's answer: never a 500."""
    wrong = {
        "native": b'{"id": 5, "output": "none"}',
        "chat": b'{"id": "x", "choices": "none"}',
        "anthropic": b'{"type": "message", "content": "none"}',
        "gemini": b'{"candidates": "none"}',
        "bedrock": b'{"output": "none"}',
    }[path.name]
    path.upstream.push(f.body(wrong))
    r = post_json(proxy, path.name)
    assert r.status_code != 500, r.text
    if path.name != "native":  # passthrough relays the upstream's JSON object as it came
        assert_error(r, 502)


def _garbage(name: str, kind: str) -> list[bytes]:
    if name == "bedrock":
        if kind == "not json":
            return [encode_frame({":message-type": "event", ":event-type": "contentBlockDelta",
                                  ":content-type": "application/json"}, b"{not json")]
        if kind == "corrupt":
            frame = bytearray(event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}))
            frame[-1] ^= 0xFF  # the message CRC no longer matches
            return [bytes(frame)]
        return [event_frame("contentBlockDelta", {"contentBlockIndex": "zero", "delta": 5})]
    if kind == "not json":
        return [b"data: {not json at all\n\n"]
    if kind == "corrupt":
        return [b"data: \xff\xfe\x00\x01\n\n"]
    # valid JSON that is no event of this provider
    return {
        "native": [b"data: [1, 2, 3]\n\n"],
        "chat": [b'data: {"id": "x", "choices": "none"}\n\n'],
        "anthropic": [b'event: content_block_delta\n'
                      b'data: {"type": "content_block_delta", "index": "x", "delta": 5}\n\n'],
        "gemini": [b'data: {"candidates": "none"}\n\n'],
    }[name]


@pytest.mark.parametrize("kind", ["not json", "corrupt", "wrong shape"])
def test_garbage_midstream_ends_in_response_failed(proxy: WatchedProxy, path: ProviderPath, kind: str) -> None:
    path.upstream.push(f.garbage(3, _garbage(path.name, kind)))
    assert_failed_before_or_after_the_first_event(proxy, post_stream(proxy, path.name), 502, "bad_gateway")


def test_a_json_answer_to_a_stream_request(proxy: WatchedProxy, path: ProviderPath) -> None:
    """The upstream ignores `stream` and answers 200 with a JSON error-looking body: no events at all."""
    path.upstream.push(f.body(b'{"unexpected": true}'))
    s = post_stream(proxy, path.name)
    if s.status == 200:
        assert_failed_stream(proxy, s)
    else:
        assert_error(s, 502)


# ---------------------------------------------------------------- the client leaves


def test_a_client_leaving_midstream_cancels_the_upstream_call(proxy: WatchedProxy, path: ProviderPath) -> None:
    """The upstream stalls after a few events; the client reads one event and leaves. The gateway closes
    the upstream connection and stores what it had."""
    path.upstream.push(f.stall(4))
    seen = b""
    with httpx.Client(timeout=CLIENT_TIMEOUT) as h, h.stream(
            "POST", proxy.url + "/v1/responses", headers=AUTH,
            json={"model": path.name, "input": TEXT, "stream": True}) as r:
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            seen += chunk
            if b"\n\n" in seen:
                break
    rid = parse_sse(seen[: seen.index(b"\n\n") + 2].decode())[0]["response"]["id"]
    assert path.exchanges()[-1].client_left.wait(CLIENT_TIMEOUT), "the upstream call outlived its client"
    got = stored(proxy, rid)
    if path.name == "native":  # the upstream holds the response: GET asks it, and it finished there
        assert got["status"] in ("in_progress", "completed"), got["status"]
    else:
        assert got["status"] == "incomplete", got["status"]


@pytest.mark.parametrize("site", [p for p in PROVIDERS if p != "native"], indirect=True)  # native: upstream's own
def test_a_background_stream_keeps_its_upstream_call_when_the_client_leaves(
        proxy: WatchedProxy, path: ProviderPath) -> None:
    path.upstream.push(f.drip(piece=16, pause=0.001))
    with httpx.Client(timeout=CLIENT_TIMEOUT) as h, h.stream(
            "POST", proxy.url + "/v1/responses", headers=AUTH,
            json={"model": path.name, "input": TEXT, "stream": True, "background": True}) as r:
        first = next(line for line in r.iter_lines() if line.startswith("data:"))
    rid = orjson.loads(first[5:])["response"]["id"]
    exchange = path.exchanges()[-1]
    assert exchange.done.wait(CLIENT_TIMEOUT)
    assert not exchange.client_left.is_set(), "leaving a background stream cancelled its upstream call"
    # The run stores its final state just after the upstream's last byte: poll (bounded) until it has.
    deadline = time.monotonic() + CLIENT_TIMEOUT
    while (got := stored(proxy, rid))["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got["status"] == "completed", got
