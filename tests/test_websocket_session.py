"""`wsmode.Session` on a scripted gateway: the steering paths a real upstream cannot be made to show on
cue. A response the session may not stop (an upstream that holds it keeps generating) runs to its end;
its accepted steering input then starts the automatic successor, whose response.created commits it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from respgate.calls import Principal
from respgate.wsmode import Limits, Session

Json = dict[str, Any]


class ScriptedGateway:
    """Each stream: response.created, then (once `release` is set) a message item and response.completed."""

    def __init__(self) -> None:
        self.bodies: list[Json] = []
        self.release = asyncio.Event()
        self.registry = self  # by_id: no deployment known, so the session does not stop responses

    def by_id(self, _: str) -> None:
        return None

    async def stream(self, body: Json, principal: Principal, deployment: Any = None,
                     call: Any = None) -> AsyncIterator[Any]:
        self.bodies.append(body)
        return self._events(f"resp_{len(self.bodies)}", body)

    async def _events(self, rid: str, body: Json) -> AsyncIterator[Any]:
        from respgate.events import Event

        shell = {"id": rid, "object": "response", "status": "in_progress", "output": [],
                 "previous_response_id": body.get("previous_response_id")}
        yield Event.of({"type": "response.created", "sequence_number": 0, "response": shell})
        await self.release.wait()
        item = {"type": "message", "id": f"msg_{rid}", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "ok", "annotations": []}]}
        yield Event.of({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": item})
        yield Event.of({"type": "response.output_item.done", "sequence_number": 2, "output_index": 0, "item": item})
        yield Event.of({"type": "response.completed", "sequence_number": 3,
                        "response": {**shell, "status": "completed", "output": [item]}})


async def test_steering_a_response_that_cannot_stop_continues_after_it_completes() -> None:
    gateway = ScriptedGateway()
    events: list[Json] = []
    arrived = asyncio.Event()

    async def emit(data: bytes) -> None:
        events.append(orjson.loads(data))
        arrived.set()

    async def next_of(kind: str) -> Json:
        while True:
            found = [e for e in events if e["type"] == kind]
            if found:
                events.remove(found[0])
                return found[0]
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 5)

    session = Session(gateway, Principal(""), Limits(), emit)  # type: ignore[arg-type]
    try:
        await session.handle(orjson.dumps({"type": "response.create", "model": "m", "input": "go",
                                           "instructions": "be terse", "stream_id": "l"}))
        created = await next_of("response.created")
        await session.handle(orjson.dumps({"type": "response.steer", "previous_response_id": "resp_1",
                                           "input": "and cheerful"}))
        accepted = await next_of("response.steer.accepted")
        gateway.release.set()
        completed = await next_of("response.completed")  # not stopped early: it could not be
        successor = await next_of("response.created")
        second = await next_of("response.completed")
    finally:
        await session.close()
    assert created["response"]["id"] == "resp_1" and accepted["stream_id"] == "l"
    assert completed["response"]["id"] == "resp_1" and completed["response"]["status"] == "completed"
    assert successor["response"]["id"] == "resp_2" and successor["stream_id"] == "l"
    assert second["response"]["previous_response_id"] == "resp_1"
    follow = gateway.bodies[1]  # the successor: the parent's settings, the steering input
    assert follow["previous_response_id"] == "resp_1" and follow["instructions"] == "be terse"
    assert follow["input"] == [{"type": "message", "role": "user", "content": "and cheerful"}]
    assert not [e for e in events if e["type"].startswith("response.steer")]  # no failure, no pending


async def test_closing_the_session_stops_running_responses() -> None:
    gateway = ScriptedGateway()
    emitted: list[bytes] = []

    async def emit(data: bytes) -> None:
        emitted.append(data)

    session = Session(gateway, Principal(""), Limits(), emit)  # type: ignore[arg-type]
    await session.handle(orjson.dumps({"type": "response.create", "model": "m", "input": "go"}))
    for _ in range(100):
        if emitted:
            break
        await asyncio.sleep(0.01)
    assert session.busy
    await session.close()
    assert not session.busy and len(emitted) == 1  # response.created, then nothing: it was stopped
