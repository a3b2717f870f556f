"""Reusable prompts: `prompt: {id, version, variables}` resolved from a registry, for every provider.

The registry holds the config's prompts (`prompts:` as LiteLLM writes it, read-only, `prompt_type:
"config"`) and the ones created through the admin API (`/prompts`, proxy/prompt_routes.py), kept per
version in the responses' database (store.py, postgres.py). `resolve` runs before validation on
every create: the prompt's leading system/developer messages join `instructions` (before the
request's own), its other messages go before the request's input, its front-matter sampling
defaults fill what the request leaves out, and `prompt` leaves the body (template.py).

Native OpenAI upstreams resolve their own `pmpt_…` ids: those pass through untouched, as does any id
the registry does not hold; a registry id is resolved for them too. LiteLLM's spelling
(`prompt_id`, `prompt_variables`, `prompt_version` at the top level) is read as `prompt`.

Versions never change once made, so lookups are cached for `CACHE_SECONDS` (an admin write here
drops its prompt's entries at once; other instances see it when their entry expires).
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any, Final

from ..calls import Principal
from ..config import Config
from ..errors import ConfigError, InvalidRequestError, NotFoundError
from ..store.factory import DatabaseTarget
from .store import MemoryPromptStore, PromptStore, PromptVersion, SqlitePromptStore
from .template import PromptFormatError, Rendered, check_variables

__all__ = ["PromptRegistry", "PromptVersion", "build", "config_prompts", "parse_version", "split_versioned_id"]

log = logging.getLogger("respgate.prompts")

Json = dict[str, Any]

CACHE_SECONDS: Final = 2.0
_CACHE_LIMIT: Final = 4096
_LITELLM_KEYS: Final = ("prompt_id", "prompt_variables", "prompt_version")
_PROMPT_KEYS: Final = frozenset({"id", "version", "variables"})
_ID: Final = re.compile(r"[A-Za-z0-9_][\w.:-]{0,127}")
_VERSION_SUFFIX: Final = re.compile(r"(.+)\.v([0-9]{1,9})")
_MAX_VERSION: Final = 10**9
OPENAI_PREFIX: Final = "pmpt_"


class PromptRegistry:
    def __init__(self, store: PromptStore, config_prompts: list[PromptVersion] | None = None) -> None:
        self.store = store
        self._config: dict[str, dict[int, PromptVersion]] = {}
        for p in config_prompts or []:
            self._config.setdefault(p.prompt_id, {})[p.version] = p
        self._cache: dict[tuple[str, int | None], tuple[float, PromptVersion]] = {}

    async def start(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    # --- the request path ---------------------------------------------------------------------

    @staticmethod
    def echo_of(body: dict[str, Any]) -> dict[str, Any] | None:
        """The request's prompt as the Response echoes it (`prompt` or LiteLLM's keys), None without one.
        `resolve` takes it out of the body, so the caller keeps this for the Response."""
        spec, _ = _take_prompt(body)
        if not isinstance(spec, dict):
            return None
        return {"id": spec.get("id"), "variables": spec.get("variables"), "version": spec.get("version")}

    async def resolve(self, body: dict[str, Any], *, native: bool, principal: Principal) -> dict[str, Any]:
        """The request with its `prompt` applied (native upstreams keep their own `pmpt_` ids)."""
        spec, rest = _take_prompt(body)
        if spec is None:
            return rest
        prompt_id, version, variables = _read_spec(spec)
        if native and prompt_id.startswith(OPENAI_PREFIX) and prompt_id not in self._config:
            return {**rest, "prompt": spec}  # OpenAI's own prompt: OpenAI renders it
        try:
            number = parse_version(version, param="prompt.version")
        except InvalidRequestError:
            if native:
                return {**rest, "prompt": spec}
            raise
        found = await self.find(prompt_id, number)
        if found is None:
            if native:  # not ours: the upstream has the last word on its own prompts
                return {**rest, "prompt": spec}
            raise await self._not_found(prompt_id, number)
        rendered = found.template.render(check_variables(found.template, variables))
        return apply(rest, rendered)

    async def _not_found(self, prompt_id: str, version: int | None) -> InvalidRequestError | NotFoundError:
        if prompt_id.startswith(OPENAI_PREFIX):
            return InvalidRequestError(
                f"Prompt '{prompt_id}' is an OpenAI prompt id: only OpenAI resolves it, so it works with models "
                "served by OpenAI or Azure. Create the prompt in this gateway (POST /prompts) to use it with "
                "any model.", param="prompt.id", code="unsupported_value")
        if version is not None and await self.find(prompt_id, None) is not None:
            return NotFoundError(f"Prompt '{prompt_id}' has no version {version}.", param="prompt.version",
                                 code="prompt_version_not_found")
        return NotFoundError(f"Prompt with id '{prompt_id}' not found.", param="prompt.id", code="prompt_not_found")

    async def find(self, prompt_id: str, version: int | None) -> PromptVersion | None:
        """A prompt version (newest when `version` is None): the config's first, then the store's."""
        configured = self._config.get(prompt_id)
        if configured is not None:
            return configured.get(version if version is not None else max(configured))
        cached = self._cached(prompt_id, version)
        if cached is not None:
            return cached
        found = await self.store.get(prompt_id, version)
        if found is not None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            expires = time.monotonic() + CACHE_SECONDS
            self._cache[(prompt_id, version)] = (expires, found)
            self._cache[(prompt_id, found.version)] = (expires, found)
        return found

    def _cached(self, prompt_id: str, version: int | None) -> PromptVersion | None:
        entry = self._cache.get((prompt_id, version))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def _forget(self, prompt_id: str) -> None:
        for key in [k for k in self._cache if k[0] == prompt_id]:
            del self._cache[key]

    # --- the admin API ------------------------------------------------------------------------

    def is_config(self, prompt_id: str) -> bool:
        return prompt_id in self._config

    async def create(self, prompt_id: Any, litellm_params: Any, prompt_info: Any = None) -> PromptVersion:
        """A new version of `prompt_id` (version 1 for a new prompt); config prompts are read-only."""
        if not isinstance(prompt_id, str) or not _ID.fullmatch(prompt_id) or _VERSION_SUFFIX.fullmatch(prompt_id):
            raise InvalidRequestError("prompt_id must be 1-128 letters, digits, '_', '.', ':' or '-', not ending in "
                                      "a version suffix like '.v2'.", param="prompt_id", code="invalid_value")
        if prompt_id.startswith(OPENAI_PREFIX):
            raise InvalidRequestError(f"Prompt ids starting with '{OPENAI_PREFIX}' are OpenAI's.", param="prompt_id",
                                      code="invalid_value")
        if prompt_id in self._config:
            raise InvalidRequestError(f"Prompt '{prompt_id}' comes from the config file: change it there.",
                                      param="prompt_id", code="config_prompt")
        if prompt_info is not None and not isinstance(prompt_info, dict):
            raise InvalidRequestError("prompt_info must be an object.", param="prompt_info", code="invalid_type")
        params = _checked_params(prompt_id, litellm_params)
        made = await self.store.add(prompt_id, params, {**(prompt_info or {}), "prompt_type": "db"})
        self._forget(prompt_id)
        return made

    async def delete(self, prompt_id: str) -> int:
        if prompt_id in self._config:
            raise InvalidRequestError(f"Prompt '{prompt_id}' comes from the config file: remove it there.",
                                      param="prompt_id", code="config_prompt")
        removed = await self.store.delete(prompt_id)
        self._forget(prompt_id)
        return removed

    async def versions(self, prompt_id: str) -> list[PromptVersion]:
        configured = self._config.get(prompt_id)
        if configured is not None:
            return [configured[v] for v in sorted(configured, reverse=True)]
        return await self.store.versions(prompt_id)

    async def latest(self) -> list[PromptVersion]:
        """The newest version of every prompt: the config's, then the store's."""
        mine = [versions[max(versions)] for _, versions in sorted(self._config.items())]
        return mine + [p for p in await self.store.latest() if p.prompt_id not in self._config]


def _checked_params(prompt_id: str, litellm_params: Any) -> Json:
    if not isinstance(litellm_params, dict):
        raise InvalidRequestError("litellm_params must be an object.", param="litellm_params", code="invalid_type")
    params = dict(litellm_params)
    if params.get("prompt_integration") == "dotprompt" and (params.get("prompt_directory") is not None
                                                             or params.get("prompt_file") is not None):
        raise InvalidRequestError("Prompts created through the API carry their text (dotprompt_content or "
                                  "prompt_data); files are read only from the config.",
                                  param="litellm_params.prompt_directory", code="invalid_value")
    params.pop("prompt_id", None)  # LiteLLM repeats the id here; the path / body's own id is the one
    try:
        PromptVersion.make(prompt_id, 1, params, {}, 0.0)
    except PromptFormatError as e:
        param = "litellm_params" + (f".{e.field}" if e.field else "")
        raise InvalidRequestError(f"Invalid prompt: {e}.", param=param, code="invalid_value") from None
    return params


# --- applying a prompt to a request -------------------------------------------------------------------

def _take_prompt(body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(the prompt object or None, the body without any prompt field); LiteLLM's keys become one."""
    spec = body.get("prompt")
    rest = {k: v for k, v in body.items() if k != "prompt" and k not in _LITELLM_KEYS}
    if spec is None and body.get("prompt_id") is not None:
        spec = {"id": body["prompt_id"]}
        if body.get("prompt_version") is not None:
            spec["version"] = str(body["prompt_version"])
        if body.get("prompt_variables") is not None:
            spec["variables"] = body["prompt_variables"]
    return spec, rest


