"""The store in dicts: for the SDK without a database, and for tests.

Records are copied through orjson on the way in and out, so it behaves like a database: a value
that is not JSON fails at save, and mutating a saved or returned dict changes nothing stored.
Nothing survives the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import orjson

from respgate.store.base import ResponseRecord
from respgate.store.sqlite import RESTARTED_ERROR, check_page_args

_UNFINISHED = frozenset({"queued", "in_progress"})


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, ResponseRecord] = {}
        self._events: dict[str, list[bytes]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
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

    async def mark_unfinished_failed(self, keep_providers: frozenset[str] = frozenset()) -> int:
        marked = 0
        for record in self._records.values():
            if record.status in _UNFINISHED and record.provider not in keep_providers:
                record.status = "failed"
                record.response["status"] = "failed"
                record.response["error"] = dict(RESTARTED_ERROR)
                marked += 1
        return marked


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
