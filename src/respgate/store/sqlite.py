"""The embedded store: SQLite in WAL mode, with group commit.

`save()` serialises the record (so the caller may keep mutating its dicts and a non-JSON value
fails in the caller) and awaits a future. Writes are grouped on the event loop itself: every save
made in one loop iteration joins one transaction, committed in the next iteration on a connection
owned by the loop (`busy_timeout` 0, so the loop never waits on a lock). That costs one commit
(tens of µs, no fsync in WAL with synchronous=NORMAL) instead of two thread hand-offs per request,
which is what decides latency on a gateway pinned to one core. When the database is locked, or
the save comes from another loop, the batch goes to the writer thread instead, which waits up to
`busy_timeout` and drains everything queued into a single transaction. WAL checkpoints (the only
step that fsyncs) run on the writer thread, never on the loop.

`synchronous=NORMAL` in WAL mode means a commit is in the OS before the future resolves, so a
killed process loses nothing a client was told about (a power cut may lose the last commits; that
is the documented trade).

Reads run on the loop by default (`inline_reads`; a small thread pool otherwise), on their own
connections; WAL lets them proceed while the writer commits, and each read sees every commit that
finished before it started.

Any SQLite failure (locked past the busy timeout, disk full, file unwritable) fails the batch
with `ServiceUnavailableError`; the writer drops its connection and opens a fresh one for the
next batch, so the store recovers when the cause goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from respgate.errors import InvalidRequestError, ServiceUnavailableError
from respgate.store import listing
from respgate.store.base import ResponseQuery, ResponseRecord, ResponseSummary
from respgate.store.migrations import Migration, apply_sqlite
from respgate.store.sqlite_conversations import CONVERSATION_SCHEMA, SqliteConversations

log = logging.getLogger(__name__)

T = TypeVar("T")

_UNAVAILABLE = "The response store is unavailable; try again later."
# What a response cut off by a restart reports (shared with the memory store).
RESTARTED_ERROR = {
    "code": "server_error",
    "message": "The gateway restarted while this response was running.",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    model TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    previous_response_id TEXT,
    background INTEGER NOT NULL DEFAULT 0,
    response TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_unfinished ON responses (status)
    WHERE status IN ('queued', 'in_progress');
CREATE TABLE IF NOT EXISTS input_items (
    response_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    item_id TEXT,
    item TEXT NOT NULL,
    PRIMARY KEY (response_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS input_items_by_item_id ON input_items (response_id, item_id);
CREATE TABLE IF NOT EXISTS response_events (
    response_id TEXT PRIMARY KEY,
    events BLOB NOT NULL  -- the serialised events joined by newlines (JSON never holds a raw one)
);
"""

# The store's schema, version by version (store/migrations.py). Never edit a released one: add the next.
MIGRATIONS = (
    Migration(1, "responses, input items, events, conversations", _SCHEMA + CONVERSATION_SCHEMA),
    Migration(2, "indexes for listing responses (admin UI)", listing.INDEXES),
    # SQLite skips a write that changes nothing, so `check_writable` needs a value of its own to change.
    Migration(3, "a row the store rewrites to check that it can write",
              "CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, written_at REAL NOT NULL)"),
)

_UPSERT = (
    "INSERT OR REPLACE INTO responses (id, owner, model, deployment_id, provider, status, created_at,"
    " previous_response_id, background, response, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_GET = (
    "SELECT id, owner, model, deployment_id, provider, status, created_at, previous_response_id,"
    " background, response FROM responses WHERE id = ?"
)
_INSERT_ITEM = "INSERT INTO input_items (response_id, seq, item_id, item) VALUES (?,?,?,?)"

# Walks previous_response_id from the record up; depth bounds both the page and any cycle.
_CHAIN = (
    "WITH RECURSIVE chain(id, depth) AS ("
    " SELECT id, 0 FROM responses WHERE id = ?"
    " UNION ALL"
    " SELECT r.previous_response_id, c.depth + 1 FROM responses r JOIN chain c ON r.id = c.id"
    " WHERE r.previous_response_id IS NOT NULL AND c.depth + 1 < ?"
    ") SELECT r.id, r.owner, r.model, r.deployment_id, r.provider, r.status, r.created_at,"
    " r.previous_response_id, r.background, r.response"
    " FROM chain c JOIN responses r ON r.id = c.id ORDER BY c.depth DESC"
)
_ITEMS_OF = (
    "SELECT response_id, item FROM input_items"
    " WHERE response_id IN (SELECT value FROM json_each(?)) ORDER BY response_id, seq"
)


