"""The store: where responses live so that a client who was told one exists can always get it.

Deliberately not here: search, spend reports, keys (the platform adds its own tables), and the
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


class Store(Protocol):
    async def open(self) -> None:
        """Create tables / connect. Called once before use."""

    async def close(self) -> None:
        """Flush pending writes and release resources."""

    async def save(self, record: ResponseRecord, events: Sequence[bytes] | None = None) -> None:
        """Insert or replace. Returns once the record is durable (batched with concurrent saves).
        `events`: the response's stream events as serialised JSON, in sequence order, stored in the
        same transaction; None leaves whatever events are stored."""

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

    async def mark_unfinished_failed(self, keep_providers: frozenset[str] = frozenset()) -> int:
        """At start-up: responses left `queued`/`in_progress` by a dead process become `failed`, except
        those of `keep_providers`, whose upstream runs them (OpenAI's own background responses)."""
