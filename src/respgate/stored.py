"""The stored half of the gateway: retrieve (and its stream), delete, cancel, input_items.

A response lives in the store, and for a stateful upstream (OpenAI, Azure) also at the upstream,
which is asked when it knows more: a background response still running, `include[]`, input_items,
delete, cancel. A response this gateway runs in the background is followed live from its
`EventLog`, or replayed from the events stored with its final state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import orjson

from .background import BackgroundRuns
from .calls import Principal
from .conversations import Conversations
from .deployments import Deployment, ModelRegistry
from .errors import InvalidRequestError, NotFoundError, RespgateError
from .events import Event
from .ids import decode_response_id
from .providers.base import StatefulProvider
from .store.base import ResponseRecord, Store
from .streaming import replay

if TYPE_CHECKING:
    import aiohttp

    from .providers.base import Provider

NON_TERMINAL = ("queued", "in_progress")
FOLLOW_POLL_SECONDS = 0.2  # how often another process's run is read from the store
FOLLOW_IDLE_SECONDS = 300.0  # a followed run that makes no progress for this long is given up
CANCEL_WAIT_SECONDS = 1.5  # how long a cancel of another process's run waits for that process
LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.queued",
                       "response.completed", "response.failed", "response.incomplete"})


@dataclass(slots=True)
class _Target:
    record: ResponseRecord
    deployment: Deployment
    upstream: StatefulProvider | None  # set when the upstream itself holds the response
    upstream_id: str
    stored: bool = True

class StoredResponses:
    """Mixed into `Gateway`, which provides the attributes and the two methods declared here."""

    store: Store
    registry: ModelRegistry
    background: BackgroundRuns
    conversations: Conversations

    def provider_for(self, deployment: Deployment) -> Provider:
        raise NotImplementedError

    def _require_http(self) -> aiohttp.ClientSession:
        raise NotImplementedError

    async def _target(self, response_id: str, principal: Principal,
                      deployment: Deployment | None = None) -> _Target:
        """The stored response and where it lives. With an explicit `deployment` (the SDK, which may not
        have made the response itself) a response the upstream holds is reached even when not stored here."""
        record = await self.store.get(response_id)
        ref = decode_response_id(response_id)
        if record is not None and record.owner != principal.owner:
            record = None
        if record is None:
            if deployment is not None and ref is not None and self.provider_for(deployment).holds_state:
                record = ResponseRecord(id=response_id, owner=principal.owner, model=deployment.model_name,
                                        deployment_id=deployment.id, provider=deployment.provider, status="unknown",
                                        created_at=0.0, previous_response_id=None, response={}, background=True)
                return _Target(record, deployment, self._stateful(deployment), ref.upstream_id, stored=False)
            raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
        if deployment is None:
            deployment = self.registry.by_id(record.deployment_id)
        if deployment is None:
            try:
                deployment = self.registry.pick(record.model)
            except NotFoundError:
                deployment = None
        if deployment is None or ref is None:
            # The deployment left the config: the stored copy is all there is.
            return _Target(record, _orphan(record), None, ref.upstream_id if ref else "")
        return _Target(record, deployment, self._stateful(deployment), ref.upstream_id)

    def _stateful(self, deployment: Deployment) -> StatefulProvider | None:
        provider = self.provider_for(deployment)
        return cast(StatefulProvider, provider) if provider.holds_state else None

    def _from_upstream(self, resp: dict[str, Any], t: _Target) -> dict[str, Any]:
        resp["id"] = t.record.id
        if "model" in resp:
            resp["model"] = t.record.model
        if resp.get("previous_response_id") is not None:
            resp["previous_response_id"] = t.record.previous_response_id
        if "conversation" in t.record.response:  # ours: the upstream never saw the conversation's id
            resp["conversation"] = t.record.response["conversation"]
        return resp

    async def _settle(self, t: _Target, resp: dict[str, Any]) -> None:
        """The upstream's newer state of a stored response: stored, and a turn of a conversation that
        has just finished joins the conversation (its items were the upstream's to make)."""
        was_live = t.record.status in NON_TERMINAL
        t.record.status = str(resp.get("status"))
        t.record.response = resp
        await self.store.save(t.record)
        conversation = resp.get("conversation")
        if was_live and t.record.status not in NON_TERMINAL and isinstance(conversation, dict):
            await self.conversations.append_turn(str(conversation.get("id")), t.record.input_items, resp)

    async def retrieve(self, response_id: str, principal: Principal, include: list[str] | None = None,
                       deployment: Deployment | None = None) -> dict[str, Any]:
        t = await self._target(response_id, principal, deployment)
        # in_progress at a stateful upstream: a background response, or a stream whose client left
        live = t.record.status in NON_TERMINAL
        if t.upstream is not None and (live or include or not t.stored):
            try:
                resp = self._from_upstream(
                    await t.upstream.retrieve(t.deployment, t.upstream_id, [("include[]", i) for i in include or []],
                                      self._require_http()), t)
            except RespgateError:
                if live or not t.stored:
                    raise
                return t.record.response
            if t.stored and resp.get("status") != t.record.status:
                await self._settle(t, resp)
            return resp
        return t.record.response

    async def retrieve_stream(self, response_id: str, principal: Principal, starting_after: int | None,
                              deployment: Deployment | None = None) -> AsyncIterator[Event]:
        t = await self._target(response_id, principal, deployment)
        if t.upstream is not None and t.record.background and t.record.status in NON_TERMINAL:
            query = [("starting_after", str(starting_after))] if starting_after is not None else []
            return self._rewrite_stream(t.upstream.retrieve_stream(t.deployment, t.upstream_id, query,
                                                           self._require_http()), t)
        if t.record.background and t.upstream is None:
            # Ours: live from this process's run; running in another process: followed through the store's
            # checkpoints; finished: the events stored with the final state.
            run = self.background.get(response_id)
            if run is not None:
                return run.log.follow(starting_after)
            if t.record.status in NON_TERMINAL:
                return self._follow_stored(response_id, starting_after)
            stored = await self.store.events(response_id)
            if stored is not None:
                start = 0 if starting_after is None else starting_after + 1
                return _iterate([Event.of(orjson.loads(raw)) for raw in stored[max(start, 0):]])
        return _iterate([Event.of(e) for e in replay(t.record.response)
                         if starting_after is None or e["sequence_number"] > starting_after])

    async def _follow_stored(self, response_id: str, starting_after: int | None) -> AsyncIterator[Event]:
        """A background run of another process, followed through its stored checkpoints until its final
        state is stored (events and status are written together); given up after FOLLOW_IDLE_SECONDS
        without progress. A final state without its terminal event (its process died, and a restart
        failed it) ends with that event made from the stored response."""
        sent = 0 if starting_after is None else starting_after + 1
        loop = asyncio.get_running_loop()
        idle_until = loop.time() + FOLLOW_IDLE_SECONDS
        while True:
            record = await self.store.get(response_id)
            events = await self.store.events(response_id) or []
            last: Event | None = None
            for raw in events[sent:]:
                last = Event.of(orjson.loads(raw))
                yield last
                sent += 1
                idle_until = loop.time() + FOLLOW_IDLE_SECONDS
            if record is None or record.status not in NON_TERMINAL:
                ended = bool(events) and Event.of(orjson.loads(events[-1])).is_terminal
                if record is not None and not ended and record.status in ("completed", "failed", "incomplete"):
                    yield Event.of({"type": f"response.{record.status}", "sequence_number": max(sent, len(events)),
                                    "response": record.response})
                return
            if loop.time() > idle_until:
                return
            await asyncio.sleep(FOLLOW_POLL_SECONDS)

    async def _rewrite_stream(self, events: AsyncIterator[Event], t: _Target) -> AsyncIterator[Event]:
        async for ev in events:
            if ev.type in LIFECYCLE and isinstance(ev.obj.get("response"), dict):
                self._from_upstream(ev.obj["response"], t)
                ev.changed()
                if ev.is_terminal and t.stored:
                    await self._settle(t, ev.obj["response"])
            yield ev

    async def delete(self, response_id: str, principal: Principal,
                     deployment: Deployment | None = None) -> dict[str, Any]:
        t = await self._target(response_id, principal, deployment)
        if t.upstream is not None:
            try:
                await t.upstream.delete(t.deployment, t.upstream_id, self._require_http())
            except RespgateError as e:
                if e.status != 404:  # already gone upstream: still ours to forget
                    raise
        elif not await self.background.stop(response_id, "deleted") and t.record.status in NON_TERMINAL:
            # Running in another process, whose next save would bring the row back: stopped there first.
            await self._cancel_elsewhere(t.record)
        await self.store.delete(response_id)
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    async def cancel(self, response_id: str, principal: Principal,
                     deployment: Deployment | None = None) -> dict[str, Any]:
        t = await self._target(response_id, principal, deployment)
        if not t.record.background:
            raise InvalidRequestError("Only responses created with background=true can be cancelled.",
                                      param="response_id", code="invalid_request")
        if t.upstream is None:
            # A finished response comes back unchanged (OpenAI's behaviour); a running one ends `cancelled`.
            if await self.background.stop(response_id, "cancelled"):
                record = await self.store.get(response_id)
                return record.response if record is not None else t.record.response
            if t.record.status in NON_TERMINAL:
                return await self._cancel_elsewhere(t.record)
            return t.record.response
        resp = self._from_upstream(
            await t.upstream.cancel(t.deployment, t.upstream_id, self._require_http()), t)
        if t.stored:
            await self._settle(t, resp)
        return resp

    async def _cancel_elsewhere(self, record: ResponseRecord) -> dict[str, Any]:
        """A run of another process: the cancel is stored, and that process stops the run at its next
        check and stores its own final state. A checkpoint racing the mark can overwrite it, so it is
        marked again whenever the run shows `in_progress`, for CANCEL_WAIT_SECONDS (more than two of
        the run's checks); the answer is what is stored then."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_WAIT_SECONDS
        current: ResponseRecord | None = record
        while current is not None and loop.time() < deadline:
            if current.status in NON_TERMINAL:
                current.status, current.response = "cancelled", {**current.response, "status": "cancelled"}
                await self.store.save(current)
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
            current = await self.store.get(record.id)
        return current.response if current is not None else {**record.response, "status": "cancelled"}

    async def input_items(self, response_id: str, principal: Principal, *, limit: int = 20,
                          after: str | None = None, before: str | None = None,
                          order: Literal["asc", "desc"] = "desc",
                          include: list[str] | None = None,
                          deployment: Deployment | None = None) -> dict[str, Any]:
        t = await self._target(response_id, principal, deployment)
        if t.upstream is not None:
            query = [("limit", str(limit)), ("order", order)]
            query += [("after", after)] if after else []
            query += [("before", before)] if before else []
            query += [("include[]", i) for i in include or []]
            return await t.upstream.input_items(t.deployment, t.upstream_id, query,
                                                                         self._require_http())
        items, has_more = await self.store.input_items(response_id, limit=limit, after=after, before=before,
                                                       order=order)
        return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
                "last_id": items[-1]["id"] if items else None, "has_more": has_more}


def _orphan(record: ResponseRecord) -> Deployment:
    return Deployment(model_name=record.model, provider=record.provider, upstream_model=record.model,
                      id=record.deployment_id)


async def _iterate(events: list[Event]) -> AsyncIterator[Event]:
    for e in events:
        yield e