@dataclass(slots=True)
class _Write:
    """One queued write: what to run on the writer's connection, and whom to tell."""

    apply: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_STOP = object()
_CHECKPOINT = object()  # asks the writer thread for a WAL checkpoint
_CHECKPOINT_EVERY = 256  # inline commits between checkpoints
# A passive checkpoint never finishes while the loop keeps committing, and a WAL is only rewritten from its
# start after one has; past this size the writer thread truncates it. A truncation must find no writer at
# all, and the loop would take the lock back between its busy-waits for ever: so until it is done the
# loop's saves go to the writer thread's queue, behind it (`_draining`).
WAL_LIMIT = 64 * 1024 * 1024


class SqliteStore(SqliteConversations):
    """`Store` on one SQLite file. `commits` counts committed write transactions."""

    def __init__(self, path: str, *, busy_timeout: float = 5.0, readers: int = 2,
                 inline_writes: bool = True, inline_reads: bool = True, wal_limit: int = WAL_LIMIT) -> None:
        self.path = str(Path(path).expanduser())
        self.busy_timeout = busy_timeout
        self.wal_limit = wal_limit
        self.commits = 0
        self._readers = readers
        self._queue: queue.SimpleQueue[_Write | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._read_conns_lock = threading.Lock()
        # The on-loop write path (see the module docstring).
        self.inline_writes = inline_writes
        self.inline_reads = inline_reads
        self._inline_loop: asyncio.AbstractEventLoop | None = None
        self._inline_conn: sqlite3.Connection | None = None
        self._pending: list[_Write] = []
        self._inline_commits = 0
        self._draining = False  # a truncating checkpoint is queued: saves go through the writer thread

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the threads and create the tables. An unavailable file is logged, not fatal:
        saves fail with 503 until it becomes writable, and then the store recovers by itself."""
        if self._writer is not None:
            return
        with contextlib.suppress(OSError):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Migrations first: a schema from a newer respgate stops the start here (SchemaTooNewError);
        # a file not writable yet is reported by the first write below.
        with contextlib.suppress(sqlite3.Error):
            await asyncio.to_thread(lambda: self._connect(writer=True).close())
        self._writer = threading.Thread(target=self._run_writer, name="respgate-store-writer", daemon=True)
        self._writer.start()
        self._read_pool = ThreadPoolExecutor(self._readers, thread_name_prefix="respgate-store-read")
        try:
            await self._write(lambda conn: None)
        except ServiceUnavailableError:
            log.warning("response store %s is not writable yet; saves will fail until it is", self.path)

    async def close(self) -> None:
        writer, pool = self._writer, self._read_pool
        if writer is None or pool is None:
            return
        self._writer = self._read_pool = None
        if self._pending:  # saves made in this very iteration: commit them before stopping
            self._flush_inline()
        if self._inline_conn is not None:
            self._inline_conn.close()
            self._inline_conn = None
        self._queue.put(_STOP)  # after every write already queued, which still commits
        await asyncio.to_thread(writer.join)
        await asyncio.to_thread(pool.shutdown, True)
        with self._read_conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    # -- writes ------------------------------------------------------------------------------

    async def save(self, record: ResponseRecord, events: Sequence[bytes] | None = None) -> None:
        row = (
            record.id,
            record.owner,
            record.model,
            record.deployment_id,
            record.provider,
            record.status,
            record.created_at,
            record.previous_response_id,
            int(record.background),
            orjson.dumps(record.response).decode(),
            time.time(),
        )
        items = [
            (record.id, seq, _item_id(item), orjson.dumps(item).decode())
            for seq, item in enumerate(record.input_items)
        ]
        blob = join_events(events) if events is not None else None

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT, row)
            conn.execute("DELETE FROM input_items WHERE response_id = ?", (row[0],))
            conn.executemany(_INSERT_ITEM, items)
            if blob is not None:
                conn.execute("INSERT OR REPLACE INTO response_events (response_id, events) VALUES (?, ?)",
                             (row[0], blob))

        await self._write(apply)

    async def check_writable(self) -> None:
        # Takes the write lock and changes a page, as a save does (a locked file or a full disk fail here).
        now = time.time()
        await self._write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO store_probe (id, written_at) VALUES (1, ?)", (now,)))

    async def delete(self, response_id: str) -> bool:
        def apply(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM input_items WHERE response_id = ?", (response_id,))
            conn.execute("DELETE FROM response_events WHERE response_id = ?", (response_id,))
            return conn.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0

        return await self._write(apply)

    async def mark_unfinished_failed(self, keep_providers: frozenset[str] = frozenset()) -> int:
        def apply(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT id, response FROM responses WHERE status IN ('queued', 'in_progress')"
                " AND provider NOT IN (SELECT value FROM json_each(?))",
                (orjson.dumps(sorted(keep_providers)).decode(),),
            ).fetchall()
            now = time.time()
            for response_id, text in rows:
                response = orjson.loads(text)
                response["status"] = "failed"
                response["error"] = dict(RESTARTED_ERROR)
                conn.execute(
                    "UPDATE responses SET status = 'failed', response = ?, updated_at = ? WHERE id = ?",
                    (orjson.dumps(response).decode(), now, response_id),
                )
            return len(rows)

        return await self._write(apply)

    async def _write(self, apply: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise ServiceUnavailableError("The response store is closed.")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        write = _Write(apply, future, loop)
        if self.inline_writes and self._inline_loop in (None, loop) and not self._draining:
            self._inline_loop = loop
            if not self._pending:
                loop.call_soon(self._flush_inline)
            self._pending.append(write)
        else:
            self._queue.put(write)
        return await future

    def _flush_inline(self) -> None:
        """Commit every save of the last loop iteration in one transaction, on the loop's connection."""
        batch, self._pending = self._pending, []
        conn = self._inline_conn
        try:
            if conn is None:
                conn = self._inline_conn = self._connect(writer=True)
                conn.execute("PRAGMA busy_timeout=0")
                conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints fsync: the writer thread does them
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            # Locked by another process, or the file is not openable: the writer thread waits and reports.
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._inline_conn = None
            for write in batch:
                self._queue.put(write)
            return
        try:
            values = [write.apply(conn) for write in batch]
            conn.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            error: BaseException = exc
            if isinstance(exc, sqlite3.Error):
                log.warning("response store write failed: %s", exc)
                error = ServiceUnavailableError(_UNAVAILABLE)
                # A fresh connection next time: SQLite opens a file it may not write read-only, and keeps
                # it so after the file becomes writable.
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
                self._inline_conn = None
            for write in batch:
                if not write.future.done():
                    write.future.set_exception(_fresh(error))
            return
        self.commits += 1
        self._inline_commits += 1
        for write, value in zip(batch, values, strict=True):
            if not write.future.done():
                write.future.set_result(value)
        if self._inline_commits % _CHECKPOINT_EVERY == 0:
            self._draining = wal_size(self.path) > self.wal_limit
            self._queue.put(_CHECKPOINT)

    # -- the writer thread -------------------------------------------------------------------

    def _run_writer(self) -> None:
        conn: sqlite3.Connection | None = None
        stopping = False
        while not stopping:
            first = self._queue.get()
            batch: list[_Write] = []
            item: _Write | object = first
            while True:
                if item is _STOP:
                    stopping = True
                    break
                if item is _CHECKPOINT:
                    conn = self._checkpoint(conn)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    continue
                assert isinstance(item, _Write)
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                conn = self._commit_batch(conn, batch)
        if conn is not None:
            conn.close()

    def _commit_batch(
        self, conn: sqlite3.Connection | None, batch: list[_Write]
    ) -> sqlite3.Connection | None:
        """Run the batch in one transaction and settle its futures; returns the connection to
        keep (None after a failure, so the next batch starts on a fresh one)."""
        results: list[tuple[_Write, Any, BaseException | None]]
        try:
            if conn is None:
                conn = self._connect(writer=True)
            conn.execute("BEGIN IMMEDIATE")
            values = [write.apply(conn) for write in batch]
            conn.execute("COMMIT")
            self.commits += 1
            results = [(write, value, None) for write, value in zip(batch, values, strict=True)]
        except Exception as exc:  # the writer must outlive any one batch
            error: BaseException = exc
            if isinstance(exc, sqlite3.Error):
                log.warning("response store write failed: %s", exc)
                error = ServiceUnavailableError(_UNAVAILABLE)
            else:
                log.exception("response store write raised")
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            conn = None
            results = [(write, None, _fresh(error)) for write in batch]
        _settle_batch(results)
        return conn

    def _checkpoint(self, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
        try:
            if conn is None:
                conn = self._connect(writer=True)
            checkpoint(conn, self.path, self.wal_limit)
        except sqlite3.Error as exc:
            log.warning("response store checkpoint failed: %s", exc)
        finally:
            self._draining = False  # the loop commits again (a failed truncation is retried later)
        return conn

    # -- reads -------------------------------------------------------------------------------

    async def get(self, response_id: str) -> ResponseRecord | None:
        def read(conn: sqlite3.Connection) -> ResponseRecord | None:
            records = self._load(conn, _GET, (response_id,))
            return records[0] if records else None

        return await self._read(read)

    async def events(self, response_id: str) -> list[bytes] | None:
        def read(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT events FROM response_events WHERE response_id = ?",
                               (response_id,)).fetchone()
            return bytes(row[0]) if row is not None else None

        blob = await self._read(read)
        return split_events(blob) if blob is not None else None

    async def chain(self, response_id: str, limit: int = 1000) -> list[ResponseRecord]:
        return await self._read(lambda conn: self._load(conn, _CHAIN, (response_id, max(limit, 1))))

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

        def read(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], bool]:
            conn.execute("BEGIN")
            try:
                return _page_items(conn, response_id, limit, after, before, order)
            finally:
                conn.execute("COMMIT")

        return await self._read(read)

    async def list_responses(self, query: ResponseQuery) -> tuple[list[ResponseSummary], bool]:
        listing.check(query)
        sql, params = listing.list_sql(query, "sqlite")
        pool = self._read_pool
        if pool is None:
            raise ServiceUnavailableError("The response store is closed.")
        # Off the loop even with inline reads: a search may scan the table, and requests must not wait on it.
        rows = await asyncio.get_running_loop().run_in_executor(
            pool, self._run_read, lambda conn: conn.execute(sql, params).fetchall())
        return listing.page(rows, query.limit)

    def _load(self, conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[ResponseRecord]:
        """Records with their input items, read in one snapshot."""
        conn.execute("BEGIN")
        try:
            rows = conn.execute(sql, params).fetchall()
            if not rows:
                return []
            items: dict[str, list[dict[str, Any]]] = {row[0]: [] for row in rows}
            for response_id, text in conn.execute(_ITEMS_OF, (orjson.dumps(list(items)).decode(),)):
                items[response_id].append(orjson.loads(text))
        finally:
            conn.execute("COMMIT")
        return [_record(row, items[row[0]]) for row in rows]

    async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        pool = self._read_pool
        if pool is None:
            raise ServiceUnavailableError("The response store is closed.")
        if self.inline_reads:
            # A WAL read never waits on the writer and takes tens of µs for a chain: cheaper on the loop
            # than the two thread hand-offs of the pool (which stays for callers that turn this off).
            return self._run_read(read)
        return await asyncio.get_running_loop().run_in_executor(pool, self._run_read, read)

    def _run_read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = self._connect(writer=False)
                self._local.conn = conn
                with self._read_conns_lock:
                    self._read_conns.append(conn)
            return read(conn)
        except sqlite3.Error as exc:
            log.warning("response store read failed: %s", exc)
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise ServiceUnavailableError(_UNAVAILABLE) from None

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit, so a read never holds a stale snapshot.
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            if writer:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                apply_sqlite(conn, "store", MIGRATIONS)
            else:
                conn.execute("PRAGMA query_only=1")
        except sqlite3.Error:
            conn.close()
            raise
        return conn


def wal_size(path: str) -> int:
    try:
        return os.stat(path + "-wal").st_size
    except OSError:
        return 0


def checkpoint(conn: sqlite3.Connection, path: str, wal_limit: int) -> None:
    """A passive checkpoint, or one that empties the WAL once it is past `wal_limit` (it waits for the
    writers of the moment). Shared with the spend log's SQLite file, whose writes wait for it."""
    conn.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if wal_size(path) > wal_limit else 'PASSIVE'})")


