"""The key manager: verifies virtual keys (cached), and as a call hook enforces what they allow.

Hot path (no I/O for a known key): `verify` hashes the key and finds its `Grant` (the key, its team
and its user, loaded together) in memory; `pre_call` checks expiry, model access, budgets and the
per-minute / in-flight limits of the key, team, user (personal keys) and customer (`user` /
`safety_identifier` of the request); `post_call` gives back the in-flight slot, counts tokens and
adds `call.cost` to the spend of each, in memory at once. Spend reaches the database in batches
from a background task (`maintain`, every `flush_interval`), which also re-reads the entities in use
so that a change made on another instance applies here within `cache_ttl` seconds; a change made
here applies at once (the admin API calls `forget`).

With Redis (`router_settings.redis_*`), admission and spend go through `SharedLimits` so several
instances share the limits; without it, or while Redis is down, each instance counts alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..calls import Call, Principal
from ..errors import AuthenticationError, PermissionDeniedError, RespgateError
from .access import ModelAccess
from .ledger import Ledger
from .records import PROXY_ADMIN, Entity, Kind, Window
from .refusals import budget_error, expired_key, limit_error, unknown_key
from .shared import SharedLimits, SharedUnavailable
from .storage import Storage
from .tokens import hash_token

if TYPE_CHECKING:
    from .admin_people import Admin

log = logging.getLogger("respgate.keys")

_TAKEN = "keys.taken"  # call.extra: ("local" | "redis", entities holding an in-flight slot, minute)
_CUSTOMER = "keys.customer"
_MISSING_MAX = 10_000  # end-user ids remembered as "not a customer"
_HASHED_MAX = 10_000  # keys whose hash is remembered


@dataclass(slots=True, eq=False, repr=False)
class Grant:
    """What one virtual key may do, with the entities whose limits apply; `Principal.limits`."""

    key: Entity
    team: Entity | None
    user: Entity | None
    fresh_until: float  # monotonic: re-read from storage after this
    checked: tuple[Entity, ...]  # budgets and limits apply (key, team; the user only for personal keys)
    charged: tuple[Entity, ...]  # spend is added to (key, team, user)
    principal: Principal = field(init=False)
    used: bool = False  # seen by a request since it was (re)loaded
    models_ok: dict[str, bool] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Grant(token={self.key.id[:12]}…, team={self.team and self.team.id}, user={self.user and self.user.id})"


def end_user_of(body: Any) -> str | None:
    """The end user (LiteLLM's customer) a request names: `user`, else `safety_identifier`."""
    if isinstance(body, dict) and ("user" in body or "safety_identifier" in body):
        for name in ("user", "safety_identifier"):
            value = body.get(name)
            if isinstance(value, str) and value:
                return value
    return None


class KeyManager:
    def __init__(self, storage: Storage, *, cache_ttl: float = 5.0, shared: SharedLimits | None = None,
                 access_groups: Mapping[str, frozenset[str]] | None = None, flush_interval: float = 1.0,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self.cache_ttl = cache_ttl
        self.shared = shared
        self.access = ModelAccess(access_groups)
        self._flush_interval = min(flush_interval, max(cache_ttl / 3, 0.05))
        self.clock = clock
        self._mono = monotonic
        self._grants: dict[str, Grant] = {}
        # key -> its hash, for keys that verified: a pure function memoised (sha256 through OpenSSL is
        # ~5,000 instructions a request). Only in memory, where the request's key is anyway.
        self._hashed: dict[str, str] = {}
        self._entities: dict[tuple[str, str], Entity] = {}
        self._missing: dict[str, float] = {}  # end users that are not customers -> when that was read
        self._windows: dict[tuple[str, str], Window] = {}
        self.ledger = Ledger()
        self._stale_warned = False
        self._task: asyncio.Task[None] | None = None
        self.admin: Admin | None = None  # the admin API (admin_people.py), set by `build`

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.storage.open()
        if self.shared is not None:
            self.shared.start()
        self._task = asyncio.create_task(self._maintain_loop(), name="respgate-keys-maintain")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(RespgateError):
            await self.flush()
        if self.shared is not None:
            await self.shared.close()
        await self.storage.close()

    # -- verification (the Authenticator calls this for every non-master key) -----------------------------

    async def verify(self, key: str) -> Principal:
        token = self._hashed.get(key)
        hashed_now = token is None
        if token is None:
            token = hash_token(key)
        grant = self._grants.get(token)
        if grant is None or self._mono() >= grant.fresh_until:
            try:
                await self._load([token])
            except RespgateError:
                if grant is None:
                    raise
                if not self._stale_warned:
                    log.warning("keys: key store unavailable; using cached keys past their cache_ttl")
                    self._stale_warned = True
            else:
                self._stale_warned = False
            grant = self._grants.get(token)
            if grant is None:
                raise unknown_key(key, token)
        grant.used = True
        self._check_usable(grant, self.clock())
        if hashed_now and len(self._hashed) < _HASHED_MAX:  # a key that exists: unknown ones must not fill it
            self._hashed[key] = token
        return grant.principal

    def _check_usable(self, grant: Grant, now: float) -> None:
        key = grant.key
        if key.expires is not None and now >= key.expires:
            raise expired_key(key.expires, now)
        if key.blocked:
            raise AuthenticationError("Authentication Error, Key is blocked. Update via `/key/unblock` if you're "
                                      "an admin.", code="key_blocked", type="auth_error")
        if grant.team is not None and grant.team.blocked:
            raise AuthenticationError(f"Team={grant.team.id} is blocked. Update via `/team/unblock` if you're an "
                                      "admin.", code="team_blocked", type="auth_error")

    # -- loading and caching ---------------------------------------------------------------------------

    async def _load(self, tokens: list[str]) -> None:
        """Read keys with their teams and users (three queries for any number) and rebuild their grants."""
        keys = await self.storage.get_many("key", tokens)
        team_ids = sorted({t for k in keys if (t := k.team_id) is not None})
        user_ids = sorted({u for k in keys if (u := k.user_id) is not None})
        teams = {e.id: self._absorb(e) for e in await self.storage.get_many("team", team_ids)}
        users = {e.id: self._absorb(e) for e in await self.storage.get_many("user", user_ids)}
        fresh_until = self._mono() + self.cache_ttl
        found = set()
        for k in keys:
            found.add(k.id)
            key = self._absorb(k)
            team = teams.get(key.team_id) if key.team_id is not None else None
            user = users.get(key.user_id) if key.user_id is not None else None
            self._grants[key.id] = self._grant(key, team, user, fresh_until)
        for token in tokens:
            if token not in found:
                self._grants.pop(token, None)
                self._entities.pop(("key", token), None)

    def _absorb(self, fresh: Entity) -> Entity:
        """The one in-memory entity for this id, brought up to date with what storage says (its
        spend: the stored spend plus what this instance has not written yet)."""
        now = self.clock()
        ident = (fresh.kind, fresh.id)
        entity = self._entities.get(ident)
        if entity is None:
            entity = self._entities[ident] = fresh
            entity.window = self._windows.setdefault(ident, Window())
        else:
            entity.fields = fresh.fields
            entity.derive(fresh.period)
            entity.budget_reset_at = fresh.budget_reset_at
            entity.created_at = fresh.created_at
        entity.spend = fresh.spend + self.ledger.unwritten(fresh.kind, fresh.id, fresh.marker)
        entity.loaded = self._mono()
        entity.used = False
        self.ledger.roll(entity, now)
        return entity

    def _grant(self, key: Entity, team: Entity | None, user: Entity | None, fresh_until: float) -> Grant:
        owner = key.fields.get("owner") or key.id[:32]
        if team is not None and team.metadata.get("share_responses") is True:
            owner = f"team:{team.id}"  # the team's keys see each other's responses, chains, conversations
        is_admin = user is not None and user.fields.get("user_role") == PROXY_ADMIN
        scoped = (key, team) if team is not None else (key, user)
        checked = tuple(e for e in scoped if e is not None and (e.max_budget is not None or e.limited))
        charged = tuple(e for e in (key, team, user) if e is not None)
        grant = Grant(key, team, user, fresh_until, checked, charged)
        grant.principal = Principal(
            owner=str(owner), token=key.id, key_alias=key.alias, team_id=key.team_id, user_id=key.user_id,
            is_admin=is_admin, models=self.access.names(key, team, user), limits=grant)
        return grant

    def forget(self, kind: Kind, id: str) -> None:
        """Drop what this instance cached about an entity (an admin changed or deleted it here)."""
        self._entities.pop((kind, id), None)
        if kind == "key":
            self._grants.pop(id, None)
        elif kind == "customer":
            self._missing.pop(id, None)
        else:
            for token, g in list(self._grants.items()):
                if (g.team is not None and g.team.id == id and kind == "team") or \
                        (g.user is not None and g.user.id == id and kind == "user"):
                    del self._grants[token]

    async def _customer(self, end_user: str) -> Entity | None:
        entity = self._entities.get(("customer", end_user))
        mono = self._mono()
        if entity is not None and mono < entity.loaded + self.cache_ttl:
            entity.used = True
            return entity
        seen = self._missing.get(end_user)
        if seen is not None and mono < seen + self.cache_ttl:
            return None
        found = await self.storage.get_many("customer", [end_user])
        if not found:
            self._entities.pop(("customer", end_user), None)
            if len(self._missing) >= _MISSING_MAX:
                self._missing.clear()
            self._missing[end_user] = mono
            return None
        self._missing.pop(end_user, None)
        entity = self._absorb(found[0])
        entity.used = True
        return entity

    # -- the call hook -----------------------------------------------------------------------------------

    async def pre_call(self, call: Call) -> None:
        grant = call.principal.limits
        grant = grant if isinstance(grant, Grant) else None
        end_user = end_user_of(call.body)
        customer = await self._customer(end_user) if end_user is not None else None
        if grant is None and customer is None:
            return
        now = self.clock()
        checked: tuple[Entity, ...] = ()
        if grant is not None:
            self._check_usable(grant, now)
            model = call.model
            if model:
                self._check_model(grant, model)
            checked = grant.checked
        if customer is not None:
            call.extra[_CUSTOMER] = customer
            if customer.blocked:
                raise PermissionDeniedError(f"End User={customer.id} is blocked. Update via `/customer/unblock` if "
                                            "you're an admin.", param="user", code="end_user_blocked")
            if customer.max_budget is not None or customer.limited:
                checked = (*checked, customer)
        if not checked:
            return
        for e in checked:
            if e.period is not None:
                self.ledger.roll(e, now)
            if e.max_budget is not None and e.spend >= e.max_budget:
                raise budget_error(e, e.spend)
        minute = int(now) // 60
        if self.shared is not None and self.shared.available:
            try:  # the shared spend and counters decide (this instance's view is only part of them)
                refusal = await self.shared.admit(checked, minute, now, call.request_id)
            except SharedUnavailable:
                pass
            else:
                if refusal is not None:
                    raise limit_error(*refusal, now)
                held = tuple(e for e in checked if e.max_parallel is not None)
                if held:
                    call.extra[_TAKEN] = ("redis", held, minute)
                return
        self._admit_local(checked, minute, now, call)

    def _admit_local(self, checked: tuple[Entity, ...], minute: int, now: float, call: Call) -> None:
        for e in checked:  # every limit is checked before any is counted: a refusal takes nothing
            if not e.limited:
                continue
            w = e.window
            if w.minute != minute:
                w.minute, w.requests, w.tokens = minute, 0, 0
            if e.rpm_limit is not None and w.requests >= e.rpm_limit:
                raise limit_error(e, "rpm", w.requests, now)
            if e.tpm_limit is not None and w.tokens >= e.tpm_limit:
                raise limit_error(e, "tpm", w.tokens, now)
            if e.max_parallel is not None and w.active >= e.max_parallel:
                raise limit_error(e, "parallel", w.active, now)
        held: tuple[Entity, ...] = ()
        for e in checked:
            if e.limited:
                e.window.requests += 1
                if e.max_parallel is not None:
                    e.window.active += 1
                    held = (*held, e)
        if held:
            call.extra[_TAKEN] = ("local", held, minute)

    def _check_model(self, grant: Grant, model: str) -> None:
        allowed = grant.models_ok.get(model)
        if allowed is None:
            allowed = grant.models_ok[model] = self._refusal(grant, model) is None
        if not allowed:
            error = self._refusal(grant, model)
            if error is not None:
                raise error

    def _refusal(self, grant: Grant, model: str) -> RespgateError | None:
        return self.access.refusal(grant.key, grant.team, grant.user, model)

    async def post_call(self, call: Call) -> None:
        self.ended(call)

    def ended(self, call: Call) -> None:
        """post_call, without a coroutine (Hooks calls this one). No I/O here: slots, tokens and spend
        change in memory; Redis and the database get them from background tasks."""
        taken = call.extra.pop(_TAKEN, None)
        if taken is not None:
            where, held, _minute = taken
            if where == "local":
                for e in held:
                    e.window.active -= 1
            elif self.shared is not None:
                self.shared.release(held, call.request_id)
        grant = call.principal.limits
        customer = call.extra.get(_CUSTOMER)
        charged: tuple[Entity, ...] = grant.charged if isinstance(grant, Grant) else ()
        if isinstance(customer, Entity):
            charged = (*charged, customer)
        if not charged:
            return
        now = self.clock()
        cost = call.cost or 0.0
        counts = call.tokens
        tokens = counts.input + counts.output if counts is not None else 0
        minute = int(now) // 60
        shared = self.shared if self.shared is not None and self.shared.available else None
        for stale in charged:
            e = self._entities.get((stale.kind, stale.id), stale)
            if tokens and e.tpm_limit is not None:
                if shared is not None:
                    shared.add_tokens(e, minute, tokens)
                else:
                    w = e.window
                    if w.minute != minute:
                        w.minute, w.requests, w.tokens = minute, 0, 0
                    w.tokens += tokens
            if cost:
                if e.period is not None:
                    self.ledger.roll(e, now)
                if shared is not None:
                    left = e.budget_reset_at - now + 3600 if e.budget_reset_at is not None else None
                    shared.add_spend(e, e.spend, cost, left)
                self.ledger.add(e, cost)

    # -- background: spend to the database, budget resets, cache refresh ---------------------------------

    async def _maintain_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            try:
                await self.maintain()
            except RespgateError:
                pass  # storage said why (and logged it); try again next time
            except Exception as e:  # a bug must not stop spend from being written
                log.error("keys: maintenance failed: %s", type(e).__name__, exc_info=e)

    async def maintain(self) -> None:
        await self.flush()
        await self._refresh()

    async def flush(self) -> None:
        """Write the spend added since the last flush, and the budget periods that ended."""
        await self.ledger.flush(self.storage)

    async def _refresh(self) -> None:
        """Re-read the keys and customers in use before their cache entries expire; drop the unused."""
        mono = self._mono()
        half = self.cache_ttl / 2
        due: list[str] = []
        for token, g in list(self._grants.items()):
            if mono >= g.fresh_until and not g.used:
                del self._grants[token]
            elif g.used and mono >= g.fresh_until - half:
                due.append(token)
        if due:
            for g in (self._grants[t] for t in due if t in self._grants):
                g.used = False
            await self._load(due)
        customers = [e.id for (kind, _), e in self._entities.items() if kind == "customer" and e.used
                     and mono >= e.loaded + half]
        if customers:
            fresh = {e.id: e for e in await self.storage.get_many("customer", customers)}
            for cid in customers:
                if cid in fresh:
                    self._absorb(fresh[cid])
                else:
                    self._entities.pop(("customer", cid), None)
        self._sweep(mono)

    def _sweep(self, mono: float) -> None:
        stale = 4 * self.cache_ttl
        for ident, e in list(self._entities.items()):
            if mono - e.loaded > stale:
                del self._entities[ident]
        minute = int(self.clock() // 60)
        for ident, w in list(self._windows.items()):
            if w.active <= 0 and w.minute < minute and ident not in self._entities:
                del self._windows[ident]
        for end_user, seen in list(self._missing.items()):
            if mono - seen > self.cache_ttl:
                del self._missing[end_user]

    # -- reads for the admin API -------------------------------------------------------------------------

    def live(self, entities: Iterable[Entity]) -> None:
        """Bring stored entities' spend up to this instance's view (adds not yet written, ended periods)."""
        self.ledger.live(entities, self._entities, self.clock())


__all__ = ["Grant", "KeyManager", "end_user_of"]
