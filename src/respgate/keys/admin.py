"""LiteLLM's key-management API over the key manager: /key/* here, /team/* /user/* /customer/* in
admin_people.py. Each operation takes the parsed JSON body (or query values) and returns the JSON
LiteLLM answers with; mistakes are 400 naming the field, unknown ids 404.

Every write goes to storage first, then the manager forgets what it cached about the entity, so the
change applies at once on this instance (and within `cache_ttl` on the others).
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from ..calls import Principal
from ..errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from .durations import duration_seconds
from .manager import KeyManager
from .records import Entity, Kind, key_view, make_entity
from .storage import get
from .tokens import KEY_PREFIX, hash_token, key_name, new_key, owner_of, token_of
from .validate import KEY_FIELDS, Body, page_param, read_fields


def abbreviated(value: str) -> str:
    """How an admin's key argument may appear in a message: a token id whole, a plain key never."""
    return value if not value.startswith(KEY_PREFIX) else key_name(value)


class AdminBase:
    def __init__(self, manager: KeyManager, *, model_names: frozenset[str] = frozenset()) -> None:
        self.manager = manager
        self.storage = manager.storage
        self.model_names = model_names

    def now(self) -> float:
        return self.manager.clock()

    async def load(self, kind: Kind, id: str) -> Entity | None:
        entity = await get(self.storage, kind, id)
        if entity is not None:
            self.manager.live([entity])
        return entity

    async def loaded(self, kind: Kind, ids: list[str]) -> list[Entity]:
        found = await self.storage.get_many(kind, ids)
        self.manager.live(found)
        return found

    def new_entity(self, kind: Kind, id: str, fields: dict[str, Any], spend: float | None) -> Entity:
        now = self.now()
        fields["updated_at"] = now
        entity = make_entity(kind, id, fields, spend or 0.0, None, now)
        if entity.period is not None:
            entity.budget_reset_at = now + entity.period
        return entity

    def apply(self, entity: Entity, changes: dict[str, Any], body: Body) -> bool:
        """Changes to a stored entity; True when its spend or budget period must be written too."""
        now = self.now()
        entity.fields.update(changes)
        entity.fields["updated_at"] = now
        period = duration_seconds(changes["budget_duration"], "budget_duration") if changes.get(
            "budget_duration") is not None else (None if "budget_duration" in changes else entity.period)
        entity.derive(period)
        spend_changed = False
        if "budget_duration" in changes:
            entity.budget_reset_at = now + period if period is not None else None
            spend_changed = True
        spend = body.number("spend")
        if spend is not None:
            entity.spend = spend
            spend_changed = True
        if spend_changed and self.manager.shared is not None:
            self.manager.shared.forget_spend(entity)
        return spend_changed

    async def save(self, entity: Entity, *, spend: bool) -> None:
        if not await self.storage.update(entity, spend=spend):
            raise NotFoundError(f"{entity.kind} {entity.id} no longer exists.", code="not_found")
        self.manager.forget(entity.kind, entity.id)

    async def check_team(self, team_id: str | None) -> None:
        if team_id is not None and await get(self.storage, "team", team_id) is None:
            raise InvalidRequestError(f"Team not found, passed team_id={team_id}", param="team_id",
                                      code="team_not_found")

    async def check_key_alias(self, alias: str | None, token: str | None = None) -> None:
        if alias is None:
            return
        found, _ = await self.storage.find("key", alias=alias)
        if any(e.id != token for e in found):
            raise InvalidRequestError(f"Unique key aliases across all keys are required. Key alias={alias} "
                                      "already exists.", param="key_alias", code="key_alias_exists")

    async def delete_keys_of(self, *, team_id: str | None = None, user_id: str | None = None) -> None:
        for token in await self.storage.delete_where("key", team_id=team_id, user_id=user_id):
            self.manager.forget("key", token)


