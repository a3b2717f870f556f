"""PostgreSQL: conversations and their items, and the retention purge (mixed into `PostgresStore`).

These writes are rare next to response saves, so each is its own transaction on `_run` (which
retries a lost connection once) rather than a member of the group commit. Appends to one
conversation lock its row first, so concurrent turns get distinct, ordered `seq`s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson

from respgate.store.base import ConversationRecord, Purged
from respgate.store.sqlite_conversations import serialise_items

if TYPE_CHECKING:
    from respgate.store.postgres import Conn

T = TypeVar("T")

CONVERSATION_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    metadata TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations (updated_at);
CREATE TABLE IF NOT EXISTS conversation_items (
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    item_id TEXT,
    item TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX IF NOT EXISTS conversation_items_by_item_id ON conversation_items (conversation_id, item_id);
CREATE INDEX IF NOT EXISTS responses_by_created_at ON responses (created_at);
"""

_UPSERT = (
    "INSERT INTO conversations (id, owner, created_at, metadata, updated_at) VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (id) DO UPDATE SET metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at"
)
_APPEND = """
INSERT INTO conversation_items (conversation_id, seq, item_id, item)
SELECT $1, (SELECT coalesce(max(seq), -1) FROM conversation_items WHERE conversation_id = $1) + n, i, t
FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(i, t, n)
"""
_OLD_RESPONSES = "SELECT id FROM responses WHERE created_at < $1 AND status NOT IN ('queued', 'in_progress')"


async def _append(conn: Conn, conversation_id: str, items: list[tuple[str | None, str]]) -> None:
    if items:
        await conn.execute(_APPEND, conversation_id, [i for i, _ in items], [t for _, t in items])


class PostgresConversations:
    if TYPE_CHECKING:
        async def _run(self, work: Callable[[Conn], Awaitable[T]]) -> T: ...
        def _check_open(self) -> None: ...

    async def save_conversation(self, conversation: ConversationRecord,
                                items: Sequence[dict[str, Any]] = ()) -> None:
        self._check_open()
        row = (conversation.id, conversation.owner, conversation.created_at,
               orjson.dumps(conversation.metadata).decode(), conversation.updated_at)
        texts = serialise_items(items)

        async def work(conn: Conn) -> None:
            async with conn.transaction():
                await conn.execute(_UPSERT, *row)  # locks the row: appends take turns
                await _append(conn, row[0], texts)

        await self._run(work)

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        self._check_open()
        row = await self._run(lambda conn: conn.fetchrow(
            "SELECT id, owner, created_at, metadata, updated_at FROM conversations WHERE id = $1", conversation_id))
        if row is None:
            return None
        return ConversationRecord(row[0], row[1], row[2], orjson.loads(row[3]), row[4])

    async def delete_conversation(self, conversation_id: str) -> bool:
        self._check_open()

        async def work(conn: Conn) -> bool:
            async with conn.transaction():
                await conn.execute("DELETE FROM conversation_items WHERE conversation_id = $1", conversation_id)
                return await conn.fetchval("DELETE FROM conversations WHERE id = $1 RETURNING 1",
                                           conversation_id) is not None

        return await self._run(work)

    async def add_conversation_items(self, conversation_id: str, items: Sequence[dict[str, Any]],
                                     now: float) -> bool:
        self._check_open()
        texts = serialise_items(items)

        async def work(conn: Conn) -> bool:
            async with conn.transaction():
                found = await conn.fetchval("UPDATE conversations SET updated_at = $2 WHERE id = $1 RETURNING 1",
                                            conversation_id, now)  # also locks the row: appends take turns
                if found is None:
                    return False
                await _append(conn, conversation_id, texts)
                return True

        return await self._run(work)

    async def conversation_items(
        self, conversation_id: str, *, limit: int = 20, after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> tuple[list[dict[str, Any]], bool]:
        self._check_open()
        asc = order == "asc"
        conds = ["conversation_id = $1"]
        params: list[str | int] = [conversation_id]
        if after is not None:
            params.append(after)
            # An unknown cursor's seq is NULL: the comparison is never true, so the page is empty.
            conds.append(f"seq {'>' if asc else '<'} (SELECT min(seq) FROM conversation_items"  # noqa: S608
                         " WHERE conversation_id = $1 AND item_id = $2)")
        params.append(limit + 1)
        sql = (f"SELECT item FROM conversation_items WHERE {' AND '.join(conds)}"  # noqa: S608
               f" ORDER BY seq {'ASC' if asc else 'DESC'} LIMIT ${len(params)}")
        rows = await self._run(lambda conn: conn.fetch(sql, *params))
        return [orjson.loads(row[0]) for row in rows[:limit]], len(rows) > limit

    async def conversation_history(self, conversation_id: str) -> list[dict[str, Any]]:
        self._check_open()
        rows = await self._run(lambda conn: conn.fetch(
            "SELECT item FROM conversation_items WHERE conversation_id = $1 ORDER BY seq", conversation_id))
        return [orjson.loads(row[0]) for row in rows]

    async def conversation_item(self, conversation_id: str, item_id: str) -> dict[str, Any] | None:
        self._check_open()
        text = await self._run(lambda conn: conn.fetchval(
            "SELECT item FROM conversation_items WHERE conversation_id = $1 AND item_id = $2 ORDER BY seq LIMIT 1",
            conversation_id, item_id))
        return orjson.loads(text) if text is not None else None

    async def delete_conversation_item(self, conversation_id: str, item_id: str, now: float) -> bool:
        self._check_open()

        async def work(conn: Conn) -> bool:
            async with conn.transaction():
                deleted = await conn.fetch(
                    "DELETE FROM conversation_items WHERE conversation_id = $1 AND item_id = $2 RETURNING 1",
                    conversation_id, item_id)
                if deleted:
                    await conn.execute("UPDATE conversations SET updated_at = $2 WHERE id = $1", conversation_id, now)
                return bool(deleted)

        return await self._run(work)

    async def purge(self, before: float) -> Purged:
        self._check_open()

        async def work(conn: Conn) -> Purged:
            async with conn.transaction():
                ids = [row[0] for row in await conn.fetch(_OLD_RESPONSES + " FOR UPDATE SKIP LOCKED", before)]
                if ids:
                    await conn.execute("DELETE FROM input_items WHERE response_id = ANY($1::text[])", ids)
                    await conn.execute("DELETE FROM response_events WHERE response_id = ANY($1::text[])", ids)
                    await conn.execute("DELETE FROM responses WHERE id = ANY($1::text[])", ids)
                convs = [row[0] for row in await conn.fetch(
                    "SELECT id FROM conversations WHERE updated_at < $1 FOR UPDATE SKIP LOCKED", before)]
                if convs:
                    await conn.execute("DELETE FROM conversation_items WHERE conversation_id = ANY($1::text[])", convs)
                    await conn.execute("DELETE FROM conversations WHERE id = ANY($1::text[])", convs)
                return Purged(len(ids), len(convs))

        return await self._run(work)
