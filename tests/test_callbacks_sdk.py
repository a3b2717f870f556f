"""Callbacks from the SDK: LiteLLM's module lists (`respgate.callbacks`, `respgate.success_callback`,
`respgate.failure_callback`), read at each call, hear SDK calls as the proxy's callbacks hear requests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import respgate
from respgate.observe.callbacks import CustomLogger


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "callbacks did not run in time"
        time.sleep(0.005)


class Handler(CustomLogger):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.events.append(("success", response_obj["id"]))

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.events.append(("failure", response_obj["id"]))

    async def async_log_stream_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.events.append(("stream", response_obj["type"]))


@pytest.fixture
def lists(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("callbacks", "success_callback", "failure_callback"):
        monkeypatch.setattr(respgate, name, [])
    yield


def test_module_lists_hear_sdk_calls(lists: None) -> None:
    handler = Handler()
    plain: list[str] = []
    client = respgate.Client()
    try:
        first = client.responses(model="mock/echo", input="before any callback")
        respgate.callbacks.append(handler)
        respgate.success_callback.append(lambda kwargs, response, start, end: plain.append(response["id"]))
        second = client.responses(model="mock/echo", input="hello")
        failed = client.responses(model="mock/fail", input="hello")
        stream = client.responses(model="mock/echo", input="streamed", stream=True)
        for _ in stream:
            pass
        wait_for(lambda: len(plain) == 2)
    finally:
        client.close()
    assert first.id not in plain and plain[0] == second.id
    assert handler.events[:2] == [("success", second.id), ("failure", failed.id)]
    kinds = [kind for kind, _ in handler.events]
    assert kinds.count("stream") >= 3 and kinds[-1] == "success"
