"""Reading an admin request's JSON body: each field typed as LiteLLM's request models type it, and a
mistake answered with 400 naming the field. Unknown fields are ignored (as LiteLLM's models do)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ..errors import InvalidRequestError
from .durations import duration_seconds

USER_ROLES: Final = ("proxy_admin", "proxy_admin_viewer", "org_admin", "internal_user", "internal_user_viewer",
                     "team", "customer")
TEAM_ROLES: Final = ("admin", "user")
_MAX_INTEGER: Final = 2**63 - 1  # what a database integer (and orjson) holds


def _bad(name: str, expected: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid type for '{name}': expected {expected}.", param=name,
                               code="invalid_type")


class Body:
    def __init__(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise InvalidRequestError("The request body must be a JSON object.", code="invalid_body")
        self.raw: dict[str, Any] = body

    def has(self, name: str) -> bool:
        return name in self.raw

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise InvalidRequestError(f"Missing required parameter: '{name}'.", param=name,
                                          code="missing_required_parameter")
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            raise _bad(name, "a non-empty string" if required else "a string")
        return value

    def number(self, name: str) -> float | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or value != value:
            raise _bad(name, "a non-negative number")
        return float(value)

    def integer(self, name: str) -> int | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_INTEGER:
            raise _bad(name, "a non-negative integer")
        return value

    def flag(self, name: str) -> bool | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise _bad(name, "a boolean")
        return value

    def mapping(self, name: str) -> dict[str, Any] | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _bad(name, "an object")
        return value

    def strings(self, name: str) -> list[str] | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(name, "an array of strings")
        return list(value)

    def duration(self, name: str) -> str | None:
        value = self.raw.get(name)
        if value is None:
            return None
        duration_seconds(value, name)
        return str(value)

    def role(self, name: str) -> str | None:
        value = self.text(name)
        if value is not None and value not in USER_ROLES:
            raise InvalidRequestError(f"Invalid value for '{name}': {value!r}. Supported values are: "
                                      f"{', '.join(USER_ROLES)}.", param=name, code="invalid_value")
        return value

    def members(self, name: str) -> list[dict[str, Any]] | None:
        """`members_with_roles` / `member`: [{role, user_id?, user_email?}] (a single object is accepted)."""
        value = self.raw.get(name)
        if value is None:
            return None
        items = [value] if isinstance(value, dict) else value
        if not isinstance(items, list):
            raise _bad(name, "an array of members")
        members = []
        for i, m in enumerate(items):
            where = f"{name}[{i}]"
            if not isinstance(m, dict):
                raise _bad(where, "an object with role and user_id or user_email")
            role = m.get("role", "user")
            if role not in TEAM_ROLES:
                raise InvalidRequestError(f"Invalid value for '{where}.role': {role!r}. Supported values are: "
                                          "admin, user.", param=f"{where}.role", code="invalid_value")
            user_id, email = m.get("user_id"), m.get("user_email")
            if (user_id is not None and not isinstance(user_id, str)) or (
                    email is not None and not isinstance(email, str)) or (user_id is None and email is None):
                raise _bad(where, "an object with role and user_id or user_email")
            members.append({"role": role, "user_id": user_id, "user_email": email})
        return members


Reader = Callable[[Body, str], Any]
_BUDGET: Final[dict[str, Reader]] = {
    "max_budget": Body.number, "soft_budget": Body.number, "budget_duration": Body.duration,
    "rpm_limit": Body.integer, "tpm_limit": Body.integer, "max_parallel_requests": Body.integer,
    "metadata": Body.mapping, "models": Body.strings, "blocked": Body.flag, "tags": Body.strings,
}
KEY_FIELDS: Final[dict[str, Reader]] = {
    **_BUDGET, "key_alias": Body.text, "team_id": Body.text, "user_id": Body.text, "aliases": Body.mapping,
    "config": Body.mapping, "permissions": Body.mapping, "model_max_budget": Body.mapping,
    "model_rpm_limit": Body.mapping, "model_tpm_limit": Body.mapping, "allowed_cache_controls": Body.strings,
}
TEAM_FIELDS: Final[dict[str, Reader]] = {
    **_BUDGET, "team_alias": Body.text, "organization_id": Body.text, "members_with_roles": Body.members,
    "model_max_budget": Body.mapping,
}
USER_FIELDS: Final[dict[str, Reader]] = {
    **_BUDGET, "user_alias": Body.text, "user_email": Body.text, "user_role": Body.role, "teams": Body.strings,
    "model_max_budget": Body.mapping,
}
CUSTOMER_FIELDS: Final[dict[str, Reader]] = {
    **{k: v for k, v in _BUDGET.items() if k not in ("models", "tags")}, "alias": Body.text,
    "allowed_model_region": Body.text, "default_model": Body.text, "budget_id": Body.text,
    "model_max_budget": Body.mapping,
}


def read_fields(body: Body, spec: Mapping[str, Reader]) -> dict[str, Any]:
    """The fields of `spec` the body names (an explicit null included: it clears the field)."""
    return {name: reader(body, name) for name, reader in spec.items() if body.has(name)}


def page_param(value: str | None, name: str, default: int, maximum: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise InvalidRequestError(f"Invalid '{name}': expected an integer from 1 to {maximum}.", param=name,
                                  code="invalid_value")
    return int(value)
