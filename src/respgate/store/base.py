"""The store: where responses live so that a client who was told one exists can always get it.

Deliberately not here: full-text search, spend reports, keys (the platform adds its own tables), and the
stream events of ordinary responses (their stream is re-made from the final state by the stream
builder). Only a background response keeps its events: clients resume its stream by sequence
number, and the numbers depend on how the upstream chunked its deltas, which the final state
does not record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(slots=True)
class ResponseRecord:
    id: str  # the client-facing `resp_…` id
    owner: str  # who may see it: a key's hash, or "" when the proxy runs without keys
    model: str  # the model group the client asked for
    deployment_id: str
    provider: str
    status: str
    created_at: float
    previous_response_id: str | None
    response: dict[str, Any]  # the Response object exactly as the client received it
    input_items: list[dict[str, Any]] = field(default_factory=list)  # with ids, oldest first
    background: bool = False


@dataclass(slots=True)
class ConversationRecord:
    """A conversation's own row; its items are stored apart, in order (`seq`), each with its id."""

    id: str  # `conv_…`
    owner: str  # as ResponseRecord.owner
    created_at: float
    metadata: dict[str, str] = field(default_factory=dict)
    updated_at: float = 0.0  # last write (a new turn, items, metadata): what retention measures


@dataclass(frozen=True, slots=True)
class ResponseQuery:
    """Which stored responses `Store.list_responses` returns (every field given must match), and where
    the page starts. See store/listing.py for how each is answered."""

    owner: str | None = None  # None: every owner's (the admin UI)
    model: str | None = None  # the model group
    status: str | None = None
    created_after: float | None = None  # epoch seconds, inclusive
    created_before: float | None = None  # epoch seconds, exclusive
    search: str | None = None  # `resp_…`: an id prefix; else a substring of the model (case-insensitive)
    after: str | None = None  # keyset: the last id of the previous page (ids grow with time)
    limit: int = 50


@dataclass(slots=True)
class ResponseSummary:
    """A listed response: its row without the Response body and items, and the body's `usage`."""

    id: str
    owner: str
    model: str
    deployment_id: str
    provider: str
    status: str
    created_at: float
    previous_response_id: str | None
    background: bool
    usage: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Purged:
    """What one retention sweep removed."""

    responses: int = 0
    conversations: int = 0


class Store(Protocol):
    async def open(self) -> None:
        """Create tables / connect. Called once before use."""

    async def close(self) -> None:
        """Flush pending writes and release resources."""

    async def save(self, record: ResponseRecord, events: Sequence[bytes] | None = None) -> None:
        """Insert or replace. Returns once the record is durable (batched with concurrent saves).
        `events`: the response's stream events as serialised JSON, in sequence order, stored in the
        same transaction; None leaves whatever events are stored."""

    async def check_writable(self) -> None:
        """Make one small write; `ServiceUnavailableError` when a save could not be made now. The gateway
        asks this before a stream while saves are failing, so the client gets a 503, not a failed stream."""

    async def events(self, response_id: str) -> list[bytes] | None:
        """The events saved with the response, or None when it has none."""

    async def get(self, response_id: str) -> ResponseRecord | None: ...

    async def delete(self, response_id: str) -> bool:
        """True when a record was removed (its input items and events go with it)."""

    async def chain(self, response_id: str, limit: int = 1000) -> list[ResponseRecord]:
        """The record and its ancestors by `previous_response_id`, oldest first. Empty if unknown."""

    async def input_items(
        self,
        response_id: str,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of a response's input items and whether more follow (OpenAI's list semantics)."""

    async def list_responses(self, query: ResponseQuery) -> tuple[list[ResponseSummary], bool]:
        """A page of stored responses, newest first (by id), and whether more follow: the next page is
        the same query with `after` set to this page's last id."""

    async def mark_unfinished_failed(self, keep_providers: frozenset[str] = frozenset()) -> int:
        """At start-up: responses left `queued`/`in_progress` by a dead process become `failed`, except
        those of `keep_providers`, whose upstream runs them (OpenAI's own background responses)."""

    # -- conversations (the Conversations API) --------------------------------------------------

    async def save_conversation(self, conversation: ConversationRecord,
                                items: Sequence[dict[str, Any]] = ()) -> None:
        """Insert or update the conversation's row and append `items` (with ids), in one transaction."""

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None: ...

    async def delete_conversation(self, conversation_id: str) -> bool:
        """True when it existed; its items go with it (responses made in it stay)."""

    async def add_conversation_items(self, conversation_id: str, items: Sequence[dict[str, Any]],
                                     now: float) -> bool:
        """Append items and mark the conversation active at `now`; False when it does not exist."""

    async def conversation_items(
        self, conversation_id: str, *, limit: int = 20, after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of the conversation's items and whether more follow (an unknown `after`: empty)."""

    async def conversation_history(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every item of the conversation, oldest first: the input history of its next turn."""

    async def conversation_item(self, conversation_id: str, item_id: str) -> dict[str, Any] | None: ...

    async def delete_conversation_item(self, conversation_id: str, item_id: str, now: float) -> bool: ...

    # -- retention ------------------------------------------------------------------------------

    async def purge(self, before: float) -> Purged:
        """Delete for good the finished responses created before `before` (with their items and
        events) and the conversations last written before it (with their items)."""