def _read_spec(spec: Any) -> tuple[str, Any, Any]:
    if not isinstance(spec, dict):
        raise InvalidRequestError("Invalid type for 'prompt': expected an object with 'id', 'version' and "
                                  "'variables'.", param="prompt", code="invalid_type")
    unknown = sorted(set(spec) - _PROMPT_KEYS)
    if unknown:
        raise InvalidRequestError(f"Unknown parameter: 'prompt.{unknown[0]}'.", param=f"prompt.{unknown[0]}",
                                  code="unknown_parameter")
    prompt_id = spec.get("id")
    if not isinstance(prompt_id, str) or not prompt_id:
        raise InvalidRequestError("Missing required parameter: 'prompt.id'.", param="prompt.id",
                                  code="missing_required_parameter")
    return prompt_id, spec.get("version"), spec.get("variables")


def parse_version(version: Any, *, param: str) -> int | None:
    """"2", "v2" or 2 -> 2; None or "latest" -> None (the newest)."""
    if version is None or version == "latest":
        return None
    text = str(version).strip().removeprefix("v") if isinstance(version, str | int) else ""
    if isinstance(version, bool) or not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= _MAX_VERSION:
        raise InvalidRequestError(f"Invalid '{param}': expected a version number such as \"2\".", param=param,
                                  code="invalid_value")
    return int(text)


