"""What one WebSocket connection may hold and do, from `general_settings` (defaults are sane for a
public gateway; every key is optional):

    websocket_max_messages_per_second   100      client messages a second (token bucket, burst = 2 s' worth);
                                                 over it a message is answered with an `error` event (429)
    websocket_max_queued_bytes          16 MiB   client input held but not started: queued creates and
                                                 accepted steering input; over it -> error (429) / steer failed
    websocket_send_timeout_seconds      30       a client that reads nothing for this long while the server
                                                 has events for it is closed with 1008 ("client is not reading")
    websocket_idle_timeout_seconds      600      no message and no response in flight -> close 1000
    websocket_max_connection_seconds    3600     no new responses after this (`websocket_connection_limit_reached`);
                                                 the socket closes with 1001 once idle
    websocket_max_in_flight             16       responses generating at once; further creates wait their turn
    websocket_max_lanes                 32       distinct named `stream_id`s (`websocket_stream_limit_reached`)
    websocket_max_pending_steers        16       accepted, uncommitted steering submissions per response

A single message is capped by `max_request_body_bytes` like an HTTP body. Outgoing events are never
queued beyond the transport's own buffer: a lane waits for the socket (backpressure to its upstream),
so a slow client costs at most one event per running response.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import GeneralSettings

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    messages_per_second: float = 100.0
    max_queued_bytes: int = 16 * _MIB
    send_timeout: float = 30.0
    idle_timeout: float = 600.0
    max_connection_seconds: float = 3600.0
    max_in_flight: int = 16
    max_lanes: int = 32
    max_pending_steers: int = 16
    max_message_bytes: int = 16 * _MIB
    request_timeout: float | None = None  # time to a response's first event (general_settings.request_timeout)

    @classmethod
    def from_general(cls, general: GeneralSettings) -> Limits:
        """From a config's `general_settings`; raises ConfigError naming a bad key (call it at start-up)."""
        return cls.from_settings(general.extra, max_message_bytes=general.max_request_body_bytes,
                                 request_timeout=general.request_timeout)

    @classmethod
    def from_settings(cls, extra: Mapping[str, Any], *, max_message_bytes: int,
                      request_timeout: float | None) -> Limits:
        """The limits named in `general_settings` (`extra` holds the keys the core does not own)."""
        d = cls()
        return cls(
            messages_per_second=_number(extra, "websocket_max_messages_per_second", d.messages_per_second),
            max_queued_bytes=int(_number(extra, "websocket_max_queued_bytes", d.max_queued_bytes, integer=True)),
            send_timeout=_number(extra, "websocket_send_timeout_seconds", d.send_timeout),
            idle_timeout=_number(extra, "websocket_idle_timeout_seconds", d.idle_timeout),
            max_connection_seconds=_number(extra, "websocket_max_connection_seconds", d.max_connection_seconds),
            max_in_flight=int(_number(extra, "websocket_max_in_flight", d.max_in_flight, integer=True)),
            max_lanes=int(_number(extra, "websocket_max_lanes", d.max_lanes, integer=True)),
            max_pending_steers=int(_number(extra, "websocket_max_pending_steers", d.max_pending_steers,
                                           integer=True)),
            max_message_bytes=max_message_bytes,
            request_timeout=request_timeout,
        )


SETTING_KEYS = frozenset({
    "websocket_max_messages_per_second", "websocket_max_queued_bytes", "websocket_send_timeout_seconds",
    "websocket_idle_timeout_seconds", "websocket_max_connection_seconds", "websocket_max_in_flight",
    "websocket_max_lanes", "websocket_max_pending_steers",
})


def _number(extra: Mapping[str, Any], key: str, default: float, *, integer: bool = False) -> float:
    value = extra.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"general_settings.{key}", f"expected {kind}, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"general_settings.{key}", "must be greater than 0")
    return float(value)


class TokenBucket:
    """`rate` messages a second on average, bursts of two seconds' worth."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = max(2 * rate, 1.0)
        self._tokens = self._burst
        self._last = clock()

    def take(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
