"""Callbacks off the request path: a bounded queue and one worker task.

The hook only appends a `Job` (no I/O, no user code). The worker takes what has queued up, builds the
callbacks' arguments once per job, awaits the async callbacks in order and runs the sync ones in one
thread hand-off per batch, so a slow or failing callback never delays or breaks a request. A full
queue drops the job (counted, logged now and then) rather than make a request wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..calls import Call
from . import payload
from .callbacks import Event, Handler, Method
from .logs import bind_request_id, reset_request_id

log = logging.getLogger("respgate.observe")

MAX_QUEUE = 10_000
MAX_BATCH = 256
CLOSE_TIMEOUT = 10.0


@dataclass(slots=True)
class Job:
    kind: Event  # "pre" | "success" | "failure" | "stream"
    call: Call
    handlers: tuple[Handler, ...]
    event: dict[str, Any] | None = None  # the stream event
    at: float = field(default_factory=time.perf_counter)


_Invocation = tuple[str, str, Method, tuple[Any, ...]]  # (handler name, request id, method, args)


class Dispatcher:
    def __init__(self, max_queue: int = MAX_QUEUE) -> None:
        self._max = max_queue
        self._queue: asyncio.Queue[Job | None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0
        self.failed = 0
        self._lock = threading.Lock()
        self.processed = 0

    def start(self) -> None:
        if self._worker is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self._max)
        self._worker = self._loop.create_task(self._run(), name="respgate-callbacks")

    def put(self, job: Job) -> None:
        """Never waits: started lazily on the first job, drops when the queue is full."""
        if self._worker is None:
            self.start()
        assert self._queue is not None
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("callback queue full: %d callback job(s) dropped so far", self.dropped)

    async def drain(self) -> None:
        """Waits until every job queued so far has run (tests; shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        if self._worker is None or self._queue is None:
            return
        worker, self._worker = self._worker, None
        if asyncio.get_running_loop() is not self._loop:  # closed from another loop: nothing to wait for
            worker.cancel()
            return
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            worker.cancel()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.shield(worker)
        except TimeoutError:
            log.warning("callbacks still running after %.0fs at shutdown; %d job(s) left", CLOSE_TIMEOUT,
                        self._queue.qsize())
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        stop = False
        while not stop:
            batch: list[Job] = []
            first = await queue.get()
            taken = 1
            if first is None:
                stop = True
            else:
                batch.append(first)
            while not stop and len(batch) < MAX_BATCH and not queue.empty():
                job = queue.get_nowait()
                taken += 1
                if job is None:
                    stop = True
                else:
                    batch.append(job)
            try:
                await self._process(batch)
            except Exception as e:  # a bug here must not stop the worker
                log.error("callback worker error: %s", type(e).__name__, exc_info=e)
            finally:
                for _ in range(taken):
                    queue.task_done()

    async def _process(self, batch: list[Job]) -> None:
        sync_calls: list[_Invocation] = []
        async_calls: list[_Invocation] = []
        in_thread: list[Job] = []
        for job in batch:
            if job.kind in _FINISHED and not any(m.is_async for m in _methods(job)):
                in_thread.append(job)  # a finished call's arguments can be built off the loop too
                continue
            for inv in _invocations(job):
                (async_calls if inv[2].is_async else sync_calls).append(inv)
        threaded = (asyncio.ensure_future(asyncio.to_thread(self._run_sync, sync_calls, in_thread))
                    if sync_calls or in_thread else None)
        for name, request_id, method, args in async_calls:
            token = bind_request_id(request_id)
            try:
                await method.fn(*args)
            except Exception as e:
                self._failed(name, e)
            finally:
                reset_request_id(token)
        if threaded is not None:
            await threaded
        self.processed += len(batch)

    def _run_sync(self, calls: list[_Invocation], jobs: list[Job]) -> None:
        for job in jobs:
            try:
                calls.extend(_invocations(job))
            except Exception as e:  # a bug in building the arguments: lose this job, not the batch
                log.error("callback arguments for request %s: %s", job.call.request_id, type(e).__name__, exc_info=e)
        for name, request_id, method, args in calls:
            bind_request_id(request_id)
            try:
                method.fn(*args)
            except Exception as e:
                self._failed(name, e)

    def _failed(self, name: str, e: Exception) -> None:
        with self._lock:  # sync callbacks fail in the thread while async ones fail on the loop
            self.failed += 1
        log.warning("callback %s failed: %s", name, type(e).__name__, exc_info=e)


_FINISHED = frozenset({"success", "failure"})


def _methods(job: Job) -> list[Method]:
    """The methods a success/failure job will call."""
    found: list[Method] = []
    for h in job.handlers:
        for m in (h.post_api, h.success if job.kind == "success" else h.failure):
            if m is not None:
                found.append(m)
    return found


def _invocations(job: Job) -> list[_Invocation]:
    """The calls one job makes: its arguments built once, shared by its handlers (as LiteLLM does)."""
    call = job.call
    rid = call.request_id
    out: list[_Invocation] = []
    if job.kind == "pre":
        kw = payload.kwargs(call, None)
        for h in job.handlers:
            if h.pre is not None:
                out.append((h.name, rid, h.pre, (call.model, kw["messages"], kw)))
        return out
    if job.kind == "stream":
        kw = payload.kwargs(call, None)
        start, end = payload.times(call, job.at)
        for h in job.handlers:
            if h.stream is not None:
                out.append((h.name, rid, h.stream, (kw, job.event, start, end)))
        return out
    kw = payload.kwargs(call, payload.record(call))
    start, end = payload.times(call)
    args = (kw, call.response, start, end)
    pick: Callable[[Handler], Method | None] = (lambda h: h.success) if job.kind == "success" else (
        lambda h: h.failure)
    for h in job.handlers:
        if h.post_api is not None:
            out.append((h.name, rid, h.post_api, args))
        m = pick(h)
        if m is not None:
            out.append((h.name, rid, m, args))
    return out
