"""What a WebSocket session remembers: lanes, the responses it made (turns), accepted steering input,
and the connection-local state that lets `store: false` responses be continued on the same socket."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .protocol import lane_prefix

if TYPE_CHECKING:
    from ..calls import Call
    from ..deployments import Deployment

Json = dict[str, Any]


@dataclass(eq=False, slots=True)
class Steer:
    """One accepted `response.steer`: owned by the server from `accepted` until a successor's
    `response.created` commits it or `response.steer.failed` hands it back."""

    id: str
    target: str  # the response it steers
    input: Any  # exactly as the client sent it (returned on failure)
    items: list[Json]  # as input items (user messages)
    size: int  # bytes held against the connection's queued-bytes limit


@dataclass(eq=False, slots=True)
class Cached:
    """A `store: false` response kept for continuation on this connection: its whole input as sent, and
    its output. Only each lane's latest response is kept (as OpenAI's connection-local cache does)."""

    lane: Lane
    input: list[Any]
    output: list[Any]


@dataclass(eq=False, slots=True)
class Lane:
    """A `stream_id` (None: the default lane). Its creates run in order, one at a time."""

    stream_id: str | None
    queue: deque[Turn] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    current: Turn | None = None  # taken from the queue: waiting for a slot, or running
    cached_id: str | None = None
    prefix: bytes | None = None

    def __post_init__(self) -> None:
        self.prefix = lane_prefix(self.stream_id) if self.stream_id is not None else None


@dataclass(eq=False, slots=True)
class Turn:
    """One response of this connection, from its `response.create` (or an automatic successor) to the
    moment it no longer takes steering input (`settled`)."""

    body: Json  # the create body as the client sent it (a successor: inherited settings + steering)
    lane: Lane
    size: int = 0  # bytes held while queued
    carried: list[Steer] = field(default_factory=list)  # steering this turn commits at its response.created
    automatic: bool = False  # a successor the session started (no client create to answer with an error)
    response_id: str = ""
    status: str = "queued"  # queued | in_progress | completed | incomplete | failed | cancelled
    steers: list[Steer] = field(default_factory=list)  # accepted for this response, not yet committed
    required: list[Json] | None = None  # the client input it waits for (completed with tool calls)
    settled: bool = False  # a successor or continuation took its steering; or it ended without any
    steerable: bool = True  # conversation / automatic-compaction responses cannot be steered
    interruptible: bool = False  # ours to stop (the gateway makes it), not an upstream's stateful response
    steered: bool = False  # steering asked it to stop at the next item boundary
    cancelled: bool = False  # `response.cancel` stopped it
    open_items: int = 0
    sent: int = 0  # events relayed: the next sequence number
    echo_previous: str | None = None  # the parent id to show when the request was expanded from the cache
    sent_input: Any = None  # the input as given to the gateway (after steering and expansion)
    snapshot: Json | None = None  # the last response object seen (lifecycle events)
    done_items: dict[int, Json] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None  # start + relay; cancelled to stop it early
    call: Call | None = None
    deployment: Deployment | None = None
    stop_response: Json | None = None  # how it ended when the session stopped it (steering, cancel)

    @property
    def accepts_steering(self) -> bool:
        return not self.settled and self.status in ("queued", "in_progress", "completed", "incomplete")

    def finished_output(self) -> list[Json]:
        return [self.done_items[i] for i in sorted(self.done_items)]
