"""Callbacks, Prometheus metrics, OpenTelemetry traces and request ids in logs: the `observe` part.

`Observability` is a call hook (see calls.py). What it does is chosen by LiteLLM's switches:
`litellm_settings.callbacks` / `success_callback` / `failure_callback` list user callbacks
(`"module.attr"`, see callbacks.py) and built-in names — `prometheus` (metrics at `/metrics`),
`otel` (traces), `jsonl` (a JSON line per call). In the SDK the module lists `respgate.callbacks`,
`respgate.success_callback`, `respgate.failure_callback` are read at each call as well.

On the request path it only counts (metrics), opens/closes a span, and queues a job for the callback
worker (dispatch.py); user code never runs there. Nothing configured: `build` returns None and the
gateway pays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, Final

from ..calls import Call
from ..config import Config
from ..events import Event as StreamEvent
from .callbacks import CallbackSet, CustomLogger
from .dispatch import Dispatcher, Job
from .logs import bind_request_id
from .metrics import MULTIPROCESS_ENV, Metrics
from .payload import is_failure
from .plan import LIST_EVENTS, Plan, Resolver, config_lists
from .tracing import Tracing, make_exporter

__all__ = ["CustomLogger", "Observability", "build"]

log = logging.getLogger("respgate.observe")

MULTIPROCESS_FLUSH_SECONDS: Final = 1.0


class Observability:
    """The observe hook. `metrics`, `tracing`: None when off. `flush()` waits for queued callbacks."""

    def __init__(self, resolver: Resolver, plan: Plan, *, sdk: bool = False) -> None:
        self._resolver = resolver
        self._sdk = sdk
        self._config_set = CallbackSet(plan.handlers)
        # No callbacks now or later: the proxy's config has none (only the SDK's lists can change).
        self._no_callbacks = not sdk and not self._config_set
        self.metrics: Metrics | None = Metrics() if plan.metrics else None
        self.tracing: Tracing | None = self._new_tracing() if plan.tracing else None
        self.dispatcher = Dispatcher()
        self._sdk_key: tuple[int, ...] | None = None
        self._sdk_set = self._config_set
        self._sdk_refs: list[list[Any]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.dispatcher.start()
        if self.metrics is not None and os.environ.get(MULTIPROCESS_ENV):
            self._flusher = asyncio.get_running_loop().create_task(self._flush_metrics(), name="respgate-metrics")

    async def _flush_metrics(self) -> None:
        """With several workers each one's counts must reach the shared files without waiting for a
        scrape that this worker answers."""
        while True:
            await asyncio.sleep(MULTIPROCESS_FLUSH_SECONDS)
            if self.metrics is not None:
                self.metrics.flush()

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self.metrics is not None:
            self.metrics.flush()
        await self.dispatcher.close()
        if self._resolver.jsonl is not None:
            self._resolver.jsonl.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)

    @property
    def wants_pre_call(self) -> bool:
        """Before the work there is only a span to start, pre-call callbacks, and (SDK; the proxy has
        done it) the request id to bind to the log context."""
        return self._sdk or self.tracing is not None or bool(self._config_set.pre)

    async def pre_call(self, call: Call) -> None:
        bind_request_id(call.request_id)
        cbs = self.callbacks()
        if self.tracing is not None:
            try:
                self.tracing.start(call)
            except Exception as e:  # observing must never refuse a call
                log.error("tracing failed at pre_call: %s", type(e).__name__, exc_info=e)
        if cbs.pre:
            self.dispatcher.put(Job("pre", call, cbs.pre))

    async def post_call(self, call: Call) -> None:
        self.ended(call)

    def ended(self, call: Call) -> None:
        """post_call, without a coroutine (Hooks calls this one): count, end the span, queue callbacks."""
        if self.metrics is not None:
            try:
                self.metrics.observe(call)
            except Exception as e:
                log.error("metrics failed at post_call: %s", type(e).__name__, exc_info=e)
        if self.tracing is not None:
            try:
                self.tracing.end(call)
            except Exception as e:
                log.error("tracing failed at post_call: %s", type(e).__name__, exc_info=e)
        if self._no_callbacks:
            return
        cbs = self.callbacks()
        failed = is_failure(call)
        handlers = cbs.failure if failed else cbs.success
        if handlers:
            self.dispatcher.put(Job("failure" if failed else "success", call, handlers))

    async def flush(self) -> None:
        """Waits until the callbacks queued so far have run."""
        await self.dispatcher.drain()

    def callbacks(self) -> CallbackSet:
        """The config's callbacks, plus (SDK) what `respgate.callbacks` & co. hold right now."""
        if not self._sdk:
            return self._config_set
        import respgate

        lists = [list(getattr(respgate, name, None) or ()) for name, _ in LIST_EVENTS]
        key = tuple(id(x) for entries in lists for x in (*entries, None))
        if key != self._sdk_key:
            plan = self._resolver.plan(
                [(entries, events, f"respgate.{name}") for entries, (name, events) in zip(lists, LIST_EVENTS,
                                                                                            strict=True)],
                relative=False)
            if plan.tracing and self.tracing is None:
                self.tracing = self._new_tracing()
            if plan.metrics and self.metrics is None:
                self.metrics = Metrics()
            self._sdk_set = self._config_set.merged(CallbackSet(plan.handlers))
            self._sdk_key = key
            self._sdk_refs = lists  # keeps the objects alive, so their ids in the key stay theirs
        return self._sdk_set

    def _new_tracing(self) -> Tracing:
        settings = self._resolver.settings.get("otel") or self._resolver.settings.get("opentelemetry")
        exporter, batch = make_exporter(settings if isinstance(settings, dict) else None)
        return Tracing(exporter, batch=batch)


class StreamingObservability(Observability):
    """The hook when some callback wants each stream event (the gateway calls `stream_event` only on
    hooks that have it, so the plain class keeps streams free of this)."""

    def stream_event(self, call: Call, event: StreamEvent) -> None:
        cbs = self.callbacks()
        if cbs.stream:
            self.dispatcher.put(Job("stream", call, cbs.stream, event=event.obj))


def build(config: Config, *, sdk: bool = False) -> Observability | None:
    """The observe hook for this config; None when it asks for nothing. `sdk=True` (the SDK's
    platform) always builds one, since `respgate.callbacks` may be filled at any time."""
    resolver = Resolver(config)
    plan = resolver.plan(config_lists(config))
    if not plan and not sdk:
        return None
    cls = StreamingObservability if sdk or any(h.stream for h in plan.handlers) else Observability
    return cls(resolver, plan, sdk=sdk)