class KeyAdmin(AdminBase):
    """/key/generate, /key/update, /key/delete, /key/info, /key/list, /key/regenerate, /key/block|unblock."""

    async def generate_key(self, raw: Any, actor: Principal, *,
                           defaults: dict[str, Any] | None = None) -> dict[str, Any]:
        body = Body(raw)
        fields = {**(defaults or {}), **read_fields(body, KEY_FIELDS)}
        plain = body.text("key")
        if plain is not None and not plain.startswith(KEY_PREFIX):
            raise InvalidRequestError("Invalid key format. A virtual key must start with 'sk-'.", param="key",
                                      code="invalid_value")
        plain = plain or new_key()
        await self.check_team(fields.get("team_id"))
        await self.check_key_alias(fields.get("key_alias"))
        duration = body.duration("duration")
        fields.update(key_name=key_name(plain), owner=owner_of(plain), created_by=actor.user_id,
                      updated_by=actor.user_id,
                      expires=self.now() + duration_seconds(duration, "duration") if duration else None)
        entity = self.new_entity("key", hash_token(plain), fields, body.number("spend"))
        if not await self.storage.insert(entity):
            raise InvalidRequestError("This key already exists.", param="key", code="key_exists")
        return self.generated(plain, entity, duration)

    @staticmethod
    def generated(plain: str, entity: Entity, duration: str | None) -> dict[str, Any]:
        """LiteLLM's GenerateKeyResponse: the plain key (shown this once), its token id, its settings."""
        return {"key": plain, **key_view(entity), "token_id": entity.id, "duration": duration,
                "litellm_budget_table": None}

    async def update_key(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        key = body.text("key", required=True)
        assert key is not None
        entity = await self._key(key)
        changes = read_fields(body, KEY_FIELDS)
        if "team_id" in changes:
            await self.check_team(changes["team_id"])
        if "key_alias" in changes:
            await self.check_key_alias(changes["key_alias"], entity.id)
        duration = body.duration("duration")
        if duration is not None:
            changes["expires"] = self.now() + duration_seconds(duration, "duration")
        spend = self.apply(entity, changes, body)
        await self.save(entity, spend=spend)
        return {"key": key if not key.startswith(KEY_PREFIX) else entity.id, **key_view(entity)}

    async def block_key(self, raw: Any, blocked: bool) -> dict[str, Any]:
        body = Body(raw)
        key = body.text("key", required=True)
        assert key is not None
        entity = await self._key(key)
        self.apply(entity, {"blocked": blocked}, Body({}))
        await self.save(entity, spend=False)
        return key_view(entity)

    async def delete_keys(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        keys, aliases = body.strings("keys") or [], body.strings("key_aliases") or []
        if not keys and not aliases:
            raise InvalidRequestError("Pass the keys to delete in 'keys' (or their aliases in 'key_aliases').",
                                      param="keys", code="missing_required_parameter")
        tokens = {token_of(k): k for k in keys}
        for alias in aliases:
            found, _ = await self.storage.find("key", alias=alias)
            if not found:
                raise NotFoundError(f"Key alias={alias} not found.", param="key_aliases", code="key_not_found")
            tokens.update((e.id, alias) for e in found)
        existing = {e.id for e in await self.storage.get_many("key", list(tokens))}
        missing = [abbreviated(v) for t, v in tokens.items() if t not in existing]
        if missing:
            raise NotFoundError(f"Key(s) not found: {', '.join(missing)}", param="keys", code="key_not_found")
        for token in await self.storage.delete("key", list(tokens)):
            self.manager.forget("key", token)
        return {"deleted_keys": keys + aliases}

    async def key_info(self, key: str | None, principal: Principal) -> dict[str, Any]:
        token = token_of(key) if key else principal.token
        if not token:
            raise InvalidRequestError("Pass the key to look up: /key/info?key=sk-...", param="key",
                                      code="missing_required_parameter")
        if not principal.is_admin and token != principal.token:
            raise PermissionDeniedError("A key may read only its own info.", param="key", code="permission_denied")
        entity = await self.load("key", token)
        if entity is None:
            raise NotFoundError(f"Key not found: {abbreviated(key or token)}", param="key", code="key_not_found")
        return {"key": key if key and not key.startswith(KEY_PREFIX) else token, "info": key_view(entity, token=False)}

    async def list_keys(self, query: dict[str, str]) -> dict[str, Any]:
        page = page_param(query.get("page"), "page", 1, 1_000_000)
        size = page_param(query.get("size"), "size", 10, 100)
        found, total = await self.storage.find("key", team_id=query.get("team_id") or None,
                                               user_id=query.get("user_id") or None,
                                               alias=query.get("key_alias") or None,
                                               offset=(page - 1) * size, limit=size)
        full = query.get("return_full_object", "").lower() == "true"
        if full:
            self.manager.live(found)
        return {"keys": [key_view(e) for e in found] if full else [e.id for e in found], "total_count": total,
                "current_page": page, "total_pages": max(1, math.ceil(total / size))}

    async def regenerate_key(self, key: str | None, raw: Any) -> dict[str, Any]:
        """A new plain key for the same record: same owner, settings and spend; the old key stops working."""
        body = Body(raw if raw is not None else {})
        key = key or body.text("key", required=True)
        assert key is not None
        entity = await self._key(key)
        old = entity.id
        plain = body.text("new_key") or new_key()
        if not plain.startswith(KEY_PREFIX):
            raise InvalidRequestError("Invalid key format. A virtual key must start with 'sk-'.", param="new_key",
                                      code="invalid_value")
        spend = self.apply(entity, read_fields(body, KEY_FIELDS), body)
        entity.fields.update(key_name=key_name(plain))
        entity.id = hash_token(plain)
        if not await self.storage.replace(old, entity):
            raise NotFoundError(f"Key not found: {abbreviated(key)}", param="key", code="key_not_found")
        if spend:
            await self.storage.update(entity, spend=True)
        self.manager.forget("key", old)
        return self.generated(plain, entity, None)

    async def _key(self, key: str) -> Entity:
        entity = await self.load("key", token_of(key))
        if entity is None:
            raise NotFoundError(f"Key not found: {abbreviated(key)}", param="key", code="key_not_found")
        return entity


def new_id() -> str:
    return str(uuid.uuid4())
