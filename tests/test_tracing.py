"""OpenTelemetry spans (observe/tracing.py) with the GenAI semantic conventions, seen by an in-memory
exporter: on hand-made calls, and through the proxy."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conftest import MASTER_KEY, MOCK_MODELS
from fakes.server import ServerThread
from respgate.calls import Call, Principal
from respgate.config import Config, load_config
from respgate.deployments import Deployment
from respgate.errors import ConfigError, RateLimitError
from respgate.observe import Observability, build
from respgate.observe.tracing import make_exporter
from respgate.proxy.app import Proxy

OTEL = "litellm_settings:\n  callbacks: [otel]\ncallback_settings:\n  otel:\n    exporter: memory\n"


def traced(tmp_path: Path, text: str = OTEL) -> Observability:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    obs = build(load_config(str(path)))
    assert obs is not None and obs.tracing is not None
    return obs


def exporter_of(obs: Observability) -> InMemorySpanExporter:
    assert obs.tracing is not None and isinstance(obs.tracing.exporter, InMemorySpanExporter)
    return obs.tracing.exporter


async def test_a_span_per_call_with_genai_attributes_and_the_calls_own_times(tmp_path: Path) -> None:
    obs = traced(tmp_path)
    call = Call(Principal(), {"model": "group-a", "input": "hi", "temperature": 0.4, "max_output_tokens": 64,
                              "top_p": 0.9})
    await obs.pre_call(call)
    call.deployment = Deployment("group-a", "anthropic", "claude-test")
    call.response = {"id": "resp_abc", "model": "group-a", "status": "completed",
                     "output": [{"type": "message", "content": []}],
                     "usage": {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10,
                               "input_tokens_details": {"cached_tokens": 2}}}
    call.response_id = "resp_abc"
    call.cost = 0.002
    call.ended = call.started + 1.5
    await obs.post_call(call)
    (span,) = exporter_of(obs).get_finished_spans()
    await obs.close()
    assert span.name == "chat group-a" and span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "anthropic" and attrs["gen_ai.system"] == "anthropic"
    assert attrs["gen_ai.request.model"] == "group-a" and attrs["gen_ai.response.model"] == "group-a"
    assert attrs["gen_ai.response.id"] == "resp_abc"
    assert attrs["gen_ai.request.temperature"] == 0.4 and attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.usage.input_tokens"] == 7 and attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["respgate.request_id"] == call.request_id
    assert span.start_time == int(call.started_at * 1e9)
    assert span.end_time is not None and span.end_time - span.start_time == pytest.approx(1.5e9, abs=2)
    assert span.status.status_code is StatusCode.UNSET
    assert span.resource.attributes["service.name"] == "respgate"


async def test_a_refused_call_still_gets_a_span_with_the_error(tmp_path: Path) -> None:
    obs = traced(tmp_path)
    call = Call(Principal(), {"model": "group-a", "input": "hi"}, stream=True)
    call.error = RateLimitError("Budget exceeded")  # refused by an earlier hook: no pre_call here
    call.ended = call.started + 0.01
    await obs.post_call(call)
    (span,) = exporter_of(obs).get_finished_spans()
    await obs.close()
    assert span.attributes is not None and span.attributes["error.type"] == "RateLimitError"
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "Budget exceeded"


def test_the_global_tracer_provider_is_left_alone(tmp_path: Path) -> None:
    before = trace.get_tracer_provider()
    obs = traced(tmp_path)
    assert trace.get_tracer_provider() is before
    assert obs.tracing is not None and obs.tracing.provider is not before
    obs.tracing.shutdown()


def test_exporters_from_settings_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER", "memory")
    assert isinstance(make_exporter(None)[0], InMemorySpanExporter)
    monkeypatch.delenv("OTEL_EXPORTER")
    exporter, batch = make_exporter(None)
    assert type(exporter).__name__ == "ConsoleSpanExporter" and batch
    with pytest.raises(ConfigError, match="unknown exporter"):
        make_exporter({"exporter": "zipkin"})
    if importlib.util.find_spec("opentelemetry.exporter") is None:  # not installed here: a clear start-up error
        with pytest.raises(ConfigError, match="not installed"):
            make_exporter({"exporter": "otlp_http"})


def test_no_otel_callback_no_tracing() -> None:
    assert build(Config.empty()) is None


def test_spans_through_the_proxy(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(MOCK_MODELS + OTEL + f"general_settings:\n  master_key: {MASTER_KEY}\n"
                    f"  database_url: sqlite:///{tmp_path}/db.sqlite\n")
    proxy = Proxy(load_config(str(path)))
    server = ServerThread(proxy.app).start()
    try:
        with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
            created = client.responses.create(model="mock/echo", input="trace me", max_output_tokens=50)
            with client.responses.stream(model="mock/echo", input="and me") as stream:
                for _ in stream:
                    pass
                streamed = stream.get_final_response()
    finally:
        server.stop()
    observe = proxy.gateway.platform.observe
    assert observe is not None
    spans: Any = exporter_of(observe).get_finished_spans()
    by_id = {s.attributes["gen_ai.response.id"]: s for s in spans}
    assert set(by_id) == {created.id, streamed.id}
    span = by_id[created.id]
    assert span.attributes["gen_ai.provider.name"] == "mock"
    assert span.attributes["gen_ai.request.max_tokens"] == 50
    assert span.attributes["gen_ai.usage.output_tokens"] == created.usage.output_tokens  # type: ignore[union-attr]
    assert [e.name for e in by_id[streamed.id].events] == ["gen_ai.first_event"]
