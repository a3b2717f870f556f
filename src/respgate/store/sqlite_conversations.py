"""SQLite: conversations and their items, and the retention purge (mixed into `SqliteStore`).

Writes go through the store's group commit (`_write`), reads through its reader pool (`_read`),
so they share the durability and snapshot rules of the module docstring of `sqlite.py`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson

from respgate.store.base import ConversationRecord, Purged

T = TypeVar("T")

CONVERSATION_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at REAL NOT NULL,
    metadata TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations (updated_at);
CREATE TABLE IF NOT EXISTS conversation_items (
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    item_id TEXT,
    item TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversation_items_by_item_id ON conversation_items (conversation_id, item_id);
CREATE INDEX IF NOT EXISTS responses_by_created_at ON responses (created_at);
"""

_UPSERT = (
    "INSERT INTO conversations (id, owner, created_at, metadata, updated_at) VALUES (?,?,?,?,?)"
    " ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata, updated_at = excluded.updated_at"
)
_FINISHED_BEFORE = "created_at < ? AND status NOT IN ('queued', 'in_progress')"


def _append(conn: sqlite3.Connection, conversation_id: str, items: list[tuple[str | None, str]]) -> None:
    row = conn.execute("SELECT coalesce(max(seq), -1) FROM conversation_items WHERE conversation_id = ?",
                       (conversation_id,)).fetchone()
    start = int(row[0]) + 1
    conn.executemany(
        "INSERT INTO conversation_items (conversation_id, seq, item_id, item) VALUES (?,?,?,?)",
        [(conversation_id, start + n, item_id, text) for n, (item_id, text) in enumerate(items)],
    )


def serialise_items(items: Sequence[dict[str, Any]]) -> list[tuple[str | None, str]]:
    """(id, JSON text) per item; made by the caller so a non-JSON value fails there (shared with PostgreSQL)."""
    return [(i.get("id") if isinstance(i.get("id"), str) else None, orjson.dumps(i).decode()) for i in items]


class SqliteConversations:
    if TYPE_CHECKING:
        async def _write(self, apply: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T: ...

    async def save_conversation(self, conversation: ConversationRecord,
                                items: Sequence[dict[str, Any]] = ()) -> None:
        row = (conversation.id, conversation.owner, conversation.created_at,
               orjson.dumps(conversation.metadata).decode(), conversation.updated_at)
        texts = serialise_items(items)

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT, row)
            _append(conn, row[0], texts)

        await self._write(apply)

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        def read(conn: sqlite3.Connection) -> ConversationRecord | None:
            row = conn.execute("SELECT id, owner, created_at, metadata, updated_at FROM conversations"
                               " WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                return None
            return ConversationRecord(row[0], row[1], row[2], orjson.loads(row[3]), row[4])

        return await self._read(read)

    async def delete_conversation(self, conversation_id: str) -> bool:
        def apply(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM conversation_items WHERE conversation_id = ?", (conversation_id,))
            return conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount > 0

        return await self._write(apply)

    async def add_conversation_items(self, conversation_id: str, items: Sequence[dict[str, Any]],
                                     now: float) -> bool:
        texts = serialise_items(items)

        def apply(conn: sqlite3.Connection) -> bool:
            if conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?",
                            (now, conversation_id)).rowcount == 0:
                return False
            _append(conn, conversation_id, texts)
            return True

        return await self._write(apply)

    async def conversation_items(
        self, conversation_id: str, *, limit: int = 20, after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> tuple[list[dict[str, Any]], bool]:
        def read(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], bool]:
            conn.execute("BEGIN")
            try:
                return _page(conn, conversation_id, limit, after, order)
            finally:
                conn.execute("COMMIT")

        return await self._read(read)

    async def conversation_history(self, conversation_id: str) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute("SELECT item FROM conversation_items WHERE conversation_id = ? ORDER BY seq",
                                (conversation_id,)).fetchall()
            return [orjson.loads(row[0]) for row in rows]

        return await self._read(read)

    async def conversation_item(self, conversation_id: str, item_id: str) -> dict[str, Any] | None:
        def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute("SELECT item FROM conversation_items WHERE conversation_id = ? AND item_id = ?"
                               " ORDER BY seq LIMIT 1", (conversation_id, item_id)).fetchone()
            return orjson.loads(row[0]) if row is not None else None

        return await self._read(read)

    async def delete_conversation_item(self, conversation_id: str, item_id: str, now: float) -> bool:
        def apply(conn: sqlite3.Connection) -> bool:
            deleted = conn.execute("DELETE FROM conversation_items WHERE conversation_id = ? AND item_id = ?",
                                   (conversation_id, item_id)).rowcount > 0
            if deleted:
                conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
            return deleted

        return await self._write(apply)

    async def purge(self, before: float) -> Purged:
        def apply(conn: sqlite3.Connection) -> Purged:
            old = f"SELECT id FROM responses WHERE {_FINISHED_BEFORE}"  # noqa: S608
            conn.execute(f"DELETE FROM input_items WHERE response_id IN ({old})", (before,))  # noqa: S608
            conn.execute(f"DELETE FROM response_events WHERE response_id IN ({old})", (before,))  # noqa: S608
            responses = conn.execute(f"DELETE FROM responses WHERE {_FINISHED_BEFORE}", (before,)).rowcount  # noqa: S608
            conn.execute("DELETE FROM conversation_items WHERE conversation_id IN"
                         " (SELECT id FROM conversations WHERE updated_at < ?)", (before,))
            conversations = conn.execute("DELETE FROM conversations WHERE updated_at < ?", (before,)).rowcount
            return Purged(responses, conversations)

        return await self._write(apply)


def _page(conn: sqlite3.Connection, conversation_id: str, limit: int, after: str | None,
          order: str) -> tuple[list[dict[str, Any]], bool]:
    asc = order == "asc"
    conds = ["conversation_id = ?"]
    params: list[str | int] = [conversation_id]
    if after is not None:
        row = conn.execute("SELECT min(seq) FROM conversation_items WHERE conversation_id = ? AND item_id = ?",
                           (conversation_id, after)).fetchone()
        if row[0] is None:
            return [], False
        conds.append("seq > ?" if asc else "seq < ?")
        params.append(row[0])
    sql = (f"SELECT item FROM conversation_items WHERE {' AND '.join(conds)}"  # noqa: S608
           f" ORDER BY seq {'ASC' if asc else 'DESC'} LIMIT ?")
    texts = [row[0] for row in conn.execute(sql, (*params, limit + 1))]
    return [orjson.loads(t) for t in texts[:limit]], len(texts) > limit