def split_versioned_id(path_id: str) -> tuple[str, int | None]:
    """LiteLLM's `id.v2` path form -> ("id", 2)."""
    match = _VERSION_SUFFIX.fullmatch(path_id)
    return (match.group(1), int(match.group(2))) if match else (path_id, None)


def apply(body: dict[str, Any], rendered: Rendered) -> dict[str, Any]:
    """`body` (already without `prompt`) with the rendered prompt in front of its own instructions and input."""
    out = dict(body)
    own = body.get("instructions")
    if rendered.instructions:
        if isinstance(own, str) and own:
            out["instructions"] = rendered.instructions + "\n\n" + own
        elif own is None or own == "":
            out["instructions"] = rendered.instructions
    if rendered.messages:
        given = body.get("input")
        if given is None:
            out["input"] = list(rendered.messages)
        elif isinstance(given, str):
            out["input"] = [*rendered.messages, {"type": "message", "role": "user", "content": given}]
        elif isinstance(given, list):
            out["input"] = [*rendered.messages, *given]
    for key, value in rendered.defaults.items():
        if out.get(key) is None:
            out[key] = value
    return out


# --- building from the config --------------------------------------------------------------------------

def build(config: Config, database: DatabaseTarget) -> PromptRegistry:
    store: PromptStore
    if database.kind == "sqlite":
        store = SqlitePromptStore(database.location)
    elif database.kind == "postgres":
        from .postgres import PostgresPromptStore

        store = PostgresPromptStore(database.location)
    else:
        store = MemoryPromptStore()
    directory = config.litellm_settings.extra.get("global_prompt_directory")
    return PromptRegistry(store, config_prompts(config.sections.get("prompts"), directory))


