"""What a request may cost before the gateway sees it, and CORS: request heads that are too big, too
many fields or too slow (the real `respgate serve`), bodies that arrive too slowly, upstreams that do not
answer in time — each ends with an answer and a released connection, never a hung one — and CORS off
unless origins are configured."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import MASTER_KEY, MOCK_MODELS, ProxyFactory
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from procs import ProxyProcess, ProxyProcesses
from respgate.config import load_config
from respgate.errors import ConfigError
from respgate.proxy.server import uvicorn_limits
from respgate.security.limits import Deadlines, ServerLimits
from sse import parse_sse

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
WAIT = 10.0  # the most any answer below may take; they come in well under a second


def exchange(url: str, head: bytes, body: bytes = b"", *, then_wait: bool = True) -> tuple[bytes, bool]:
    """Sends raw bytes and reads until the server closes the connection (or WAIT passes): what it
    answered, and whether it closed the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as s:
        s.sendall(head + body)
        received = b""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return received, True
            except TimeoutError:
                break
            if not chunk:
                return received, True
            received += chunk
        return received, False


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# -- the request head: the real server (`respgate serve` runs the guarded protocol) --------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    path = tmp_path_factory.mktemp("limits") / "config.yaml"
    path.write_text(MOCK_MODELS + f"""
general_settings:
  master_key: {MASTER_KEY}
  database_url: sqlite:///{path.parent / "store.db"}
  max_request_header_bytes: 8192
  max_request_headers: 30
  request_header_timeout: 0.5
  request_body_timeout: 0.5
  keep_alive_timeout: 5
""")
    with ProxyProcesses() as procs:
        yield procs.spawn(path)