def join_events(events: Sequence[bytes]) -> bytes:
    """Serialised events as one value (shared with the PostgreSQL store). A newline in valid JSON can
    only be whitespace between tokens, so replacing it with a space frees it for the separator."""
    return b"\n".join(e.replace(b"\n", b" ") if b"\n" in e else e for e in events)


def split_events(blob: bytes) -> list[bytes]:
    return blob.split(b"\n") if blob else []


def check_page_args(limit: int, order: str) -> None:
    """The client-facing bounds of an input-items page (shared with the memory store)."""
    if not 1 <= limit <= 100:
        raise InvalidRequestError("limit must be between 1 and 100.", param="limit")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("order must be 'asc' or 'desc'.", param="order")


def _page_items(
    conn: sqlite3.Connection,
    response_id: str,
    limit: int,
    after: str | None,
    before: str | None,
    order: str,
) -> tuple[list[dict[str, Any]], bool]:
    """OpenAI's list page: from just past `after` walking in `order`, or else the `limit` items
    just ahead of `before`; either way bounded by the other cursor. An unknown cursor: empty."""
    cursors: dict[str, int] = {}
    for name, item_id in (("after", after), ("before", before)):
        if item_id is not None:
            row = conn.execute(
                "SELECT seq FROM input_items WHERE response_id = ? AND item_id = ? LIMIT 1",
                (response_id, item_id),
            ).fetchone()
            if row is None:
                return [], False
            cursors[name] = row[0]
    asc = order == "asc"
    conds: list[str] = ["response_id = ?"]
    params: list[str | int] = [response_id]
    if "after" in cursors:
        conds.append("seq > ?" if asc else "seq < ?")
        params.append(cursors["after"])
    if "before" in cursors:
        conds.append("seq < ?" if asc else "seq > ?")
        params.append(cursors["before"])
    # Walking back from `before` alone: read toward the list's start, then show in list order.
    backward = "before" in cursors and "after" not in cursors
    direction = "ASC" if asc != backward else "DESC"
    sql = f"SELECT item FROM input_items WHERE {' AND '.join(conds)} ORDER BY seq {direction} LIMIT ?"  # noqa: S608
    texts = [row[0] for row in conn.execute(sql, (*params, limit + 1))]
    has_more = len(texts) > limit
    page = [orjson.loads(text) for text in texts[:limit]]
    if backward:
        page.reverse()
    return page, has_more


