"""What the key manager stores: keys, teams, internal users and customers (end users), as `Entity`s.

One shape for the four kinds: an id, LiteLLM-named attributes in `fields` (stored as JSON, shown by
the admin API), the spend of the current budget period and when that period ends. The limits the
hot path reads are copied out of `fields` into plain attributes by `derive()`, once per load.

The JSON views keep LiteLLM's names and shapes (`LiteLLM_VerificationToken`, `LiteLLM_TeamTable`,
`LiteLLM_UserTable`, `LiteLLM_EndUserTable` with its nested `litellm_budget_table`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..errors import InvalidRequestError
from .durations import duration_seconds, iso

Kind = Literal["key", "team", "user", "customer"]
KINDS: Final = ("key", "team", "user", "customer")
ALL_PROXY_MODELS: Final = "all-proxy-models"
ALL_TEAM_MODELS: Final = "all-team-models"
PROXY_ADMIN: Final = "proxy_admin"

# The field each kind is looked up by in /…/list filters and in LiteLLM's views.
_ALIAS_FIELD: Final = {"key": "key_alias", "team": "team_alias", "user": "user_email", "customer": "alias"}


@dataclass(slots=True)
class Window:
    """One entity's rate-limit state on this instance: the current minute's requests and tokens,
    and the calls in flight."""

    minute: int = 0
    requests: int = 0
    tokens: int = 0
    active: int = 0


@dataclass(slots=True, eq=False)
class Entity:
    kind: Kind
    id: str
    fields: dict[str, Any]
    spend: float = 0.0
    budget_reset_at: float | None = None  # epoch seconds: the end of the current budget period
    created_at: float = 0.0
    # Derived by `derive()` for the hot path.
    max_budget: float | None = None
    period: float | None = None  # budget_duration in seconds
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel: int | None = None
    blocked: bool = False
    expires: float | None = None
    models: tuple[str, ...] = ()
    limited: bool = False  # any of rpm / tpm / parallel set
    window: Window = field(default_factory=Window)
    loaded: float = 0.0  # monotonic time of the last load from storage
    used: bool = False  # seen by a request since the last refresh

    def derive(self, period: float | None) -> Entity:
        f = self.fields
        self.max_budget = _num(f.get("max_budget"))
        self.period = period
        self.rpm_limit = _int(f.get("rpm_limit"))
        self.tpm_limit = _int(f.get("tpm_limit"))
        self.max_parallel = _int(f.get("max_parallel_requests"))
        self.blocked = f.get("blocked") is True
        self.expires = _num(f.get("expires"))
        models = f.get("models")
        self.models = tuple(m for m in models if isinstance(m, str)) if isinstance(models, list) else ()
        self.limited = self.rpm_limit is not None or self.tpm_limit is not None or self.max_parallel is not None
        return self

    @property
    def marker(self) -> float:
        """Names the budget period (0 for a budget that never resets): spend is added per period."""
        return self.budget_reset_at or 0.0

    @property
    def alias(self) -> str | None:
        value = self.fields.get(_ALIAS_FIELD[self.kind])
        return value if isinstance(value, str) else None

    @property
    def team_id(self) -> str | None:
        value = self.fields.get("team_id")
        return value if isinstance(value, str) else None

    @property
    def user_id(self) -> str | None:
        value = self.fields.get("user_id") if self.kind == "key" else None
        return value if isinstance(value, str) else None

    @property
    def metadata(self) -> dict[str, Any]:
        value = self.fields.get("metadata")
        return value if isinstance(value, dict) else {}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- LiteLLM's views ---------------------------------------------------------------------------------

_KEY_FIELDS: Final = (
    "key_name", "key_alias", "spend", "expires", "models", "aliases", "config", "user_id", "team_id",
    "permissions", "max_parallel_requests", "metadata", "blocked", "tpm_limit", "rpm_limit", "max_budget",
    "budget_duration", "budget_reset_at", "allowed_cache_controls", "soft_budget", "model_max_budget",
    "model_rpm_limit", "model_tpm_limit", "tags", "created_at", "created_by", "updated_at", "updated_by")
_TEAM_FIELDS: Final = (
    "team_alias", "team_id", "organization_id", "admins", "members", "members_with_roles", "metadata",
    "tpm_limit", "rpm_limit", "max_budget", "soft_budget", "budget_duration", "models", "blocked", "spend",
    "max_parallel_requests", "budget_reset_at", "model_id", "tags", "created_at", "updated_at")
_USER_FIELDS: Final = (
    "user_id", "user_alias", "user_email", "user_role", "teams", "max_budget", "soft_budget", "spend",
    "models", "tpm_limit", "rpm_limit", "max_parallel_requests", "budget_duration", "budget_reset_at",
    "metadata", "created_at", "updated_at")
_CUSTOMER_FIELDS: Final = ("user_id", "alias", "spend", "allowed_model_region", "default_model", "budget_id",
                           "blocked", "metadata")
BUDGET_FIELDS: Final = ("max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit",
                        "model_max_budget", "budget_duration")
_LISTS: Final = frozenset({"models", "admins", "members", "members_with_roles", "teams", "allowed_cache_controls"})
_DICTS: Final = frozenset({"metadata", "aliases", "config", "permissions", "model_max_budget"})
_TIMES: Final = frozenset({"expires", "created_at", "updated_at"})


def _value(e: Entity, name: str) -> Any:
    if name == "spend":
        return e.spend
    if name == "budget_reset_at":
        return iso(e.budget_reset_at)
    if name == "created_at":
        return iso(e.created_at)
    value = e.fields.get(name)
    if value is None:
        if name in _LISTS:
            return []
        if name in _DICTS:
            return {}
        if name == "blocked" and e.kind != "key":
            return False
        return None
    return iso(value) if name in _TIMES else value


def key_view(e: Entity, *, token: bool = True) -> dict[str, Any]:
    """`LiteLLM_VerificationToken` as /key/info and /key/list show it (`token` is the hash id)."""
    view = {"token": e.id} if token else {}
    view.update((name, _value(e, name)) for name in _KEY_FIELDS)
    return view


def team_view(e: Entity) -> dict[str, Any]:
    return {name: _value(e, name) for name in _TEAM_FIELDS}


def user_view(e: Entity) -> dict[str, Any]:
    return {name: _value(e, name) for name in _USER_FIELDS}


def customer_view(e: Entity) -> dict[str, Any]:
    """`LiteLLM_EndUserTable`: the budget fields live in the nested `litellm_budget_table`."""
    view = {name: _value(e, name) for name in _CUSTOMER_FIELDS}
    budget = {name: e.fields.get(name) for name in BUDGET_FIELDS}
    has_budget = any(v is not None for v in budget.values())
    view["litellm_budget_table"] = ({"budget_id": e.fields.get("budget_id"), **budget,
                                     "budget_reset_at": iso(e.budget_reset_at)} if has_budget else None)
    return view


VIEWS: Final = {"key": key_view, "team": team_view, "user": user_view, "customer": customer_view}


def make_entity(kind: Kind, id: str, fields: dict[str, Any], spend: float = 0.0,
                budget_reset_at: float | None = None, created_at: float = 0.0) -> Entity:
    """An entity from stored values (the budget_duration was validated when it was written)."""
    duration = fields.get("budget_duration")
    try:
        period = duration_seconds(duration, "budget_duration") if duration is not None else None
    except InvalidRequestError:
        period = None
    return Entity(kind, id, fields, spend, budget_reset_at, created_at).derive(period)
