"""Running one response of a WebSocket session (a turn): continue its parent, start it on the gateway,
relay its events, stop it early when steering or a cancel asks, then hand its steering input on.

Stopping is cancelling the turn's task at a safe point: between output items for steering (so no item
is cut), at once for a cancel. The gateway stores what was made (`incomplete`) when its stream is
closed; the session then sends the terminal event the client sees and records why it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from ..calls import Call, Principal
from ..deployments import Deployment
from ..errors import GatewayTimeoutError, RespgateError
from ..events import LIFECYCLE_TYPES, Event
from ..gateway import Gateway
from ..ids import decode_response_id
from ..observe import logs
from . import protocol as p
from .limits import Limits
from .state import Cached, Json, Steer, Turn

log = logging.getLogger("respgate.wsmode")

Emit = Callable[[bytes], Awaitable[None]]
DeploymentFor = Callable[[Json], Deployment | None]

_MAX_REMEMBERED = 1024  # ended responses kept so a late steer gets the right failure code


class ConnectionGone(Exception):
    """The client can no longer receive events (left, or too slow): the session stops."""


class Runner:
    """The turn machinery of a `Session` (session.py adds the client's messages and the lanes)."""

    def __init__(self, gateway: Gateway, principal: Principal, limits: Limits, emit: Emit,
                 deployment_for: DeploymentFor | None) -> None:
        self.gateway = gateway
        self.principal = principal
        self.limits = limits
        self._out = emit
        self._deployment_for = deployment_for
        self._turns: OrderedDict[str, Turn] = OrderedDict()
        self._cache: dict[str, Cached] = {}
        self._queued_bytes = 0
        self._seq = 0  # sequence numbers of the session's own events (steering)
        self._closing = False

    async def _send(self, event: Json) -> None:
        await self._out(orjson.dumps(event))

    def _next_seq(self) -> int:
        """The session's own events (errors, steering notices) are numbered by one connection-wide counter;
        a response's events keep the response's own numbering."""
        self._seq += 1
        return self._seq - 1

    async def _error(self, err: RespgateError, stream_id: str | None = None) -> None:
        await self._send(p.error_event(self._next_seq(), err, stream_id))

    async def _emit(self, turn: Turn, data: bytes) -> None:
        prefix = turn.lane.prefix
        await self._out(data if prefix is None else p.with_lane(data, prefix))

    # -- one turn ------------------------------------------------------------------------------------

    async def _run_turn(self, turn: Turn) -> Turn | None:
        """Run `turn`; its automatic successor if steering asks for one."""
        if turn.cancelled:  # cancelled while it waited for its turn
            await self._cancelled_early(turn)
            return None
        turn.task = asyncio.create_task(self._drive(turn), name="respgate-ws-response")
        try:
            await turn.task
        except asyncio.CancelledError:
            if self._closing:
                raise
        except ConnectionGone:
            raise
        except Exception as e:  # a bug must not take the connection down
            await self._broken(turn, e)
            return None
        finally:
            turn.task = None
        return await self._after(turn) if turn.response_id else None

    async def _drive(self, turn: Turn) -> None:
        events: AsyncIterator[Event] | None = None
        try:
            events = await self._start(turn)
            if events is not None:
                await self._relay(turn, events)
        except asyncio.CancelledError:
            if self._closing or not (turn.cancelled or turn.stop_response is not None):
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # our own stop, not this task's end
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()  # the gateway stores what was made before this returns
        if turn.stop_response is not None:
            await self._stopped(turn, turn.stop_response)
        elif turn.cancelled and not turn.response_id:
            await self._cancelled_early(turn)

    async def _start(self, turn: Turn) -> AsyncIterator[Event] | None:
        """The gateway's stream for this turn, or None when it could not start (the client is told)."""
        try:
            body = self._continue(turn)
            turn.sent_input = body.get("input")
            call = turn.call = Call(self.principal, body, stream=True)
            logs.bind_request_id(call.request_id)  # this turn's log lines carry its id, as an HTTP request's do
            deployment = self._deployment_for(body) if self._deployment_for is not None else None
            async with asyncio.timeout(self.limits.request_timeout):
                events = await self.gateway.stream(body, self.principal, deployment, call=call)
        except (RespgateError, TimeoutError) as e:
            err = e if isinstance(e, RespgateError) else GatewayTimeoutError(
                f"The response did not start within {self.limits.request_timeout:g} seconds.")
            if not turn.automatic:  # a successor's failure is told by response.steer.failed alone
                await self._error(err, turn.lane.stream_id)
            self._evict_parent(turn)
            await self._fail_steers(turn.carried, "successor_creation_failed",
                                    f"The response could not be created: {err.message}", turn.lane.stream_id)
            turn.carried = []
            return None
        turn.deployment = deployment or call.deployment
        return events

    async def _relay(self, turn: Turn, events: AsyncIterator[Event]) -> None:
        async for ev in events:
            kind = ev.type
            if kind in LIFECYCLE_TYPES:
                resp = ev.obj.get("response")
                if isinstance(resp, dict):
                    turn.snapshot = resp
                    if kind == "response.created":
                        self._register(turn, resp)
                    if turn.echo_previous is not None:
                        resp["previous_response_id"] = turn.echo_previous
                        ev.changed()
                    if ev.is_terminal:
                        turn.status = str(resp.get("status") or "completed")
            elif kind == "response.output_item.added":
                turn.open_items += 1
            elif kind == "response.output_item.done":
                turn.done_items[int(ev.obj["output_index"])] = ev.obj["item"]
            await self._emit(turn, ev.data)
            turn.sent += 1
            if kind == "response.created" and turn.carried:
                self._commit(turn)
            elif kind == "response.output_item.done":
                turn.open_items -= 1
                if turn.steered and turn.open_items == 0:
                    self._settle_stop(turn)  # a safe boundary: the steering takes over
                    return
            if ev.is_terminal:
                return

    def _continue(self, turn: Turn) -> Json:
        """The body to send: an explicit continuation of a response that waits for client input takes its
        queued steering input; a parent this connection keeps in memory (`store: false`) is expanded."""
        body = turn.body
        prev = body.get("previous_response_id")
        parent = self._turns.get(prev) if isinstance(prev, str) else None
        if parent is not None and parent.lane is turn.lane and not turn.carried and parent.required is not None:
            turn.carried, parent.steers, parent.settled = parent.steers, [], True
            if turn.carried:
                body = {**body, "input": p.with_steering(body.get("input"),
                                                         [i for s in turn.carried for i in s.items])}
        cached = self._cache.get(prev) if isinstance(prev, str) else None
        if cached is not None:
            own = body.get("input")
            own_items = [{"type": "message", "role": "user", "content": own}] if isinstance(own, str) \
                else list(own or [])
            history = [*cached.input, *cached.output]
            p.check_tool_outputs(history, own_items)
            body = {k: v for k, v in body.items() if k != "previous_response_id"}
            body["input"] = [*history, *own_items]
            turn.echo_previous = prev
        return body

    def _evict_parent(self, turn: Turn) -> None:
        """A continuation on the parent's own lane that fails drops the parent from memory (OpenAI's rule)."""
        prev = turn.body.get("previous_response_id")
        cached = self._cache.get(prev) if isinstance(prev, str) else None
        if cached is not None and cached.lane is turn.lane:
            del self._cache[str(prev)]
            turn.lane.cached_id = None

    def _register(self, turn: Turn, resp: Json) -> None:
        turn.response_id = str(resp.get("id") or "")
        turn.status = "in_progress"
        body = turn.body
        turn.steerable = body.get("conversation") is None and not body.get("context_management")
        deployment = turn.deployment
        if deployment is None:
            ref = decode_response_id(turn.response_id)
            deployment = self.gateway.registry.by_id(ref.deployment_id) if ref is not None else None
        # An upstream that holds the response keeps generating when we stop reading: let it finish.
        turn.interruptible = deployment is not None and not self.gateway.provider_for(deployment).holds_state
        self._turns[turn.response_id] = turn
        if len(self._turns) > _MAX_REMEMBERED:
            for rid in [rid for rid, t in self._turns.items()
                        if not t.steers and t.status not in ("queued", "in_progress")]:
                if len(self._turns) <= _MAX_REMEMBERED // 2:
                    break
                del self._turns[rid]

    def _commit(self, turn: Turn) -> None:
        """The successor's response.created: its steering input is now part of the response."""
        for s in turn.carried:
            self._queued_bytes -= s.size
        turn.carried = []

    # -- stopping early ------------------------------------------------------------------------------

    def _stop(self, turn: Turn) -> None:
        """End a running response now (steering at a boundary, or a cancel)."""
        if turn.task is None or turn.stop_response is not None:
            return
        if turn.response_id:
            self._settle_stop(turn)
        turn.task.cancel()

    def _settle_stop(self, turn: Turn) -> None:
        """Decide the stopped response before its stream closes, so the platform's hooks (which see the
        close) account the response the client will be shown."""
        resp = {**(turn.snapshot or {}), "output": turn.finished_output()}
        if turn.cancelled:
            resp["status"] = "cancelled"
        else:
            resp["status"] = "incomplete"
            resp["incomplete_details"] = {"reason": "steered"}
        turn.stop_response = resp
        if turn.call is not None:
            turn.call.response = resp

    async def _stopped(self, turn: Turn, resp: Json) -> None:
        """The terminal event of a stopped response: `response.incomplete` with reason `steered`, or with
        status `cancelled` (the stream grammar has no event of its own for that)."""
        turn.status = resp["status"]
        turn.snapshot = resp
        await self._emit(turn, orjson.dumps({"type": "response.incomplete", "sequence_number": turn.sent,
                                             "response": resp}))
        turn.sent += 1
        if turn.interruptible and turn.body.get("store") is not False:
            await self._record_stop(turn, resp)

    async def _record_stop(self, turn: Turn, resp: Json) -> None:
        """The gateway stored the stopped response as `incomplete`; record why it stopped, as sent."""
        store = self.gateway.store
        with contextlib.suppress(RespgateError):
            record = await store.get(turn.response_id)
            if record is not None and record.owner == self.principal.owner:
                record.status = resp["status"]
                record.response = {**record.response, "status": resp["status"],
                                   "incomplete_details": resp.get("incomplete_details")}
                await store.save(record)

    async def _cancelled_early(self, turn: Turn) -> None:
        """A cancel before the response existed: the create is answered with an error on its lane."""
        turn.status, turn.settled = "cancelled", True
        await self._error(RespgateError("The response was cancelled before it started.", code="response_cancelled",
                                        status=499, type="invalid_request_error"), turn.lane.stream_id)
        await self._fail_steers(turn.carried, "successor_creation_failed",
                                "The successor response was cancelled before it started.", turn.lane.stream_id)
        turn.carried = []

    # -- after the end ---------------------------------------------------------------------------------

    async def _after(self, turn: Turn) -> Turn | None:
        """After the terminal event: remember it, then hand its steering input on (or back). The turn stays
        known for late steering, without its body and input (the successor copies what it inherits)."""
        try:
            return await self._hand_on(turn)
        finally:
            turn.body, turn.sent_input, turn.call, turn.snapshot, turn.done_items = {}, None, None, None, {}

    async def _hand_on(self, turn: Turn) -> Turn | None:
        final = turn.snapshot or {}
        output = final.get("output") if isinstance(final.get("output"), list) else turn.finished_output()
        if turn.body.get("store") is False and turn.status in ("completed", "incomplete"):
            self._remember(turn, output or [])
        sid = turn.lane.stream_id
        if turn.status == "completed":
            required = p.required_input(output or [])
            if required:
                turn.required = required
                await self._steer_pending(turn, turn.steers)
                return None
        if turn.status in ("completed", "incomplete") and turn.steers:
            return self._successor(turn)
        turn.settled = True
        await self._fail_steers(turn.steers, "response_not_active",
                                f"The response ended ({turn.status}) before the steering input could be applied.",
                                sid)
        turn.steers = []
        if turn.response_id in self._turns:
            self._turns.move_to_end(turn.response_id)
        return None

    def _remember(self, turn: Turn, output: list[Any]) -> None:
        lane = turn.lane
        if lane.cached_id is not None:
            self._cache.pop(lane.cached_id, None)
        sent = turn.sent_input
        items = [{"type": "message", "role": "user", "content": sent}] if isinstance(sent, str) else list(sent or [])
        self._cache[turn.response_id] = Cached(lane, items, list(output))
        lane.cached_id = turn.response_id

    def _successor(self, turn: Turn) -> Turn:
        """The automatic continuation: the parent's settings, its steering input in submission order."""
        settings = {k: v for k, v in turn.body.items() if k not in ("input", "previous_response_id")}
        steers, turn.steers, turn.settled = turn.steers, [], True
        body = {**settings, "previous_response_id": turn.response_id, "input": [i for s in steers for i in s.items]}
        return Turn(body, turn.lane, carried=steers, automatic=True)

    async def _broken(self, turn: Turn, exc: Exception) -> None:
        log.error("websocket response raised %s", type(exc).__name__, exc_info=exc)
        await self._error(RespgateError("The server had an error while processing your request."),
                          turn.lane.stream_id)
        turn.status, turn.settled = "failed", True
        await self._fail_steers(turn.carried + turn.steers, "response_not_active",
                                "The response ended before the steering input could be applied.", turn.lane.stream_id)
        turn.carried, turn.steers = [], []

    # -- steering notices ------------------------------------------------------------------------------

    async def _steer_failed(self, code: str, message: str, target: str, input_: object, steer_id: str | None,
                            stream_id: str | None) -> None:
        await self._send(p.steer_failed(self._next_seq(), code, message, target, input_, steer_id, stream_id))

    async def _steer_pending(self, turn: Turn, steers: list[Steer]) -> None:
        for s in steers:
            await self._send(p.steer_pending(self._next_seq(), s.id, s.target, turn.required or [],
                                             turn.lane.stream_id))

    async def _fail_steers(self, steers: list[Steer], code: str, message: str, stream_id: str | None) -> None:
        for s in steers:
            self._queued_bytes -= s.size
            await self._steer_failed(code, message, s.target, s.input, s.id, stream_id)
