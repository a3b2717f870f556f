"""Callbacks (observe/callbacks.py, dispatch.py, plan.py) on hand-made calls: which method runs for which
event, with which arguments, off the request path, and what a broken callback does (nothing to the call)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

import respgate
from respgate.calls import Call, Principal
from respgate.config import Config, load_config
from respgate.deployments import Deployment
from respgate.errors import ConfigError, RateLimitError
from respgate.events import Event
from respgate.observe import Observability, StreamingObservability, build
from respgate.observe.callbacks import CustomLogger
from respgate.observe.dispatch import Dispatcher, Job

PRINCIPAL = Principal(owner="owner-1", token="0123456789abcdef" * 4, key_alias="alias-1", team_id="team-a",
                      user_id="user-9")
RESPONSE = {"id": "resp_1", "object": "response", "status": "completed", "model": "mock/echo",
            "output": [{"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": "hi", "annotations": []}]}],
            "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5,
                      "input_tokens_details": {"cached_tokens": 1}, "output_tokens_details": {"reasoning_tokens": 0}}}


def config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: mock/echo\n    litellm_params: {model: mock/echo}\n" + text)
    return load_config(str(path))


def finished_call(*, error: Exception | None = None, stream: bool = False, response: dict[str, Any] | None = None,
                  body: dict[str, Any] | None = None) -> Call:
    call = Call(PRINCIPAL, body or {"model": "mock/echo", "input": "hello", "temperature": 0.2,
                                    "metadata": {"tag": "t1"}, "user": "end-user-7"}, stream=stream)
    call.deployment = Deployment("mock/echo", "mock", "echo")
    if error is None:
        call.response = response if response is not None else dict(RESPONSE)
        call.response_id = call.response["id"]
    else:
        call.error = error  # type: ignore[assignment]
    call.cost = 0.0015
    call.ended = call.started + 0.25
    return call


async def run_call(obs: Observability, call: Call, events: list[Event] = ()) -> None:  # type: ignore[assignment]
    await obs.start()
    await obs.pre_call(call)
    for ev in events:
        assert isinstance(obs, StreamingObservability)
        obs.stream_event(call, ev)
    await obs.post_call(call)
    await obs.flush()


class Recorder(CustomLogger):
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.threads: set[int] = set()

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        self.seen.append(("pre", (model, messages, kwargs)))

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.threads.add(threading.get_ident())
        self.seen.append(("success", (kwargs, response_obj, start_time, end_time)))

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.seen.append(("failure", (kwargs, response_obj, start_time, end_time)))


class AsyncRecorder(CustomLogger):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.seen.append("sync-success")  # never: the async twin is defined

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        await asyncio.sleep(0)
        self.seen.append("async-success")

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.seen.append(f"async-failure:{type(kwargs['exception']).__name__}")

    async def async_log_stream_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.seen.append(f"stream:{response_obj['type']}")


def with_callbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str, **objects: Any) -> Config:
    """A config whose `module.attr` callbacks resolve to `objects` (a module written beside the config)."""
    module = tmp_path / "my_callbacks.py"
    module.write_text("HANDLERS = {}\n" + "".join(f"{name} = HANDLERS.get({name!r})\n" for name in objects))
    cfg = config(tmp_path, yaml_text)
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location("my_callbacks", module)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, obj in objects.items():
        setattr(mod, name, obj)
    monkeypatch.setitem(sys.modules, "my_callbacks", mod)
    return cfg


async def test_sync_logger_gets_pre_and_success_in_a_thread_with_litellm_kwargs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder()
    cfg = with_callbacks(tmp_path, monkeypatch, "litellm_settings:\n  callbacks: [my_callbacks.handler]\n",
                         handler=rec)
    obs = build(cfg)
    assert obs is not None and not isinstance(obs, StreamingObservability)
    call = finished_call()
    await run_call(obs, call)
    await obs.close()
    assert [kind for kind, _ in rec.seen] == ["pre", "success"]
    model, messages, pre_kwargs = rec.seen[0][1]
    assert model == "mock/echo" and messages == "hello" and pre_kwargs["litellm_call_id"] == call.request_id
    kwargs, response_obj, start, end = rec.seen[1][1]
    assert response_obj is call.response
    assert isinstance(start, datetime.datetime) and end - start == datetime.timedelta(seconds=0.25)
    assert kwargs["model"] == "mock/echo" and kwargs["response_cost"] == 0.0015
    assert kwargs["optional_params"]["temperature"] == 0.2
    meta = kwargs["litellm_params"]["metadata"]
    assert meta["user_api_key_alias"] == "alias-1" and meta["user_api_key_team_id"] == "team-a"
    assert meta["user_api_key_end_user_id"] == "end-user-7" and meta["requester_metadata"] == {"tag": "t1"}
    std = kwargs["standard_logging_object"]
    assert std["request_id"] == call.request_id and std["status"] == "completed"
    assert std["usage"] == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5, "cached_tokens": 1,
                            "reasoning_tokens": 0}
    assert std["latency_ms"] == 250.0 and std["deployment_id"] == call.deployment.id  # type: ignore[union-attr]
    assert rec.threads and threading.get_ident() not in rec.threads  # user code ran off the event loop


async def test_async_twin_wins_and_failures_carry_the_exception(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    rec = AsyncRecorder()
    cfg = with_callbacks(tmp_path, monkeypatch, "litellm_settings:\n  callbacks: [my_callbacks.handler]\n",
                         handler=rec)
    obs = build(cfg)
    assert isinstance(obs, StreamingObservability)  # it has a stream method
    await run_call(obs, finished_call())
    await run_call(obs, finished_call(error=RateLimitError("slow down")))
    await obs.close()
    assert rec.seen == ["async-success", "async-failure:RateLimitError"]


async def test_functions_hear_only_their_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[str] = []

    def on_success(kwargs: Any, response: Any, start: Any, end: Any) -> None:
        got.append(f"success:{response['id']}")

    async def on_failure(kwargs: Any, response: Any, start: Any, end: Any) -> None:
        got.append(f"failure:{kwargs['standard_logging_object']['error']['type']}")

    cfg = with_callbacks(tmp_path, monkeypatch, "litellm_settings:\n  success_callback: [my_callbacks.ok]\n"
                         "  failure_callback: [my_callbacks.bad]\n", ok=on_success, bad=on_failure)
    obs = build(cfg)
    assert obs is not None
    await run_call(obs, finished_call())
    await run_call(obs, finished_call(error=RateLimitError("slow down")))
    failed = dict(RESPONSE, status="failed", error={"code": "server_error", "message": "boom"})
    await run_call(obs, finished_call(response=failed))
    await obs.close()
    assert got == ["success:resp_1", "failure:RateLimitError", "failure:ResponseFailed"]


async def test_stream_events_arrive_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = AsyncRecorder()
    cfg = with_callbacks(tmp_path, monkeypatch, "litellm_settings:\n  callbacks: [my_callbacks.handler]\n",
                         handler=rec)
    obs = build(cfg)
    assert obs is not None
    events = [Event.of({"type": t, "sequence_number": i}) for i, t in
              enumerate(["response.created", "response.output_text.delta", "response.completed"])]
    await run_call(obs, finished_call(stream=True), events)
    await obs.close()
    assert rec.seen == ["stream:response.created", "stream:response.output_text.delta", "stream:response.completed",
                        "async-success"]


async def test_a_failing_callback_is_logged_and_the_others_still_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    got: list[str] = []

    def broken(kwargs: Any, response: Any, start: Any, end: Any) -> None:
        raise ValueError("callback bug")

    async def broken_async(kwargs: Any, response: Any, start: Any, end: Any) -> None:
        raise KeyError("async bug")

    def fine(kwargs: Any, response: Any, start: Any, end: Any) -> None:
        got.append("fine")

    cfg = with_callbacks(tmp_path, monkeypatch, "litellm_settings:\n  success_callback: [my_callbacks.a, "
                         "my_callbacks.b, my_callbacks.c]\n", a=broken, b=broken_async, c=fine)
    obs = build(cfg)
    assert obs is not None
    with caplog.at_level(logging.WARNING, "respgate.observe"):
        await run_call(obs, finished_call())
        await run_call(obs, finished_call())
    await obs.close()
    assert got == ["fine", "fine"]
    assert obs.dispatcher.failed == 4
    assert sum("failed: ValueError" in r.getMessage() for r in caplog.records) == 2
    assert sum("failed: KeyError" in r.getMessage() for r in caplog.records) == 2


async def test_a_slow_callback_does_not_hold_the_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def slow(kwargs: Any, response: Any, start: Any, end: Any) -> None:
        await release.wait()
        done.append("slow")

    cfg = with_callbacks(tmp_path, monkeypatch, "litellm_settings:\n  success_callback: [my_callbacks.slow]\n",
                         slow=slow)
    obs = build(cfg)
    assert obs is not None
    await obs.start()
    call = finished_call()
    await obs.pre_call(call)
    await asyncio.wait_for(obs.post_call(call), 1)  # returns while the callback waits
    assert done == []
    release.set()
    await obs.flush()
    await obs.close()
    assert done == ["slow"]


def test_module_attr_is_found_beside_the_config_and_classes_are_instantiated(tmp_path: Path) -> None:
    (tmp_path / "custom_callbacks_rg.py").write_text(
        "from respgate.observe.callbacks import CustomLogger\n"
        "class Handler(CustomLogger):\n"
        "    def log_success_event(self, kwargs, response_obj, start_time, end_time):\n"
        "        pass\n"
        "proxy_handler_instance = Handler()\n")
    cfg = config(tmp_path, "litellm_settings:\n  callbacks: [custom_callbacks_rg.proxy_handler_instance,"
                 " custom_callbacks_rg.Handler]\n")
    obs = build(cfg)
    assert obs is not None
    targets = [h.target for h in obs.callbacks().handlers]
    assert len(targets) == 2 and all(type(t).__name__ == "Handler" for t in targets)


@pytest.mark.parametrize(("entry", "message"), [
    ("no_such_module_rg.handler", "cannot import 'no_such_module_rg'"),
    ("respgate.observe.not_there", "has no attribute 'not_there'"),
])
def test_a_bad_callback_path_stops_start_up_naming_the_key(tmp_path: Path, entry: str, message: str) -> None:
    cfg = config(tmp_path, f"litellm_settings:\n  success_callback: [my_ok, {entry}]\n")
    with pytest.raises(ConfigError) as info:
        build(cfg)
    assert "litellm_settings.success_callback[1]" in str(info.value) and message in str(info.value)


def test_unknown_names_are_warned_once_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(tmp_path, "litellm_settings:\n  callbacks: [langfuse_rg_test]\n"
                 "  success_callback: [langfuse_rg_test]\n")
    with caplog.at_level(logging.WARNING, "respgate.observe"):
        assert build(cfg) is None
        assert build(cfg) is None
    assert sum("langfuse_rg_test" in r.getMessage() for r in caplog.records) == 1


def test_nothing_configured_builds_nothing() -> None:
    assert build(Config.empty()) is None
    assert isinstance(build(Config.empty(), sdk=True), StreamingObservability)


async def test_jsonl_writes_one_line_per_call_without_the_key(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "calls.jsonl"
    cfg = config(tmp_path, f"general_settings:\n  master_key: sk-master-secret-123456\n"
                 f"litellm_settings:\n  callbacks: [jsonl]\ncallback_settings:\n  jsonl:\n    path: {path}\n")
    obs = build(cfg)
    assert obs is not None
    ok, bad = finished_call(), finished_call(error=RateLimitError("slow down"))
    await run_call(obs, ok)
    await run_call(obs, bad)
    await obs.close()
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [r["request_id"] for r in lines] == [ok.request_id, bad.request_id]
    assert lines[0]["status"] == "completed" and lines[0]["usage"]["total_tokens"] == 5
    assert lines[0]["key_alias"] == "alias-1" and lines[0]["team_id"] == "team-a" and lines[0]["cost"] == 0.0015
    assert lines[0]["provider"] == "mock" and lines[0]["deployment"] == "mock/echo" and lines[0]["latency_ms"] == 250.0
    assert lines[1]["status"] == "error" and lines[1]["error"]["type"] == "RateLimitError"
    assert lines[1]["error"]["status"] == 429
    assert "sk-master-secret" not in path.read_text()


async def test_jsonl_path_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env.jsonl"
    monkeypatch.setenv("RESPGATE_CALLBACK_LOG", str(path))
    obs = build(config(tmp_path, "litellm_settings:\n  success_callback: file\n"))
    assert obs is not None
    await run_call(obs, finished_call())
    await obs.close()
    assert len(path.read_bytes().splitlines()) == 1


async def test_sdk_lists_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[str] = []
    monkeypatch.setattr(respgate, "callbacks", [])
    monkeypatch.setattr(respgate, "success_callback", [])
    monkeypatch.setattr(respgate, "failure_callback", [])
    obs = build(Config.empty(), sdk=True)
    assert obs is not None
    await run_call(obs, finished_call())  # nothing listed yet

    class Duck:  # not a CustomLogger subclass: the methods are enough
        async def async_log_success_event(self, kwargs: Any, response: Any, start: Any, end: Any) -> None:
            got.append("duck")

    respgate.callbacks.append(Duck())
    respgate.success_callback.append(lambda kwargs, response, start, end: got.append("fn"))
    await run_call(obs, finished_call())
    respgate.callbacks.clear()
    await run_call(obs, finished_call())
    await obs.close()
    assert got == ["duck", "fn", "fn"]


async def test_a_full_queue_drops_instead_of_waiting(caplog: pytest.LogCaptureFixture) -> None:
    d = Dispatcher(max_queue=1)
    d.start()
    with caplog.at_level(logging.WARNING, "respgate.observe"):
        for _ in range(3):  # the worker has not run yet: the 2nd and 3rd do not fit
            d.put(Job("success", finished_call(), ()))
    await d.drain()
    await d.close()
    assert d.dropped == 2 and d.processed == 1
    assert any("dropped" in r.getMessage() for r in caplog.records)
