"""The store in dicts: for the SDK without a database, and for tests.

Records are copied through orjson on the way in and out, so it behaves like a database: a value
that is not JSON fails at save, and mutating a saved or returned dict changes nothing stored.
Nothing survives the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import orjson

from respgate.store import listing
from respgate.store.base import ConversationRecord, Purged, ResponseQuery, ResponseRecord, ResponseSummary
from respgate.store.sqlite import RESTARTED_ERROR, check_page_args

_UNFINISHED = frozenset({"queued", "in_progress"})


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, ResponseRecord] = {}
        self._events: dict[str, list[bytes]] = {}
        self._conversations: dict[str, ConversationRecord] = {}
        self._conversation_items: dict[str, list[dict[str, Any]]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check_writable(self) -> None:
        return None

    async def save(self, record: ResponseRecord, events: Sequence[bytes] | None = None) -> None:
        self._records[record.id] = _copy(record)
        if events is not None:
            self._events[record.id] = list(events)

    async def events(self, response_id: str) -> list[bytes] | None:
        events = self._events.get(response_id)
        return list(events) if events is not None else None

    async def get(self, response_id: str) -> ResponseRecord | None:
        record = self._records.get(response_id)
        return _copy(record) if record is not None else None

    async def delete(self, response_id: str) -> bool:
        self._events.pop(response_id, None)
        return self._records.pop(response_id, None) is not None

    async def chain(self, response_id: str, limit: int = 1000) -> list[ResponseRecord]:
        found: list[ResponseRecord] = []
        record = self._records.get(response_id)
        while record is not None and len(found) < max(limit, 1):
            found.append(_copy(record))
            previous = record.previous_response_id
            record = self._records.get(previous) if previous is not None else None
        found.reverse()
        return found

    async def input_items(
        self,
        response_id: str,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> tuple[list[dict[str, Any]], bool]:
        check_page_args(limit, order)
        record = self._records.get(response_id)
        if record is None:
            return [], False
        items = record.input_items if order == "asc" else record.input_items[::-1]
        ids = [item.get("id") for item in items]
        start, end = 0, len(items)
        if after is not None:
            if after not in ids:
                return [], False
            start = ids.index(after) + 1
        if before is not None:
            if before not in ids:
                return [], False
            end = ids.index(before)
        window = items[start:end]
        if after is None and before is not None:  # the page just ahead of `before`
            page, has_more = window[-limit:], len(window) > limit
        else:
            page, has_more = window[:limit], len(window) > limit
        return [orjson.loads(orjson.dumps(item)) for item in page], has_more

    async def list_responses(self, query: ResponseQuery) -> tuple[list[ResponseSummary], bool]:
        listing.check(query)
        summaries = (ResponseSummary(r.id, r.owner, r.model, r.deployment_id, r.provider, r.status, r.created_at,
                                     r.previous_response_id, r.background, None) for r in self._records.values())
        page, more = listing.newest_first(summaries, query)
        for s in page:  # the usage of the page's responses only
            s.usage = _usage(self._records[s.id].response)
        return page, more

    async def mark_unfinished_failed(self, keep_providers: frozenset[str] = frozenset()) -> int:
        marked = 0
        for record in self._records.values():
            if record.status in _UNFINISHED and record.provider not in keep_providers:
                record.status = "failed"
                record.response["status"] = "failed"
                record.response["error"] = dict(RESTARTED_ERROR)
                marked += 1
        return marked


    # -- conversations -------------------------------------------------------------------------

    async def save_conversation(self, conversation: ConversationRecord,
                                items: Sequence[dict[str, Any]] = ()) -> None:
        self._conversations[conversation.id] = ConversationRecord(
            conversation.id, conversation.owner, conversation.created_at, dict(conversation.metadata),
            conversation.updated_at)
        self._conversation_items.setdefault(conversation.id, []).extend(_json_copy(list(items)))

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        found = self._conversations.get(conversation_id)
        if found is None:
            return None
        return ConversationRecord(found.id, found.owner, found.created_at, dict(found.metadata), found.updated_at)

    async def delete_conversation(self, conversation_id: str) -> bool:
        self._conversation_items.pop(conversation_id, None)
        return self._conversations.pop(conversation_id, None) is not None

    async def add_conversation_items(self, conversation_id: str, items: Sequence[dict[str, Any]],
                                     now: float) -> bool:
        found = self._conversations.get(conversation_id)
        if found is None:
            return False
        found.updated_at = now
        self._conversation_items[conversation_id].extend(_json_copy(list(items)))
        return True

    async def conversation_items(
        self, conversation_id: str, *, limit: int = 20, after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> tuple[list[dict[str, Any]], bool]:
        items = self._conversation_items.get(conversation_id, [])
        if order == "desc":
            items = items[::-1]
        if after is not None:
            ids = [item.get("id") for item in items]
            if after not in ids:
                return [], False
            items = items[ids.index(after) + 1:]
        return _json_copy(items[:limit]), len(items) > limit

    async def conversation_history(self, conversation_id: str) -> list[dict[str, Any]]:
        return _json_copy(self._conversation_items.get(conversation_id, []))

    async def conversation_item(self, conversation_id: str, item_id: str) -> dict[str, Any] | None:
        for item in self._conversation_items.get(conversation_id, []):
            if item.get("id") == item_id:
                return _json_copy([item])[0]
        return None

    async def delete_conversation_item(self, conversation_id: str, item_id: str, now: float) -> bool:
        items = self._conversation_items.get(conversation_id, [])
        kept = [item for item in items if item.get("id") != item_id]
        if len(kept) == len(items):
            return False
        self._conversation_items[conversation_id] = kept
        self._conversations[conversation_id].updated_at = now
        return True

    async def purge(self, before: float) -> Purged:
        old = [r.id for r in self._records.values() if r.created_at < before and r.status not in _UNFINISHED]
        for response_id in old:
            await self.delete(response_id)
        stale = [c.id for c in self._conversations.values() if c.updated_at < before]
        for conversation_id in stale:
            await self.delete_conversation(conversation_id)
        return Purged(len(old), len(stale))


def _copy(record: ResponseRecord) -> ResponseRecord:
    return ResponseRecord(
        id=record.id,
        owner=record.owner,
        model=record.model,
        deployment_id=record.deployment_id,
        provider=record.provider,
        status=record.status,
        created_at=record.created_at,
        previous_response_id=record.previous_response_id,
        response=orjson.loads(orjson.dumps(record.response)),
        input_items=orjson.loads(orjson.dumps(record.input_items)),
        background=record.background,
    )


def _usage(response: dict[str, Any]) -> dict[str, Any] | None:
    usage = response.get("usage")
    return orjson.loads(orjson.dumps(usage)) if isinstance(usage, dict) else None


def _json_copy(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    copied: list[dict[str, Any]] = orjson.loads(orjson.dumps(items))
    return copied
