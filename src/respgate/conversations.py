"""The Conversations API (`/v1/conversations`) and the `conversation` parameter of `/v1/responses`.

A conversation is a durable list of items owned by one key. A response made `in` it reads every
item as its input history (as a `previous_response_id` chain would be read) and, once it finishes
(`completed` or `incomplete`), appends this turn's input and output items to it. Objects and
errors follow OpenAI's (`openai.types.conversations`); another key's conversation is a 404.

A native passthrough upstream (OpenAI, Azure) does not know our `conv_…` ids: the gateway sends it
the conversation's items as `input` and leaves `conversation` out, then echoes the parameter on the
Response and appends the turn here, as for every other provider. Appending happens even with
`store: false` (the conversation itself is the state the client asked for); a failed or cancelled
turn is not appended. A native *background* response finishes upstream, so it is not appended.

`include` on the item routes is accepted and has no effect: items are kept whole, as they were
received or produced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, Literal

from .errors import InvalidRequestError, NotFoundError
from .ids import new_item_id
from .request import normalize_input, validate_create
from .store.base import ConversationRecord, Store

__all__ = ["Conversations", "conversation_id_of"]

Json = dict[str, Any]

MAX_ITEMS_PER_CALL: Final = 20  # OpenAI: "You may add up to 20 items at a time."
_MAX_METADATA_KEYS: Final = 16
_MAX_KEY_CHARS: Final = 64
_MAX_VALUE_CHARS: Final = 512
# A turn whose output is worth keeping; a failed or cancelled one leaves the conversation as it was.
_APPENDED_STATUSES: Final = frozenset({"completed", "incomplete"})


def conversation_id_of(value: Any) -> str | None:
    """The id in a `conversation` parameter: a string or `{"id": ...}`; None when absent.
    Anything else is the client's mistake."""
    if value is None:
        return None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        return str(value["id"])
    raise InvalidRequestError("Invalid 'conversation': expected a conversation id string or an object with 'id'.",
                              param="conversation", code="invalid_type")


class Conversations:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # -- the API ------------------------------------------------------------------------------------

    async def create(self, body: Any, owner: str) -> Json:
        body = _object(body, ("items", "metadata"))
        items = _items(body.get("items"), required=False)
        now = self.clock()
        record = ConversationRecord(id=new_item_id("conv"), owner=owner, created_at=now,
                                    metadata=_metadata(body.get("metadata")), updated_at=now)
        await self.store.save_conversation(record, items)
        return _wire(record)

    async def retrieve(self, conversation_id: str, owner: str) -> Json:
        return _wire(await self._own(conversation_id, owner))

    async def update(self, conversation_id: str, body: Any, owner: str) -> Json:
        body = _object(body, ("metadata",))
        if "metadata" not in body:
            raise InvalidRequestError("Missing required parameter: 'metadata'.", param="metadata",
                                      code="missing_required_parameter")
        record = await self._own(conversation_id, owner)
        record.metadata = _metadata(body["metadata"])
        record.updated_at = self.clock()
        await self.store.save_conversation(record)
        return _wire(record)

    async def delete(self, conversation_id: str, owner: str) -> Json:
        await self._own(conversation_id, owner)
        await self.store.delete_conversation(conversation_id)
        return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    async def list_items(self, conversation_id: str, owner: str, *, limit: int = 20, after: str | None = None,
                         order: Literal["asc", "desc"] = "desc") -> Json:
        if not 1 <= limit <= 100:
            raise InvalidRequestError("Invalid 'limit': must be between 1 and 100.", param="limit",
                                      code="invalid_value")
        await self._own(conversation_id, owner)
        items, has_more = await self.store.conversation_items(conversation_id, limit=limit, after=after, order=order)
        return _page(items, has_more)

    async def add_items(self, conversation_id: str, body: Any, owner: str) -> Json:
        body = _object(body, ("items",))
        items = _items(body.get("items"), required=True)
        await self._own(conversation_id, owner)
        if not await self.store.add_conversation_items(conversation_id, items, self.clock()):
            raise _not_found(conversation_id)  # deleted meanwhile
        return _page(items, False)

    async def item(self, conversation_id: str, item_id: str, owner: str) -> Json:
        await self._own(conversation_id, owner)
        found = await self.store.conversation_item(conversation_id, item_id)
        if found is None:
            raise NotFoundError(f"Item with id '{item_id}' not found.", param="item_id")
        return found

    async def delete_item(self, conversation_id: str, item_id: str, owner: str) -> Json:
        record = await self._own(conversation_id, owner)
        now = self.clock()
        if not await self.store.delete_conversation_item(conversation_id, item_id, now):
            raise NotFoundError(f"Item with id '{item_id}' not found.", param="item_id")
        return _wire(record)

    # -- for the gateway: a response made in a conversation ----------------------------------------

    async def history(self, body: Json, owner: str) -> tuple[str, list[Json]] | None:
        """The conversation a create request names and its items (the input history), or None.
        `conversation` with `previous_response_id` is OpenAI's 400."""
        conversation_id = conversation_id_of(body.get("conversation"))
        if conversation_id is None:
            return None
        if body.get("previous_response_id") is not None:
            raise InvalidRequestError(
                "Mutually exclusive parameters: Ensure you are only providing one of: 'previous_response_id' or "
                "'conversation'.", param="conversation", code="mutually_exclusive_parameters")
        await self._own(conversation_id, owner, param="conversation")
        return conversation_id, await self.store.conversation_history(conversation_id)

    async def append_turn(self, conversation_id: str, turn: list[Json], response: Json) -> None:
        """A finished turn's input and output join the conversation (before the client hears it ended)."""
        if response.get("status") not in _APPENDED_STATUSES:
            return
        await self.store.add_conversation_items(conversation_id, [*turn, *(response.get("output") or [])],
                                                self.clock())

    async def _own(self, conversation_id: str, owner: str, param: str | None = None) -> ConversationRecord:
        record = await self.store.get_conversation(conversation_id)
        if record is None or record.owner != owner:
            raise _not_found(conversation_id, param)
        return record


