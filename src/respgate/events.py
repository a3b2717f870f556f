"""A Responses stream event as it crosses the gateway: parsed or serialised, whichever is at hand.

Relayed upstream events stay bytes unless the gateway must look inside (lifecycle events carry
the response, whose id is rewritten); built events stay dicts until the outlet serialises them.
Either form is produced lazily, at most once.
"""

from __future__ import annotations

from typing import Any

import orjson

TERMINAL_TYPES = frozenset({"response.completed", "response.failed", "response.incomplete"})
LIFECYCLE_TYPES = TERMINAL_TYPES | {"response.created", "response.in_progress", "response.queued"}


class Event:
    __slots__ = ("_data", "_obj", "type")

    def __init__(self, type: str, *, data: bytes | None = None, obj: dict[str, Any] | None = None) -> None:
        self.type = type
        self._data = data
        self._obj = obj

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Event:
        return cls(obj["type"], obj=obj)

    @property
    def obj(self) -> dict[str, Any]:
        if self._obj is None:
            assert self._data is not None
            self._obj = orjson.loads(self._data)
        return self._obj

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = orjson.dumps(self._obj)
        return self._data

    def changed(self) -> None:
        """Call after mutating `obj`, so the serialised form is made again."""
        self._data = None
        _ = self.obj

    def sse(self) -> bytes:
        return b"event: " + self.type.encode() + b"\ndata: " + self.data + b"\n\n"

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_TYPES
