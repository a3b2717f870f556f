"""Deployments and model groups: what `model_list` in the config describes.

A *deployment* is one upstream model reachable with one set of credentials (one `model_list`
entry). A *model group* is every deployment sharing a `model_name`; clients ask for groups.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import NotFoundError


@dataclass(frozen=True, slots=True)
class Deployment:
    model_name: str  # the group name clients send as `model`
    provider: str  # "openai", "azure", "mock", ... (the prefix of litellm_params.model)
    upstream_model: str  # the name the provider knows (after the prefix)
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    timeout: float | None = None
    max_retries: int = 0
    rpm: int | None = None
    tpm: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other litellm_params, provider-specific
    model_info: dict[str, Any] = field(default_factory=dict)
    id: str = ""  # stable; from model_info.id or derived; goes into response ids

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", deployment_id(self.model_name, self.provider, self.upstream_model,
                                                        self.api_base))


def deployment_id(model_name: str, provider: str, upstream_model: str, api_base: str | None) -> str:
    """A short id stable across restarts for the same config entry (no secrets in it)."""
    digest = hashlib.sha256(f"{model_name}\0{provider}\0{upstream_model}\0{api_base or ''}".encode())
    return digest.hexdigest()[:12]


def split_model(model: str) -> tuple[str, str]:
    """`"openai/gpt-4o"` -> `("openai", "gpt-4o")`; a bare name is taken as OpenAI's, as LiteLLM does."""
    provider, sep, name = model.partition("/")
    if not sep:
        return "openai", model
    return provider, name


class ModelRegistry:
    """Deployments by group name and by id. `router/` chooses among a group's members."""

    def __init__(self, deployments: list[Deployment]) -> None:
        self.deployments = list(deployments)
        self._groups: dict[str, list[Deployment]] = {}
        self._wildcards: dict[str, list[Deployment]] = {}  # "openai/*" -> its deployments
        self._by_id: dict[str, Deployment] = {}
        for d in self.deployments:
            target = self._wildcards if "*" in d.model_name else self._groups
            target.setdefault(d.model_name, []).append(d)
            self._by_id[d.id] = d
        self._cursor: dict[str, int] = {}

    def groups(self) -> dict[str, list[Deployment]]:
        return self._groups

    def has(self, model: str) -> bool:
        return model in self._groups or any(fnmatch.fnmatchcase(model, p) for p in self._wildcards)

    def by_id(self, deployment_id: str) -> Deployment | None:
        return self._by_id.get(deployment_id)

    def group(self, model: str) -> list[Deployment]:
        """Every deployment of the model group `model` (a wildcard match made concrete); 404 if none."""
        group = self._groups.get(model) or self._expand_wildcard(model)
        if not group:
            raise NotFoundError(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model", code="model_not_found",
            )
        return group

    def pick(self, model: str) -> Deployment:
        """The deployment for a request naming `model` when the router is off: round-robin in a group."""
        group = self.group(model)
        if len(group) == 1:
            return group[0]
        i = self._cursor.get(model, 0)
        self._cursor[model] = i + 1
        return group[i % len(group)]

    def _expand_wildcard(self, model: str) -> list[Deployment]:
        """`openai/gpt-4o` against a `openai/*` entry: a concrete group, made once and remembered."""
        for pattern, members in self._wildcards.items():
            if not fnmatch.fnmatchcase(model, pattern):
                continue
            matched = model[len(pattern.split("*", 1)[0]):] if pattern.endswith("*") else model
            group = []
            for d in members:
                upstream = d.upstream_model.replace("*", matched) if "*" in d.upstream_model else d.upstream_model
                concrete = replace(d, model_name=model, upstream_model=upstream, id="")
                group.append(concrete)
                self._by_id[concrete.id] = concrete
            self._groups[model] = group
            return group
        return []
