"""The gateway's side of the platform's hooks: pre_call before the work, post_call exactly once after.

JSON: post_call before the bytes return (so the proxy can send `call.cost` in a header). Stream: when
the terminal event was sent or the client left. Background: at the run's final state (the gateway
calls post_call itself then; `defer_accounting` marks such a call).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from .calls import Call, Hooks
from .errors import RespgateError
from .events import Event

_DEFERRED = "respgate.deferred"  # call.extra: post_call waits for a background run's final state


class ClientClosedError(RespgateError):
    """The client left before the end (nginx's 499): what the hooks see for such a call."""

    status = 499
    type = "client_closed_request"


def defer_accounting(call: Call) -> None:
    call.extra[_DEFERRED] = True


class hooked:
    """pre_call, the work (the `with` block), then post_call — here, unless a stream's end
    (`accounted`) or a background run's final state will do it. A class rather than an
    asynccontextmanager: this runs on every request, and the generator machinery costs microseconds."""

    __slots__ = ("call", "hooks", "streaming")

    def __init__(self, hooks: Hooks, call: Call, *, streaming: bool = False) -> None:
        self.hooks = hooks
        self.call = call
        self.streaming = streaming

    async def __aenter__(self) -> Call:
        if self.hooks.active:
            try:
                await self.hooks.pre_call(self.call)
            except BaseException as e:  # a refusal (budget, limit, guardrail) is accounted too
                await self.__aexit__(type(e), e, None)
                raise
        return self.call

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        hooks, call = self.hooks, self.call
        if not hooks.active or call.ended is not None:
            return
        if error is not None:
            call.error = as_error(error)
            await hooks.post_call(call)
        elif not self.streaming and not call.extra.get(_DEFERRED):
            await hooks.post_call(call)


async def accounted(hooks: Hooks, events: AsyncIterator[Event], call: Call) -> AsyncIterator[Event]:
    """A stream as the client receives it, seen by the hooks: the first event's time, each event when a
    hook wants them, the terminal Response, and post_call when it ends or the client leaves."""
    deferred = bool(call.extra.get(_DEFERRED))
    try:
        async for ev in events:
            if call.first_event is None:
                call.first_event = time.perf_counter()
            if hooks.wants_events:
                hooks.stream_event(call, ev)
            if ev.is_terminal and not deferred:
                resp = ev.obj.get("response")
                call.response = resp if isinstance(resp, dict) else None
            yield ev
    except BaseException as e:
        if call.response is None and call.error is None:
            call.error = as_error(e)
        raise
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
        if not deferred and call.ended is None:
            if call.response is None and call.error is None:
                call.error = ClientClosedError("The client closed the stream before the response finished.")
            await hooks.post_call(call)


def as_error(e: BaseException) -> RespgateError:
    if isinstance(e, RespgateError):
        return e
    if isinstance(e, asyncio.CancelledError | GeneratorExit):
        return ClientClosedError("The request was cancelled before it finished.")
    return RespgateError("The server had an error while processing your request.")
