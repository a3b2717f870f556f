"""Which model groups a key may call: LiteLLM's rules.

A key's `models`, its team's and (for a personal key) its user's must each allow the model. Empty or
`all-proxy-models` allows every model; `all-team-models` on a key defers to its team; a name may be
a model group, a wildcard (`openai/*`), or an access group (`model_info.access_groups` of the
deployments in the config).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ..errors import RespgateError
from .records import ALL_PROXY_MODELS, ALL_TEAM_MODELS, Entity
from .refusals import model_denied

_NONE: Final[frozenset[str]] = frozenset()


def restricts(models: tuple[str, ...]) -> bool:
    return bool(models) and ALL_PROXY_MODELS not in models and models != (ALL_TEAM_MODELS,)


class ModelAccess:
    def __init__(self, access_groups: Mapping[str, frozenset[str]] | None = None) -> None:
        self._groups = dict(access_groups or {})  # model group -> its access groups
        self._members: dict[str, set[str]] = {}  # access group -> its model groups
        for model, groups in self._groups.items():
            for g in groups:
                self._members.setdefault(g, set()).add(model)

    def names(self, key: Entity, team: Entity | None, user: Entity | None) -> frozenset[str] | None:
        """The model groups a key is limited to (access groups expanded), for `Principal.models`;
        None when nothing restricts it."""
        for e in (key, team, user if team is None else None):
            if e is not None and restricts(e.models):
                names = set(e.models)
                for group in e.models:
                    names |= self._members.get(group, set())
                return frozenset(names)
        return None

    def refusal(self, key: Entity, team: Entity | None, user: Entity | None, model: str) -> RespgateError | None:
        checks: list[tuple[str, Entity]] = []
        if ALL_TEAM_MODELS not in key.models:
            checks.append(("key", key))
        if team is not None:
            checks.append(("team", team))
        elif user is not None:
            checks.append(("user", user))
        for kind, e in checks:
            if not self.allows(e.models, model):
                return model_denied(kind, e.models, model)
        return None

    def allows(self, models: tuple[str, ...], model: str) -> bool:
        if not restricts(models) or model in models:
            return True
        if any(m.endswith("*") and model.startswith(m[:-1]) for m in models):
            return True
        return not self._groups.get(model, _NONE).isdisjoint(models)