def config_prompts(section: Any, global_directory: Any = None) -> list[PromptVersion]:
    """The `prompts:` section: LiteLLM's entries (prompt_id, litellm_params, prompt_info) and inline ones
    (prompt_id, version, instructions, input). Integrations other than dotprompt are skipped, warned."""
    if section is None:
        return []
    if not isinstance(section, list):
        raise ConfigError("prompts", "expected a list of prompts")
    out: list[PromptVersion] = []
    for i, entry in enumerate(section):
        key = f"prompts[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("prompt_id"), str) or not entry["prompt_id"]:
            raise ConfigError(key, "each prompt needs a prompt_id")
        prompt_id = entry["prompt_id"]
        params = dict(entry.get("litellm_params") or {})
        for name in ("instructions", "input"):
            if name in entry:
                params[name] = entry[name]
                params.setdefault("prompt_integration", "inline")
        integration = params.get("prompt_integration", "dotprompt")
        if integration not in ("dotprompt", "inline"):
            log.warning("prompt %r: prompt_integration %r is not supported; skipped", prompt_id, integration)
            continue
        params.pop("prompt_id", None)
        _read_file(prompt_id, params, global_directory, key)
        try:
            version = parse_version(entry.get("version"), param=f"{key}.version") or 1
        except InvalidRequestError:
            raise ConfigError(f"{key}.version", "expected a version number") from None
        info = {**(entry.get("prompt_info") or {}), "prompt_type": "config"}
        try:
            out.append(PromptVersion.make(prompt_id, version, params, info, 0.0))
        except PromptFormatError as e:
            raise ConfigError(f"{key}.litellm_params" + (f".{e.field}" if e.field else ""), str(e)) from None
    return out


def _read_file(prompt_id: str, params: Json, global_directory: Any, key: str) -> None:
    """A `.prompt` file (`prompt_file`, or `<prompt_directory>/<id>.prompt`) becomes `dotprompt_content`."""
    if params.get("dotprompt_content") is not None or params.get("prompt_data") is not None:
        return
    if params.get("instructions") is not None or params.get("input") is not None:
        return
    path = params.pop("prompt_file", None)
    directory = params.pop("prompt_directory", None) or global_directory
    if path is None and directory is not None:
        path = os.path.join(str(directory), f"{prompt_id}.prompt")
    if path is None:
        raise ConfigError(f"{key}.litellm_params", "a dotprompt needs dotprompt_content, prompt_data, prompt_file "
                                                   "or prompt_directory")
    try:
        with open(str(path), encoding="utf-8") as f:
            params["dotprompt_content"] = f.read()
    except OSError as e:
        raise ConfigError(f"{key}.litellm_params", f"cannot read {path}: {e.strerror}") from None