def _record(row: tuple[Any, ...], items: list[dict[str, Any]]) -> ResponseRecord:
    return ResponseRecord(
        id=row[0],
        owner=row[1],
        model=row[2],
        deployment_id=row[3],
        provider=row[4],
        status=row[5],
        created_at=row[6],
        previous_response_id=row[7],
        background=bool(row[8]),
        response=orjson.loads(row[9]),
        input_items=items,
    )


def _item_id(item: dict[str, Any]) -> str | None:
    item_id = item.get("id")
    return item_id if isinstance(item_id, str) else None


def _fresh(error: BaseException) -> BaseException:
    """A new exception per future: a shared one would gather every caller's traceback."""
    if isinstance(error, ServiceUnavailableError):
        return ServiceUnavailableError(error.message)
    return error


def _settle_batch(results: Iterable[tuple[_Write, Any, BaseException | None]]) -> None:
    """Resolve futures with one thread-safe call per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Write, Any, BaseException | None]]] = {}
    for result in results:
        by_loop.setdefault(result[0].loop, []).append(result)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed while we wrote
            loop.call_soon_threadsafe(_resolve, settled)


def _resolve(settled: list[tuple[_Write, Any, BaseException | None]]) -> None:
    for write, value, error in settled:
        if write.future.done():  # the caller was cancelled; the write stands anyway
            continue
        if error is None:
            write.future.set_result(value)
        else:
            write.future.set_exception(error)
