"""What the router keeps track of after an attempt returned: a stream holds its deployment in flight
until it ends, and the tokens of a finished response count towards its deployment's tpm."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from ..events import Event


class HeldStream:
    """A routed stream: `release` runs once, when the stream ends or is closed; `count_tokens` (when
    given) gets the terminal event's total tokens."""

    def __init__(self, events: Any, release: Callable[[], None],
                 count_tokens: Callable[[int], Awaitable[None]] | None) -> None:
        self._events: AsyncIterator[Event] = events
        self._release = release
        self._count_tokens = count_tokens
        self._open = True

    def __aiter__(self) -> HeldStream:
        return self

    async def __anext__(self) -> Event:
        try:
            ev = await anext(self._events)
        except BaseException:
            self._done()
            raise
        if ev.is_terminal:
            self._done()
            if self._count_tokens is not None:
                await self._count_tokens(_event_tokens(ev))
        return ev

    async def aclose(self) -> None:
        self._done()
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()

    def _done(self) -> None:
        if self._open:
            self._open = False
            self._release()


def _event_tokens(ev: Event) -> int:
    response = ev.obj.get("response")
    usage = response.get("usage") if isinstance(response, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else 0


def json_tokens(raw: bytes) -> int:
    """`usage.total_tokens` of a Response serialised by the gateway (read only when tpm needs it)."""
    parsed = orjson.loads(raw)
    usage = parsed.get("usage") if isinstance(parsed, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else 0
