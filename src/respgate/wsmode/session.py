"""One WebSocket-mode connection over the Gateway, for every provider: the proxy's socket and the SDK's
in-process `connect()` both drive a `Session` with client messages and give it an `emit` for events.

    response.create   -> the lane's FIFO (`stream_id`; none: the default lane); lanes run concurrently,
                         at most `max_in_flight` responses at once; each response is one gateway stream
                         relayed event by event (one `Call`, so keys, spend and metrics see it)
    previous_response_id on `store: false` -> the lane's latest response from this connection's memory
    response.steer    -> accepted input waits on its response; when that ends (or stops early at an item
                         boundary: `response.incomplete`, reason `steered`) an automatic successor continues
                         it with the input, and the successor's `response.created` commits it. A response
                         that waits for client tool output keeps the input (`response.steer.pending`) for
                         the client's explicit continuation on the same lane.
    response.cancel   -> (ours) `response_id`: that response ends now (`response.incomplete`, status
                         `cancelled`); `stream_id`: the lane's current response, even before it started
                         (its create is answered with an `error`, code `response_cancelled`)

Client mistakes become `error` / `response.steer.failed` events; the connection goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..calls import Principal
from ..errors import InvalidRequestError, NotFoundError, RateLimitError, RespgateError
from ..gateway import Gateway
from ..ids import new_token
from . import protocol as p
from .limits import Limits
from .state import Json, Lane, Steer, Turn
from .turns import ConnectionGone, DeploymentFor, Emit, Runner

__all__ = ["ConnectionGone", "Session"]


class Session(Runner):
    def __init__(self, gateway: Gateway, principal: Principal, limits: Limits, emit: Emit, *,
                 deployment_for: DeploymentFor | None = None) -> None:
        super().__init__(gateway, principal, limits, emit, deployment_for)
        self._lanes: dict[str | None, Lane] = {None: Lane(None)}
        self._slots = asyncio.Semaphore(limits.max_in_flight)
        self.expired = False  # past the connection's age limit: no new responses
        self.on_idle: Callable[[], None] | None = None

    @property
    def busy(self) -> bool:
        return any(lane.task is not None for lane in self._lanes.values())

    async def handle(self, raw: str | bytes) -> None:
        """One client message. Never raises for the client's mistakes; raises ConnectionGone."""
        if len(raw) > self.limits.max_message_bytes:
            await self.reject(InvalidRequestError(
                f"The message exceeds the limit of {self.limits.max_message_bytes} bytes.",
                code="request_too_large", status=413))
            return
        try:
            event = p.parse_client_event(raw)
        except InvalidRequestError as e:
            await self.reject(e)
            return
        kind = event["type"]
        if kind == p.CREATE:
            await self._create(event, len(raw))
        elif kind == p.STEER:
            await self._steer(event, len(raw))
        else:
            await self._cancel(event)

    async def reject(self, err: RespgateError) -> None:
        """An `error` event for the connection as a whole (no lane): e.g. a message over the rate limit."""
        await self._error(err)

    # -- response.create ---------------------------------------------------------------------------

    async def _create(self, event: Json, size: int) -> None:
        try:
            stream_id = p.check_stream_id(event.get("stream_id"))
        except InvalidRequestError as e:
            await self.reject(e)
            return
        try:
            body, _ = p.create_body(event)
            if self.expired:
                raise InvalidRequestError("This WebSocket connection reached its age limit; open a new one.",
                                          code="websocket_connection_limit_reached")
            lane = self._lane(stream_id)
            if self._queued_bytes + size > self.limits.max_queued_bytes:
                raise RateLimitError(f"This connection already holds {self._queued_bytes} bytes of queued requests "
                                     f"(limit {self.limits.max_queued_bytes}); wait for responses to finish.",
                                     code="websocket_queue_limit_reached")
        except RespgateError as e:
            await self._error(e, stream_id)
            return
        self._queued_bytes += size
        lane.queue.append(Turn(body, lane, size))
        if lane.task is None:
            lane.task = asyncio.create_task(self._run_lane(lane), name="respgate-ws-lane")

    def _lane(self, stream_id: str | None) -> Lane:
        lane = self._lanes.get(stream_id)
        if lane is None:
            if len(self._lanes) - 1 >= self.limits.max_lanes:
                raise InvalidRequestError(f"This connection already uses {self.limits.max_lanes} stream_ids, the "
                                          "most it may.", param="stream_id", code="websocket_stream_limit_reached")
            lane = self._lanes[stream_id] = Lane(stream_id)
        return lane

    async def _run_lane(self, lane: Lane) -> None:
        try:
            while lane.queue:
                first = lane.current = lane.queue.popleft()
                async with self._slots:
                    self._queued_bytes -= first.size  # held until it starts
                    turn: Turn | None = first
                    while turn is not None:  # a response, then its automatic successors
                        lane.current = turn
                        turn = await self._run_turn(turn)
                lane.current = None
        except ConnectionGone:
            pass
        finally:
            lane.task = lane.current = None
            if not self._closing and not self.busy and self.on_idle is not None:
                self.on_idle()

    # -- response.steer ----------------------------------------------------------------------------

    async def _steer(self, event: Json, size: int) -> None:
        target = event.get("previous_response_id")
        target = target if isinstance(target, str) else ""
        try:
            p.steer_target(event)
            items = p.steer_items(event.get("input"))
        except p.SteerInputError as e:
            await self._steer_failed("invalid_input", str(e), target, event.get("input"), None, None)
            return
        turn = self._turns.get(target)
        refusal = self._steer_refusal(turn, size)
        if turn is None or refusal is not None:
            code, message = refusal or ("response_not_found", "")
            await self._steer_failed(code, message, target, event["input"], None,
                                     turn.lane.stream_id if turn is not None else None)
            return
        steer = Steer(f"steer_{new_token(18)}", target, event["input"], items, size)
        turn.steers.append(steer)
        self._queued_bytes += size
        await self._send(p.steer_accepted(self._next_seq(), steer.id, target, turn.lane.stream_id))
        if turn.required is not None:
            await self._steer_pending(turn, [steer])
        elif turn.status == "in_progress" and turn.interruptible and not turn.steered:
            turn.steered = True  # stop at the next item boundary; now, if no item is open
            if turn.open_items == 0:
                self._stop(turn)

    def _steer_refusal(self, turn: Turn | None, size: int) -> tuple[str, str] | None:
        if turn is None:
            return "response_not_found", "The target response is not available on this connection."
        if not turn.steerable:
            return "steering_not_supported", ("Responses bound to a conversation or using automatic compaction "
                                              "cannot be steered.")
        if not turn.accepts_steering:
            if turn.status == "completed":
                return "response_already_completed", "The response completed and no longer accepts steering input."
            return "response_not_active", "The response is no longer accepting steering input."
        if len(turn.steers) >= self.limits.max_pending_steers or \
                self._queued_bytes + size > self.limits.max_queued_bytes:
            return "too_many_pending_steers", "Too much steering input is pending for the response."
        return None

    # -- response.cancel ---------------------------------------------------------------------------

    async def _cancel(self, event: Json) -> None:
        try:
            turn = self._cancel_target(event)
        except RespgateError as e:
            await self.reject(e)
            return
        if turn is None or turn.cancelled or turn.stop_response is not None:
            return  # nothing running there; a response that already ended stays as it ended
        if turn.response_id and turn.status != "in_progress":
            return
        turn.cancelled = True
        self._stop(turn)  # not started yet: `_run_turn` answers its create when its turn comes

    def _cancel_target(self, event: Json) -> Turn | None:
        if "response_id" not in event and "stream_id" in event:
            lane = self._lanes.get(p.check_stream_id(event["stream_id"]))
            if lane is None:
                return None
            return lane.current or (lane.queue[0] if lane.queue else None)
        target = p.cancel_target(event)
        turn = self._turns.get(target)
        if turn is None:
            raise NotFoundError(f"Response with id '{target}' not found on this connection.", param="response_id",
                                code="response_not_found")
        return turn

    # -- the end -----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every response (each is stored as far as it got) and wait for them."""
        self._closing = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
