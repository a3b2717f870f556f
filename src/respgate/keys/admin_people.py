"""LiteLLM's /team/*, /user/* and /customer/* (end users: the `user` of requests) over the key store."""

from __future__ import annotations

import math
from typing import Any

from ..calls import Principal
from ..errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from .admin import KeyAdmin, new_id
from .records import BUDGET_FIELDS, Entity, customer_view, key_view, team_view, user_view
from .storage import get
from .validate import CUSTOMER_FIELDS, TEAM_FIELDS, USER_FIELDS, Body, page_param, read_fields


class Admin(KeyAdmin):
    """The whole admin API: keys (KeyAdmin) and the people and teams they belong to."""

    # -- teams ----------------------------------------------------------------------------------------

    async def new_team(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        team_id = body.text("team_id") or new_id()
        fields = read_fields(body, TEAM_FIELDS)
        fields["team_id"] = team_id
        entity = self.new_entity("team", team_id, fields, body.number("spend"))
        if not await self.storage.insert(entity):
            raise InvalidRequestError(f"Team id = {team_id} already exists. Please use a different team id.",
                                      param="team_id", code="team_exists")
        for member in fields.get("members_with_roles") or []:
            await self._join(member.get("user_id"), team_id)
        return team_view(entity)

    async def update_team(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        team = await self._team(body.text("team_id", required=True), "team_id")
        spend = self.apply(team, read_fields(body, TEAM_FIELDS), body)
        await self.save(team, spend=spend)
        return {"team_id": team.id, "data": team_view(team)}

    async def block_team(self, raw: Any, blocked: bool) -> dict[str, Any]:
        body = Body(raw)
        team = await self._team(body.text("team_id", required=True), "team_id")
        self.apply(team, {"blocked": blocked}, Body({}))
        await self.save(team, spend=False)
        return team_view(team)

    async def delete_teams(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        ids = body.strings("team_ids")
        if not ids:
            raise InvalidRequestError("Pass the teams to delete in 'team_ids'.", param="team_ids",
                                      code="missing_required_parameter")
        found = {e.id for e in await self.storage.get_many("team", ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(f"Team not found, passed team_id={', '.join(missing)}", param="team_ids",
                                code="team_not_found")
        for team_id in ids:
            await self.delete_keys_of(team_id=team_id)  # as LiteLLM: a team's keys go with it
        for team_id in await self.storage.delete("team", ids):
            self.manager.forget("team", team_id)
        return {"deleted_teams": ids}

    async def team_info(self, team_id: str | None, principal: Principal) -> dict[str, Any]:
        team_id = team_id or principal.team_id
        if not principal.is_admin and (team_id is None or team_id != principal.team_id):
            raise PermissionDeniedError("A key may read only its own team's info.", param="team_id",
                                        code="permission_denied")
        team = await self._team(team_id, "team_id")
        keys, _ = await self.storage.find("key", team_id=team.id)
        self.manager.live(keys)
        return {"team_id": team.id, "team_info": team_view(team), "keys": [key_view(k) for k in keys],
                "team_memberships": []}

    async def list_teams(self, query: dict[str, str]) -> list[dict[str, Any]]:
        teams, _ = await self.storage.find("team")
        self.manager.live(teams)
        user_id = query.get("user_id")
        return [team_view(t) for t in teams if not user_id or any(
            m.get("user_id") == user_id for m in t.fields.get("members_with_roles") or [])]

    async def team_member_add(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        team = await self._team(body.text("team_id", required=True), "team_id")
        added = body.members("member")
        if not added:
            raise InvalidRequestError("Missing required parameter: 'member'.", param="member",
                                      code="missing_required_parameter")
        members = [m for m in team.fields.get("members_with_roles") or []
                   if all(m.get("user_id") is None or m.get("user_id") != a["user_id"] for a in added)]
        self.apply(team, {"members_with_roles": members + added}, Body({}))
        await self.save(team, spend=False)
        updated = [u for a in added if (u := await self._join(a.get("user_id"), team.id)) is not None]
        return {**team_view(team), "updated_users": [user_view(u) for u in updated], "updated_team_memberships": []}

    async def _join(self, user_id: str | None, team_id: str) -> Entity | None:
        user = await self.load("user", user_id) if user_id else None
        if user is None:
            return None
        teams = list(user.fields.get("teams") or [])
        if team_id not in teams:
            self.apply(user, {"teams": [*teams, team_id]}, Body({}))
            await self.save(user, spend=False)
        return user

    async def _team(self, team_id: str | None, param: str) -> Entity:
        team = await self.load("team", team_id) if team_id else None
        if team is None:
            raise NotFoundError(f"Team not found, passed team_id={team_id}", param=param, code="team_not_found")
        return team

    # -- internal users ----------------------------------------------------------------------------------

    async def new_user(self, raw: Any, actor: Principal) -> dict[str, Any]:
        body = Body(raw)
        user_id = body.text("user_id") or new_id()
        fields = read_fields(body, USER_FIELDS)
        fields.setdefault("user_role", "internal_user")
        fields["user_id"] = user_id
        for team_id in fields.get("teams") or []:
            await self.check_team(team_id)
        entity = self.new_entity("user", user_id, fields, body.number("spend"))
        if not await self.storage.insert(entity):
            raise InvalidRequestError(f"User with id={user_id} already exists.", param="user_id",
                                      code="user_exists")
        for team_id in fields.get("teams") or []:
            team = await get(self.storage, "team", team_id)
            if team is not None:
                members = list(team.fields.get("members_with_roles") or [])
                members.append({"role": "user", "user_id": user_id, "user_email": fields.get("user_email")})
                self.apply(team, {"members_with_roles": members}, Body({}))
                await self.save(team, spend=False)
        response = user_view(entity)
        if body.flag("auto_create_key") is not False:  # LiteLLM makes the user a key unless told not to
            key_body = {k: raw[k] for k in ("key_alias", "duration", "metadata", "models") if k in raw}
            response = {**self.generated_view(await self.generate_key({**key_body, "user_id": user_id}, actor)),
                        **response}
        return response

    @staticmethod
    def generated_view(generated: dict[str, Any]) -> dict[str, Any]:
        return {k: generated[k] for k in ("key", "token", "key_alias", "expires", "token_id")}

    async def update_user(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        user = await self._user(body.text("user_id", required=True), "user_id")
        spend = self.apply(user, read_fields(body, USER_FIELDS), body)
        await self.save(user, spend=spend)
        return user_view(user)

    async def delete_users(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        ids = body.strings("user_ids")
        if not ids:
            raise InvalidRequestError("Pass the users to delete in 'user_ids'.", param="user_ids",
                                      code="missing_required_parameter")
        found = {e.id for e in await self.storage.get_many("user", ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(f"User(s) not found: {', '.join(missing)}", param="user_ids", code="user_not_found")
        for user_id in ids:
            await self.delete_keys_of(user_id=user_id)  # as LiteLLM: a user's keys go with them
        for user_id in await self.storage.delete("user", ids):
            self.manager.forget("user", user_id)
        return {"deleted_users": ids}

    async def user_info(self, user_id: str | None, principal: Principal) -> dict[str, Any]:
        user_id = user_id or principal.user_id
        if not principal.is_admin and (user_id is None or user_id != principal.user_id):
            raise PermissionDeniedError("A key may read only its own user's info.", param="user_id",
                                        code="permission_denied")
        user = await self._user(user_id, "user_id")
        keys, _ = await self.storage.find("key", user_id=user.id)
        teams = await self.loaded("team", [t for t in user.fields.get("teams") or [] if isinstance(t, str)])
        self.manager.live(keys)
        return {"user_id": user.id, "user_info": user_view(user), "keys": [key_view(k) for k in keys],
                "teams": [team_view(t) for t in teams]}

    async def list_users(self, query: dict[str, str]) -> dict[str, Any]:
        page = page_param(query.get("page"), "page", 1, 1_000_000)
        size = page_param(query.get("page_size"), "page_size", 25, 100)
        users, total = await self.storage.find("user", offset=(page - 1) * size, limit=size)
        self.manager.live(users)
        return {"users": [user_view(u) for u in users], "total": total, "page": page, "page_size": size,
                "total_pages": max(1, math.ceil(total / size))}

    async def _user(self, user_id: str | None, param: str) -> Entity:
        user = await self.load("user", user_id) if user_id else None
        if user is None:
            raise NotFoundError(f"User not found, passed user_id={user_id}", param=param, code="user_not_found")
        return user

    # -- customers (end users) ---------------------------------------------------------------------------

    async def new_customer(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        user_id = body.text("user_id", required=True)
        assert user_id is not None
        fields = self._customer_fields(body)
        fields["user_id"] = user_id
        entity = self.new_entity("customer", user_id, fields, body.number("spend"))
        if not await self.storage.insert(entity):
            raise InvalidRequestError(f"Customer already exists, passed user_id={user_id}. Please pass a new "
                                      "user_id.", param="user_id", code="customer_exists")
        self.manager.forget("customer", user_id)
        return customer_view(entity)

    def _customer_fields(self, body: Body, existing: dict[str, Any] | None = None) -> dict[str, Any]:
        fields = read_fields(body, CUSTOMER_FIELDS)
        model = fields.get("default_model")
        if model is not None and self.model_names and model not in self.model_names:
            raise InvalidRequestError(f"Default Model not on proxy. Default_model={model}", param="default_model",
                                      code="invalid_value")
        region = fields.get("allowed_model_region")
        if region is not None and region not in ("eu", "us"):
            raise InvalidRequestError(f"Invalid value for 'allowed_model_region': {region!r}. Supported values "
                                      "are: eu, us.", param="allowed_model_region", code="invalid_value")
        merged = {**(existing or {}), **fields}
        if any(merged.get(f) is not None for f in BUDGET_FIELDS) and not merged.get("budget_id"):
            fields["budget_id"] = new_id()
        return fields

    async def update_customer(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        customer = await self._customer(body.text("user_id", required=True), "user_id")
        spend = self.apply(customer, self._customer_fields(body, customer.fields), body)
        await self.save(customer, spend=spend)
        return customer_view(customer)

    async def block_customers(self, raw: Any, blocked: bool) -> dict[str, Any]:
        body = Body(raw)
        ids = body.strings("user_ids") or []
        done = []
        for user_id in ids:
            customer = await self.load("customer", user_id)
            if customer is None:  # LiteLLM's block upserts: blocking an unknown end user creates it
                customer = self.new_entity("customer", user_id, {"user_id": user_id, "blocked": blocked}, None)
                await self.storage.insert(customer)
                self.manager.forget("customer", user_id)
            else:
                self.apply(customer, {"blocked": blocked}, Body({}))
                await self.save(customer, spend=False)
            done.append(customer_view(customer))
        return {"blocked_users" if blocked else "unblocked_users": done}

    async def delete_customers(self, raw: Any) -> dict[str, Any]:
        body = Body(raw)
        ids = body.strings("user_ids")
        if not ids:
            raise InvalidRequestError("Pass the customers to delete in 'user_ids'.", param="user_ids",
                                      code="missing_required_parameter")
        found = {e.id for e in await self.storage.get_many("customer", ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(f"End User Id(s)={', '.join(missing)} do not exist in db", param="user_ids",
                                code="not_found")
        deleted = await self.storage.delete("customer", ids)
        for user_id in deleted:
            self.manager.forget("customer", user_id)
        return {"deleted_customers": len(deleted), "message": f"Successfully deleted customers with ids: {ids}"}

    async def customer_info(self, end_user_id: str | None) -> dict[str, Any]:
        return customer_view(await self._customer(end_user_id, "end_user_id"))

    async def list_customers(self) -> list[dict[str, Any]]:
        customers, _ = await self.storage.find("customer")
        self.manager.live(customers)
        return [customer_view(c) for c in customers]

    async def _customer(self, user_id: str | None, param: str) -> Entity:
        if not user_id:
            raise InvalidRequestError(f"Missing required parameter: '{param}'.", param=param,
                                      code="missing_required_parameter")
        customer = await self.load("customer", user_id)
        if customer is None:
            raise NotFoundError(f"End User Id={user_id} does not exist in db", param=param, code="not_found")
        return customer
