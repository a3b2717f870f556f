"""What one HTTP request may cost the server before the gateway sees it, and the clock that enforces
the time limits.

```yaml
general_settings:
  max_request_header_bytes: 32768   # request line + headers; more -> 431, connection closed
  max_request_headers: 100          # header fields; more -> 431
  request_header_timeout: 30        # seconds to receive the request line and headers; then 408, closed
  request_body_timeout: 60          # seconds to receive the whole body (slow clients); then 408, closed
  keep_alive_timeout: 75            # seconds an idle keep-alive connection stays open
  limit_concurrency: 2000           # connections + requests in flight per worker before 503 (default: none)
```

The body limit (`max_request_body_bytes`, 413) and the time a request may take once read
(`request_timeout`, 504) are core settings (config.py).

`Deadlines` keeps many short deadlines with one periodic timer: arming a timer per request costs a few
microseconds on uvloop, a dict insert costs a tenth of one, and a limit of tens of seconds does not
need to fire to the millisecond.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from ..errors import ConfigError

__all__ = ["LIMITS_STATE", "Deadlines", "ReadClock", "ServerLimits"]

LIMITS_STATE: Final = "respgate.server_limits"  # the lifespan state key the app hands its limits over in

K = TypeVar("K", bound=Hashable)

log = logging.getLogger("respgate.security")

_KEY: Final = "general_settings"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout: float = 30.0
    body_timeout: float = 60.0
    keep_alive_timeout: float = 75.0
    limit_concurrency: int | None = None

    @classmethod
    def from_settings(cls, general: Mapping[str, Any]) -> ServerLimits:
        """From `general_settings` (its keys outside the core, `config.general.extra`); ConfigError names the key."""
        d = cls()
        return cls(
            max_header_bytes=_count(general, "max_request_header_bytes", d.max_header_bytes, minimum=1024),
            max_headers=_count(general, "max_request_headers", d.max_headers, minimum=1),
            header_timeout=_seconds(general, "request_header_timeout", d.header_timeout),
            body_timeout=_seconds(general, "request_body_timeout", d.body_timeout),
            keep_alive_timeout=_seconds(general, "keep_alive_timeout", d.keep_alive_timeout),
            limit_concurrency=_count(general, "limit_concurrency", None, minimum=1),
        )


def _count(general: Mapping[str, Any], name: str, default: int | None, *, minimum: int) -> Any:
    value = general.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{_KEY}.{name}", f"expected an integer >= {minimum}")
    return value


def _seconds(general: Mapping[str, Any], name: str, default: float) -> float:
    value = general.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{_KEY}.{name}", "expected a positive number of seconds")
    return float(value)


class Deadlines(Generic[K]):
    """Keys that must leave (`discard`) within `seconds` of joining (`add`), or `expire(key)` is called.

    All deadlines are `seconds` long, so insertion order is deadline order and a sweep stops at the
    first key still in time. One timer per `tick` runs while any key waits; it fires at most `tick`
    late. Loop-bound: use it from the loop's thread only.
    """

    def __init__(self, seconds: float, expire: Callable[[K], None]) -> None:
        self.seconds = seconds
        self._expire = expire
        self._tick = min(1.0, max(seconds / 4, 0.01))
        self._due: dict[K, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, key: K, loop: asyncio.AbstractEventLoop) -> None:
        self._due.pop(key, None)  # re-added: to the end, in deadline order
        self._due[key] = loop.time() + self.seconds
        if self._timer is None:
            self._timer = loop.call_later(self._tick, self._sweep, loop)

    def discard(self, key: K) -> None:
        self._due.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        late = []
        for key, due in self._due.items():
            if due > now:
                break
            late.append(key)
        for key in late:
            del self._due[key]
            try:
                self._expire(key)
            except Exception as e:  # one failed expiry must not stop the clock for the others
                log.error("expiring a deadline failed: %s", type(e).__name__, exc_info=e)
        self._timer = loop.call_later(self._tick, self._sweep, loop) if self._due else None


class ReadClock:
    """The deadline for reading a request's body: the reading task is cancelled when it passes, and
    `late(task)` then tells that cancellation apart from any other (and takes it back)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadlines: Deadlines[asyncio.Task[Any]] = Deadlines(seconds, self._expire)
        self._late: set[asyncio.Task[Any]] = set()

    def start(self) -> asyncio.Task[Any] | None:
        task = asyncio.current_task()
        if task is not None:
            self._deadlines.add(task, task.get_loop())
        return task

    def stop(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._deadlines.discard(task)
            self._late.discard(task)

    def late(self, task: asyncio.Task[Any] | None) -> bool:
        """After a CancelledError while reading: True (and the cancellation withdrawn) if it was ours."""
        if task is None or task not in self._late:
            return False
        self._late.discard(task)
        task.uncancel()
        return True

    def close(self) -> None:
        self._deadlines.close()
        self._late.clear()

    def _expire(self, task: asyncio.Task[Any]) -> None:
        self._late.add(task)
        task.cancel()
