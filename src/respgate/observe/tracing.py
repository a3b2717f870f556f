"""OpenTelemetry traces: one span per call, with the GenAI semantic conventions.

The span starts at the call's arrival (`call.started_at`, also when it is only made in post_call
because an earlier hook refused the call) and ends at its end (`call.ended`), so its times are the
client's, not the hooks'. It lives in a TracerProvider of this instance's own (the process-wide
provider is left to the application). Exporter: `callback_settings.otel.exporter` or env
OTEL_EXPORTER — `console`, `memory` (tests: `Tracing.exporter.get_finished_spans()`), or
`otlp_http` / `otlp_grpc` when the opentelemetry OTLP exporter package is installed (endpoint and
headers from `callback_settings.otel.endpoint` / `.headers` or the standard OTEL_EXPORTER_OTLP_* env).
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Final

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ..calls import Call
from ..errors import ConfigError
from .payload import usage_of

SPAN_KEY: Final = "observe.span"
_NS = 1_000_000_000
_OTLP: Final = {
    "otlp_http": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "otlp_grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
}
# respgate provider name -> the GenAI conventions' `gen_ai.provider.name`
_PROVIDER_NAMES: Final = {
    "azure": "azure.ai.openai", "bedrock": "aws.bedrock", "gemini": "gcp.gemini", "vertex_ai": "gcp.vertex_ai",
    "mistral": "mistral_ai", "xai": "x_ai", "watsonx": "ibm.watsonx.ai",
}
_OPERATIONS: Final = {"responses": "chat", "chat.completions": "chat", "responses.compact": "chat",
                      "responses.input_tokens": "count_tokens"}
_INCOMPLETE_REASONS: Final = {"max_output_tokens": "length", "content_filter": "content_filter"}


def make_exporter(settings: dict[str, Any] | None) -> tuple[SpanExporter, bool]:
    """(exporter, batch?) from `callback_settings.otel` / env OTEL_EXPORTER (default console)."""
    settings = settings or {}
    kind = str(settings.get("exporter") or os.environ.get("OTEL_EXPORTER") or "console").lower()
    if kind in ("memory", "in_memory"):
        return InMemorySpanExporter(), False
    if kind == "console":
        return ConsoleSpanExporter(), True
    module_name = _OTLP.get(kind)
    if module_name is None:
        raise ConfigError("callback_settings.otel.exporter",
                          f"unknown exporter {kind!r} (console, memory, otlp_http, otlp_grpc)")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError("callback_settings.otel.exporter",
                          f"{kind} needs the opentelemetry-exporter-otlp package, which is not installed") from None
    options: dict[str, Any] = {}
    endpoint = settings.get("endpoint") or os.environ.get("OTEL_ENDPOINT")
    if endpoint:
        options["endpoint"] = str(endpoint)
    headers = settings.get("headers")
    if isinstance(headers, dict):
        options["headers"] = {str(k): str(v) for k, v in headers.items()}
    exporter: SpanExporter = module.OTLPSpanExporter(**options)
    return exporter, True


class Tracing:
    def __init__(self, exporter: SpanExporter, *, batch: bool = True) -> None:
        self.exporter = exporter
        service = os.environ.get("OTEL_SERVICE_NAME") or "respgate"
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("respgate")

    def start(self, call: Call) -> Span:
        body = call.body if isinstance(call.body, dict) else {}
        operation = _OPERATIONS.get(call.route, "chat")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": call.model,
            "respgate.request_id": call.request_id,
        }
        for attr, names in (("gen_ai.request.temperature", ("temperature",)), ("gen_ai.request.top_p", ("top_p",)),
                            ("gen_ai.request.max_tokens", ("max_output_tokens", "max_completion_tokens",
                                                           "max_tokens"))):
            for name in names:
                value = body.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    attributes[attr] = value
                    break
        if call.stream:
            attributes["gen_ai.request.stream"] = True
        span = self.tracer.start_span(f"{operation} {call.model}".strip(), kind=SpanKind.CLIENT,
                                      attributes=attributes, start_time=int(call.started_at * _NS))
        call.extra[SPAN_KEY] = span
        return span

    def end(self, call: Call) -> None:
        span: Span | None = call.extra.pop(SPAN_KEY, None)
        if span is None:  # refused before this hook's pre_call: the span still covers the whole call
            span = self.start(call)
            call.extra.pop(SPAN_KEY, None)
        start_ns = int(call.started_at * _NS)
        attrs: dict[str, Any] = {}  # one set_attributes: each call takes the span's lock
        d = call.deployment
        if d is not None:
            provider = _PROVIDER_NAMES.get(d.provider, d.provider)
            attrs["gen_ai.provider.name"] = attrs["gen_ai.system"] = provider
            attrs["respgate.deployment.id"] = d.id
        response = call.response
        if response is not None:
            if isinstance(response.get("model"), str):
                attrs["gen_ai.response.model"] = response["model"]
            response_id = call.response_id or response.get("id")
            if isinstance(response_id, str) and response_id:
                attrs["gen_ai.response.id"] = response_id
            attrs["gen_ai.response.finish_reasons"] = [_finish_reason(response)]
        usage = usage_of(call)
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = usage["input_tokens"]
            attrs["gen_ai.usage.output_tokens"] = usage["output_tokens"]
            if usage["cached_tokens"]:
                attrs["gen_ai.usage.cache_read.input_tokens"] = usage["cached_tokens"]
        if call.cost is not None:
            attrs["respgate.cost_usd"] = call.cost
        error_type = _error_type(call)
        if error_type is not None:
            attrs["error.type"] = error_type
        span.set_attributes(attrs)
        if error_type is not None:
            span.set_status(Status(StatusCode.ERROR, call.error.message if call.error is not None else None))
        if call.first_event is not None:
            span.add_event("gen_ai.first_event",
                           timestamp=start_ns + int((call.first_event - call.started) * _NS))
        ended = call.ended if call.ended is not None else call.started
        span.end(end_time=start_ns + int(max(0.0, ended - call.started) * _NS))

    def shutdown(self) -> None:
        self.provider.shutdown()


def _finish_reason(response: dict[str, Any]) -> str:
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details") or {}
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE_REASONS.get(str(reason), str(reason or "incomplete"))
    if status in ("failed", "cancelled"):
        return "error" if status == "failed" else "cancelled"
    output = response.get("output") or []
    if any(isinstance(item, dict) and item.get("type") == "function_call" for item in output):
        return "tool_calls"
    return "stop"


def _error_type(call: Call) -> str | None:
    if call.error is not None:
        return type(call.error).__name__
    if call.status == "failed":
        err = (call.response or {}).get("error")
        code = err.get("code") if isinstance(err, dict) else None
        return str(code or "failed")
    return None
