"""Callbacks end to end: a LiteLLM-style `custom_callbacks.py` beside the proxy's config hears real
requests (success, failure, stream events), and the built-in `jsonl` writes one line per request."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

from conftest import MASTER_KEY, MOCK_MODELS
from fakes.server import ServerThread
from respgate.config import load_config
from respgate.proxy.app import Proxy

HANDLER = '''
from respgate.observe.callbacks import CustomLogger


class Handler(CustomLogger):
    def __init__(self):
        self.events = []

    async def async_log_pre_api_call(self, model, messages, kwargs):
        self.events.append(("pre", kwargs["litellm_call_id"], model))

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        std = kwargs["standard_logging_object"]
        self.events.append(("success", kwargs["litellm_call_id"], response_obj["id"], std["usage"]["total_tokens"]))

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        error = kwargs["standard_logging_object"]["error"]
        self.events.append(("failure", kwargs["litellm_call_id"], error["type"], error["status"]))

    async def async_log_stream_event(self, kwargs, response_obj, start_time, end_time):
        self.events.append(("stream", kwargs["litellm_call_id"], response_obj["type"]))


proxy_handler_instance = Handler()
'''


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Callbacks run after the response: poll until they have."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "callbacks did not run in time"
        time.sleep(0.005)


@pytest.fixture
def serve(tmp_path: Path) -> Any:
    servers: list[ServerThread] = []

    def start(extra: str) -> tuple[Proxy, ServerThread]:
        (tmp_path / "custom_callbacks.py").write_text(HANDLER)
        path = tmp_path / "config.yaml"
        path.write_text(MOCK_MODELS + extra + f"general_settings:\n  master_key: {MASTER_KEY}\n"
                        f"  database_url: sqlite:///{tmp_path}/db.sqlite\n")
        proxy = Proxy(load_config(str(path)))
        server = ServerThread(proxy.app).start()
        servers.append(server)
        return proxy, server

    yield start
    for s in servers:
        s.stop()


def test_a_custom_logger_beside_the_config_hears_every_request(serve: Any) -> None:
    proxy, server = serve("litellm_settings:\n  callbacks: custom_callbacks.proxy_handler_instance\n")
    observe = proxy.gateway.platform.observe
    assert observe is not None
    (handler,) = [h.target for h in observe.callbacks().handlers]
    with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
        ok = client.responses.with_raw_response.create(model="mock/echo", input="one two")
        ok_id = ok.headers["x-request-id"]
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="mock/unknown", input="x", extra_headers={"x-request-id": "req-missing"})
        with client.responses.stream(model="mock/echo", input="three", extra_headers={"x-request-id": "req-s"}) as s:
            for _ in s:
                pass
            streamed = s.get_final_response()
    wait_for(lambda: len([e for e in handler.events if e[0] in ("success", "failure")]) == 3)
    by_request: dict[str, list[tuple[Any, ...]]] = {}
    for e in handler.events:
        by_request.setdefault(e[1], []).append(e)
    assert by_request[ok_id][0] == ("pre", ok_id, "mock/echo")
    assert by_request[ok_id][1][:3] == ("success", ok_id, ok.parse().id)
    assert by_request["req-missing"][-1] == ("failure", "req-missing", "NotFoundError", 404)
    kinds = [e[0] for e in by_request["req-s"]]
    assert kinds[0] == "pre" and kinds[-1] == "success" and by_request["req-s"][-1][2] == streamed.id
    streamed_types = [e[2] for e in by_request["req-s"] if e[0] == "stream"]
    assert streamed_types[0] == "response.created" and streamed_types[-1] == "response.completed"
    assert "response.output_text.delta" in streamed_types


def test_a_broken_callback_never_breaks_a_request(serve: Any, tmp_path: Path) -> None:
    (tmp_path / "broken_callbacks.py").write_text(
        "def boom(kwargs, response, start, end):\n    raise RuntimeError('callback bug')\n")
    proxy, server = serve("litellm_settings:\n  success_callback: [broken_callbacks.boom]\n")
    with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
        for _ in range(3):
            assert client.responses.create(model="mock/echo", input="still fine").output_text == "still fine"
    observe = proxy.gateway.platform.observe
    assert observe is not None
    wait_for(lambda: observe.dispatcher.failed == 3)


def test_jsonl_has_a_line_per_request_with_its_request_id(serve: Any, tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    _, server = serve(f"litellm_settings:\n  callbacks: [jsonl, langfuse]\ncallback_settings:\n"
                      f"  jsonl:\n    path: {path}\n")
    ids = []
    for i, model in enumerate(["mock/echo", "mock/fail", "mock/echo"]):
        r = httpx.post(server.url + "/v1/responses", timeout=10, json={"model": model, "input": f"n{i}"},
                       headers={"Authorization": f"Bearer {MASTER_KEY}", "x-request-id": f"jsonl-{i}"})
        ids.append(r.headers["x-request-id"])
    wait_for(lambda: path.exists() and len(path.read_bytes().splitlines()) == 3)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert sorted(r["request_id"] for r in lines) == sorted(ids) == ["jsonl-0", "jsonl-1", "jsonl-2"]
    by_id = {r["request_id"]: r for r in lines}
    assert by_id["jsonl-0"]["status"] == "completed" and by_id["jsonl-0"]["provider"] == "mock"
    assert by_id["jsonl-1"]["status"] in ("failed", "error") and by_id["jsonl-1"]["error"] is not None
    assert MASTER_KEY not in path.read_text()