@pytest.mark.slow
def test_a_huge_header_is_431_and_the_connection_closes(served: ProxyProcess) -> None:
    r = httpx.post(served.url + "/v1/responses", headers={**AUTH, "x-big": "a" * 20_000},
                   json={"model": "mock/echo", "input": "hi"}, timeout=WAIT)
    assert r.status_code == 431 and r.headers["connection"] == "close"
    big = b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: " + b"b" * 20_000 + b"\r\n\r\n"
    answer, closed = exchange(served.url, big)
    assert status_of(answer) == 431 and closed
    long_url, closed = exchange(served.url, b"GET /" + b"c" * 20_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    assert status_of(long_url) == 431 and closed


@pytest.mark.slow
def test_too_many_header_fields_is_431(served: ProxyProcess) -> None:
    many = {f"x-h{i}": "v" for i in range(40)}
    r = httpx.get(served.url + "/v1/models", headers={**AUTH, **many}, timeout=WAIT)
    assert r.status_code == 431


@pytest.mark.slow
def test_a_slow_or_silent_request_head_is_cut_off(served: ProxyProcess) -> None:
    answer, closed = exchange(served.url, b"POST /v1/responses HTTP/1.1\r\nhost: x\r\n")  # ... and nothing more
    assert status_of(answer) == 408 and closed
    answer, closed = exchange(served.url, b"")  # a connection that never sends a byte
    assert status_of(answer) == 408 and closed


@pytest.mark.slow
def test_a_slow_body_is_cut_off_by_the_server_too(served: ProxyProcess) -> None:
    head = (f"POST /v1/responses HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER_KEY}\r\n"
            "content-type: application/json\r\ncontent-length: 1000\r\n\r\n").encode()
    answer, closed = exchange(served.url, head, b'{"model": "mock/echo", ')
    assert status_of(answer) == 408 and b'"code":"request_timeout"' in answer and closed


@pytest.mark.slow
def test_ordinary_traffic_is_untouched_by_the_limits(served: ProxyProcess) -> None:
    with httpx.Client(headers=AUTH, timeout=WAIT) as c:  # one keep-alive connection, several requests
        for i in range(5):
            r = c.post(served.url + "/v1/responses", json={"model": "mock/echo", "input": f"n{i}"})
            assert r.status_code == 200 and r.json()["output"][0]["content"][0]["text"] == f"n{i}"
        streamed = c.post(served.url + "/v1/responses", json={"model": "mock/echo", "input": "s", "stream": True})
        assert parse_sse(streamed.text)[-1]["type"] == "response.completed"
        assert c.get(served.url + "/v1/models", headers={f"x-h{i}": "v" * 100 for i in range(20)}).status_code == 200
    head = (f"POST /v1/responses HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER_KEY}\r\n"
            "content-type: application/json\r\ncontent-length: 37\r\nconnection: close\r\n\r\n").encode()
    answer, closed = exchange(served.url, head, b'{"model": "mock/echo", "input": "ok"}')
    assert status_of(answer) == 200 and closed


def test_limits_are_read_from_general_settings(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("general_settings:\n  max_request_header_bytes: 4096\n  keep_alive_timeout: 10\n"
                    "  limit_concurrency: 500\n")
    options = uvicorn_limits(load_config(str(path)))
    assert options == {"http": "respgate.security.http:GuardedHttpToolsProtocol", "timeout_keep_alive": 10.0,
                       "limit_concurrency": 500, "h11_max_incomplete_event_size": 4096,
                       "ws_max_size": 20 * 2**20 + 65536}
    assert ServerLimits.from_settings({}) == ServerLimits(32 * 1024, 100, 30.0, 60.0, 75.0, None)
    for key, bad in (("max_request_header_bytes", 10), ("max_request_headers", "many"),
                     ("request_body_timeout", 0), ("request_header_timeout", True), ("limit_concurrency", -1)):
        with pytest.raises(ConfigError) as e:
            ServerLimits.from_settings({key: bad})
        assert e.value.key == f"general_settings.{key}"


async def test_deadlines_fire_in_order_and_not_for_keys_that_left() -> None:
    fired: list[str] = []
    done = asyncio.Event()

    def expire(key: str) -> None:
        fired.append(key)
        if key == "c":
            done.set()

    clock: Deadlines[str] = Deadlines(0.05, expire)
    loop = asyncio.get_running_loop()
    for key in "abc":
        clock.add(key, loop)
    clock.discard("b")
    await asyncio.wait_for(done.wait(), WAIT)
    assert fired == ["a", "c"] and len(clock) == 0
    clock.add("d", loop)
    clock.close()  # no timer left behind
    assert "d" not in clock


# -- the body: the app's own clock (any ASGI server) ---------------------------------------------------

def test_a_slow_body_is_408_and_the_connection_closes(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(general="  request_body_timeout: 0.3\n")
    head = (f"POST /v1/responses HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER_KEY}\r\n"
            "content-type: application/json\r\ncontent-length: 1000\r\n\r\n").encode()
    answer, closed = exchange(proxy.url, head, b'{"model": "mock/echo", "input": "')
    assert status_of(answer) == 408 and closed
    assert b'"code":"request_timeout"' in answer and b"within 0.3 seconds" in answer
    # A Starlette route (chat completions) reads its body under the same clock.
    head = head.replace(b"/v1/responses", b"/v1/chat/completions")
    answer, closed = exchange(proxy.url, head, b'{"model": "mock/echo", ')
    assert status_of(answer) == 408 and closed
    # A body that arrives in pieces, in time, is read as usual.
    body = b'{"model": "mock/echo", "input": "in pieces"}'
    head = (f"POST /v1/responses HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER_KEY}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as s:
        s.sendall(head + body[:10])
        s.sendall(body[10:])
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert status_of(answer) == 200 and b"in pieces" in answer


def test_an_oversized_body_is_413_and_the_connection_closes(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(general="  max_request_body_bytes: 1000\n")
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, content=b"x" * 5000, timeout=WAIT)
    assert r.status_code == 413 and r.headers["connection"] == "close"


# -- the upstream: request_timeout ------------------------------------------------------------------------

@pytest.fixture
def slow_upstream() -> Iterator[tuple[FakeOpenAI, ServerThread]]:
    fake = FakeOpenAI(api_key="sk-up")
    with ServerThread(fake.app) as server:
        yield fake, server


def upstream_connections(server: ServerThread) -> int:
    return len(server._server.server_state.connections)


def test_a_slow_upstream_is_504_and_every_connection_is_released(
        start_proxy: ProxyFactory, slow_upstream: tuple[FakeOpenAI, ServerThread]) -> None:
    fake, upstream = slow_upstream
    proxy = start_proxy(f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{upstream.url}/v1", api_key: sk-up}}
""", general="  request_timeout: 0.5\n")
    with httpx.Client(headers=AUTH, timeout=WAIT) as c:  # would raise ReadTimeout if the proxy hung
        for stream in (False, True):
            fake.delay_next(30)
            r = c.post(proxy.url + "/v1/responses", json={"model": "gpt", "input": "hi", "stream": stream})
            assert r.status_code == 504, r.text
            assert r.json()["error"]["code"] == "upstream_timeout" and "0.5 seconds" in r.json()["error"]["message"]
        # The proxy gave up its upstream connections (the fake saw them close) ...
        deadline = time.monotonic() + WAIT
        while upstream_connections(upstream) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert upstream_connections(upstream) == 0
        # ... and the client's keep-alive connection serves the next request at once.
        assert c.post(proxy.url + "/v1/responses", json={"model": "gpt", "input": "again"}).status_code == 200


# -- CORS ------------------------------------------------------------------------------------------------

ORIGIN = "https://app.example.com"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type"}


def cors_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


def test_cors_is_off_by_default(proxy: ServerThread) -> None:
    for path in ("/v1/responses", "/v1/models", "/v1/chat/completions", "/key/generate"):
        r = httpx.options(proxy.url + path, headers=PREFLIGHT)
        assert r.status_code == 405 and cors_headers(r) == {}, path
    calls: list[httpx.Response] = [
        httpx.post(proxy.url + "/v1/responses", headers={**AUTH, "Origin": ORIGIN},
                   json={"model": "mock/echo", "input": "hi"}),
        httpx.post(proxy.url + "/v1/responses", headers={**AUTH, "Origin": ORIGIN},
                   json={"model": "mock/echo", "input": "hi", "stream": True}),
        httpx.get(proxy.url + "/v1/models", headers={**AUTH, "Origin": ORIGIN}),
        httpx.get(proxy.url + "/v1/models", headers={"Origin": ORIGIN}),  # 401
    ]
    for r in calls:
        assert cors_headers(r) == {}, r.request.url


def test_cors_for_the_configured_origins_only(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(general=f'  allow_origins: ["{ORIGIN}"]\n')
    for path in ("/v1/responses", "/v1/models"):
        r = httpx.options(proxy.url + path, headers=PREFLIGHT)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in r.headers
    fast = httpx.post(proxy.url + "/v1/responses", headers={**AUTH, "Origin": ORIGIN},
                      json={"model": "mock/echo", "input": "hi"})
    assert fast.status_code == 200 and fast.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in fast.headers["access-control-expose-headers"]
    streamed = httpx.post(proxy.url + "/v1/responses", headers={**AUTH, "Origin": ORIGIN},
                          json={"model": "mock/echo", "input": "hi", "stream": True})
    assert streamed.headers["access-control-allow-origin"] == ORIGIN
    evil = {**PREFLIGHT, "Origin": "https://evil.example"}
    refused = httpx.options(proxy.url + "/v1/responses", headers=evil)
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    other = httpx.post(proxy.url + "/v1/responses", headers={**AUTH, "Origin": "https://evil.example"},
                       json={"model": "mock/echo", "input": "hi"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers  # unreadable there


def test_allow_origins_must_be_a_list_of_origins(tmp_path: Path) -> None:
    from respgate.proxy.app import Proxy

    path = tmp_path / "config.yaml"
    path.write_text("general_settings:\n  allow_origins: {a: 1}\n")
    with pytest.raises(ConfigError) as e:
        Proxy(load_config(str(path)))
    assert e.value.key == "general_settings.allow_origins"