def _wire(record: ConversationRecord) -> Json:
    return {"id": record.id, "object": "conversation", "created_at": int(record.created_at),
            "metadata": dict(record.metadata)}


def _page(items: list[Json], has_more: bool) -> Json:
    return {"object": "list", "data": items, "first_id": items[0].get("id") if items else None,
            "last_id": items[-1].get("id") if items else None, "has_more": has_more}


def _not_found(conversation_id: str, param: str | None = None) -> NotFoundError:
    return NotFoundError(f"Conversation with id '{conversation_id}' not found.", param=param)


def _object(body: Any, known: tuple[str, ...]) -> Json:
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    for key in body:
        if key not in known:
            raise InvalidRequestError(f"Unknown parameter: '{key}'.", param=str(key), code="unknown_parameter")
    return body


def _items(value: Any, *, required: bool) -> list[Json]:
    """Items validated as Responses input items (the same types), normalised with ids."""
    if value is None:
        if required:
            raise InvalidRequestError("Missing required parameter: 'items'.", param="items",
                                      code="missing_required_parameter")
        return []
    if not isinstance(value, list):
        raise InvalidRequestError("Invalid type for 'items': expected an array.", param="items", code="invalid_type")
    if len(value) > MAX_ITEMS_PER_CALL:
        raise InvalidRequestError(
            f"Invalid 'items': array too long. Expected an array with maximum length {MAX_ITEMS_PER_CALL}, but got "
            f"an array with length {len(value)} instead.", param="items", code="array_above_max_length")
    try:
        checked = validate_create({"model": "conversation", "input": value})
    except InvalidRequestError as e:  # the same checks as a response's input, named as our field
        param = "items" + e.param[len("input"):] if e.param and e.param.startswith("input") else e.param
        raise InvalidRequestError(e.message.replace("'input", "'items"), param=param, code=e.code) from None
    items = normalize_input(checked["input"])
    for n, item in enumerate(items):
        if item.get("type") == "item_reference":  # a conversation holds items, not pointers to them
            raise InvalidRequestError("Item references cannot be added to a conversation.",
                                      param=f"items[{n}]", code="invalid_value")
    return items


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError("Invalid type for 'metadata': expected an object.", param="metadata",
                                  code="invalid_type")
    if len(value) > _MAX_METADATA_KEYS:
        raise InvalidRequestError(
            f"Invalid 'metadata': too many properties. Expected an object with at most {_MAX_METADATA_KEYS} "
            f"properties, but got an object with {len(value)} properties instead.", param="metadata",
            code="object_above_max_properties")
    for key, item in value.items():
        if len(key) > _MAX_KEY_CHARS:
            raise InvalidRequestError(
                f"Invalid 'metadata': string too long. Expected a key with maximum length {_MAX_KEY_CHARS}.",
                param="metadata", code="string_above_max_length")
        if not isinstance(item, str):
            raise InvalidRequestError(f"Invalid type for 'metadata.{key}': expected a string.",
                                      param=f"metadata.{key}", code="invalid_type")
        if len(item) > _MAX_VALUE_CHARS:
            raise InvalidRequestError(
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum length "
                f"{_MAX_VALUE_CHARS}, but got a string with length {len(item)} instead.",
                param=f"metadata.{key}", code="string_above_max_length")
    return dict(value)
