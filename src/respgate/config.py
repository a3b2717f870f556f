"""LiteLLM's `config.yaml`, read into typed settings and `Deployment`s.

The shape is LiteLLM's (`model_list` / `litellm_params` / `model_info`, `general_settings`,
`router_settings`, `litellm_settings`, `os.environ/NAME` references) so a LiteLLM config loads
unchanged. Every mistake raises `ConfigError` naming the key (`model_list[2].litellm_params.rpm`);
no message or log line ever carries a configured value, since any of them may be a secret.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

import yaml

from .deployments import Deployment, deployment_id, split_model
from .errors import ConfigError
from .providers.chat.profiles import PROFILES
from .providers.registry import known_providers
from .router.settings import parse_router_settings

__all__ = ["Config", "GeneralSettings", "LitellmSettings", "config_from_dicts", "load_config",
           "provider_env_defaults"]

log = logging.getLogger("respgate.config")

ENV_REF_PREFIX: Final = "os.environ/"
DEFAULT_MAX_REQUEST_BODY_BYTES: Final = 20 * 1024 * 1024
DEFAULT_REQUEST_TIMEOUT: Final = 600.0
PACKAGED_CONFIG: Final = "example_config.yaml"

# Keys LiteLLM documents, so that a LiteLLM config loads without warnings; anything else is reported.
_TOP_LEVEL_KEYS: Final = frozenset({
    "model_list", "general_settings", "router_settings", "litellm_settings", "environment_variables",
    "callback_settings", "include", "guardrails", "mcp_servers", "mcp_tools", "vector_store_registry",
    "search_tools", "credential_list", "assistant_settings", "files_settings", "finetune_settings",
    "prompts", "model_group_settings", "agents", "vector_stores",
})
_OWN_SECTIONS: Final = frozenset({
    "model_list", "general_settings", "router_settings", "litellm_settings", "environment_variables"})
_GENERAL_KEYS: Final = frozenset({
    "master_key", "database_url", "alerting", "alerting_threshold", "alerting_args", "alert_types",
    "alert_to_webhook_url", "store_model_in_db", "supported_db_objects", "disable_spend_logs",
    "disable_spend_updates", "disable_master_key_return", "disable_retry_on_max_parallel_request_limit_error",
    "disable_reset_budget", "disable_adding_master_key_hash_to_db", "disable_responses_id_security",
    "enable_jwt_auth", "enforce_user_param", "reject_clientside_metadata_tags", "allowed_routes",
    "key_management_system", "key_management_settings", "database_connection_pool_limit",
    "database_connection_timeout", "allow_requests_on_db_unavailable", "custom_auth", "max_parallel_requests",
    "global_max_parallel_requests", "infer_model_from_keys", "background_health_checks",
    "health_check_interval", "health_check_details", "use_client_credentials_pass_through_routes",
    "public_routes", "admin_only_routes", "enforced_params", "enable_oauth2_auth", "enable_oauth2_proxy_auth",
    "use_x_forwarded_for", "service_account_settings", "image_generation_model", "embedding_model",
    "moderation_model", "completion_model", "user_mcp_management_mode", "store_prompts_in_spend_logs",
    "store_prompts_in_cold_storage", "max_request_size_mb", "max_response_size_mb",
    "proxy_budget_rescheduler_min_time", "proxy_budget_rescheduler_max_time", "proxy_batch_write_at",
    "proxy_batch_polling_interval", "custom_key_generate", "allowed_ips", "default_team_disabled",
    "allow_user_auth", "user_api_key_cache_ttl", "disable_prisma_schema_update", "litellm_key_header_name",
    "custom_sso", "allow_client_side_credentials", "use_azure_key_vault", "use_google_kms",
    "spend_report_frequency", "ui_access_mode", "litellm_jwtauth", "litellm_license",
    "oauth2_config_mappings", "pass_through_endpoints", "forward_openai_org_id",
    "forward_client_headers_to_llm_api", "maximum_spend_logs_retention_period",
    "maximum_spend_logs_retention_interval", "allow_origins",
    # respgate's own, read by the packages that own them (tools/mcp: the MCP loop's bounds)
    "mcp_tool_timeout", "mcp_list_timeout", "mcp_max_output_chars", "mcp_max_tool_calls", "mcp_max_rounds",
    "mcp_allow_request_servers",
    # (wsmode/limits.py: the WebSocket mode's limits per connection)
    "websocket_max_messages_per_second", "websocket_max_queued_bytes", "websocket_send_timeout_seconds",
    "websocket_idle_timeout_seconds", "websocket_max_connection_seconds", "websocket_max_in_flight",
    "websocket_max_lanes", "websocket_max_pending_steers",
    # (security/: the limits on a request's head and on slow clients, read by security/limits.py)
    "max_request_header_bytes", "max_request_headers", "request_header_timeout", "request_body_timeout",
    "keep_alive_timeout", "limit_concurrency",
})
_GENERAL_OWN_KEYS: Final = frozenset({
    "master_key", "database_url", "max_request_body_bytes", "max_request_size_mb", "request_timeout",
    "allow_unauthenticated_public", "response_retention_days", "retention_sweep_interval_seconds",
    "compaction_mode", "compaction_model",
})
_ROUTER_KEYS: Final = frozenset({
    "routing_strategy", "routing_strategy_args", "num_retries", "timeout", "stream_timeout", "fallbacks",
    "content_policy_fallbacks", "context_window_fallbacks", "default_fallbacks", "max_fallbacks",
    "redis_host", "redis_port", "redis_password", "redis_url", "redis_db", "allowed_fails",
    "allowed_fails_policy", "cooldown_time", "disable_cooldowns", "retry_policy", "model_group_retry_policy",
    "retry_after", "enable_pre_call_check", "enable_pre_call_checks", "optional_pre_call_checks",
    "enable_tag_filtering", "tag_filtering_match_any", "default_max_parallel_requests", "default_priority",
    "polling_interval", "default_litellm_params", "debug_level", "client_ttl", "cache_kwargs",
    "cache_responses", "caching_groups", "model_group_alias", "set_verbose", "provider_budget_config",
    "deployment_affinity_ttl_seconds", "ignore_invalid_deployments", "search_tools", "guardrail_list",
    "router_general_settings", "alerting_config", "assistants_config",
})
_LITELLM_KEYS: Final = frozenset({
    "drop_params", "callbacks", "success_callback", "failure_callback", "service_callbacks",
    "service_callback", "set_verbose", "json_logs", "num_retries", "request_timeout", "force_ipv4",
    "cache", "cache_params", "turn_off_message_logging", "redact_user_api_key_info", "langfuse_default_tags",
    "modify_params", "enable_preview_features", "default_fallbacks", "content_policy_fallbacks",
    "context_window_fallbacks", "fallbacks", "mcp_aliases", "disable_end_user_cost_tracking",
    "disable_end_user_cost_tracking_prometheus_only", "key_generation_settings",
    "disable_add_transform_inline_image_block", "use_chat_completions_url_for_anthropic_messages",
    "disable_hf_tokenizer_download", "enable_json_schema_validation", "enable_key_alias_format_validation",
    "disable_copilot_system_to_assistant", "max_parallel_requests", "cold_storage_custom_logger",
    "s3_callback_params", "max_budget", "budget_duration", "max_internal_user_budget",
    "internal_user_budget_duration", "default_team_settings", "default_key_generate_params",
    "upperbound_key_generate_params", "default_internal_user_params", "telemetry", "success_callback_params",
    "require_auth_for_metrics_endpoint", "user_url_validation", "user_url_allowed_hosts",
})

# Where LiteLLM looks when a deployment leaves a credential out: first variable set wins.
_PROVIDER_ENV: Final[dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "openai": (("api_key", ("OPENAI_API_KEY",)), ("api_base", ("OPENAI_BASE_URL", "OPENAI_API_BASE"))),
    "azure": (("api_key", ("AZURE_API_KEY",)), ("api_base", ("AZURE_API_BASE",)),
              ("api_version", ("AZURE_API_VERSION",))),
    "anthropic": (("api_key", ("ANTHROPIC_API_KEY",)), ("api_base", ("ANTHROPIC_API_BASE",))),
    "gemini": (("api_key", ("GEMINI_API_KEY",)),),
}


def provider_env_defaults(provider: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`api_key` / `api_base` / `api_version` a provider takes from the environment when not configured."""
    env = os.environ if env is None else env
    found: dict[str, str] = {}
    table = _PROVIDER_ENV.get(provider)
    if table is None and (profile := PROFILES.get(provider)) is not None:
        table = (("api_key", profile.api_key_env), ("api_base", profile.api_base_env))
    for param, names in table or ():
        value = next((env[n] for n in names if env.get(n)), None)
        if value is not None:
            found[param] = value
    return found


@dataclass(frozen=True, slots=True)
class GeneralSettings:
    master_key: str | None = None
    database_url: str | None = None
    max_request_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_BYTES
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    allow_unauthenticated_public: bool = False
    response_retention_days: float | None = None  # stored content older than this is deleted (retention.py)
    retention_sweep_interval_seconds: float = 3600.0
    # /responses/compact for providers without their own: "summary" (a model writes it) or "lossless"
    compaction_mode: str = "summary"
    compaction_model: str | None = None  # the model group that writes summaries; default: the one asked
    extra: dict[str, Any] = field(default_factory=dict)  # every other general_settings key, as given


@dataclass(frozen=True, slots=True)
class LitellmSettings:
    drop_params: bool = False
    request_timeout: float | None = None
    num_retries: int | None = None
    callbacks: list[Any] = field(default_factory=list)
    success_callback: list[Any] = field(default_factory=list)
    failure_callback: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Config:
    deployments: list[Deployment]
    router_settings: dict[str, Any]
    general: GeneralSettings
    litellm_settings: LitellmSettings
    source: str  # the file read, or the packaged default
    # The other top-level sections (guardrails, mcp_servers, prompts, callback_settings, ...), env refs
    # resolved; each is read and checked by the package that owns it.
    sections: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Config:
        """No model groups: every call names its deployment (the SDK's default)."""
        return cls(deployments=[], router_settings={}, general=GeneralSettings(),
                   litellm_settings=LitellmSettings(), source="(none)")


def load_config(path: str | None) -> Config:
    """The config at `path`; `None` loads the packaged default, which keeps the mock models and adds
    OpenAI / Azure only when their keys are in the environment (silently, it is not the user's file)."""
    if path is None:
        text = resources.files("respgate").joinpath(PACKAGED_CONFIG).read_text(encoding="utf-8")
        return _build(text, f"respgate:{PACKAGED_CONFIG}", packaged=True)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(path, "config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read the config file ({type(exc).__name__})") from None
    return _build(text, path, packaged=False)


def config_from_dicts(model_list: list[Any], router_settings: Mapping[str, Any] | None = None,
                      source: str = "(sdk Router)") -> Config:
    """A Config from Python values, as `respgate.Router(model_list=..., **router_settings)` gives them;
    checked and resolved (`os.environ/NAME`) exactly like a config file."""
    env = dict(os.environ)
    data = _EnvResolver(env, quiet=False).resolve({"model_list": model_list,
                                                   "router_settings": dict(router_settings or {})}, "")
    router = data["router_settings"]
    _warn_unknown(router, _ROUTER_KEYS, "router_settings")
    _check_router(router)
    return Config(deployments=_deployments(data["model_list"], env, packaged=False), router_settings=router,
                  general=GeneralSettings(), litellm_settings=LitellmSettings(), source=source)


def _build(text: str, source: str, *, packaged: bool) -> Config:
    raw = _parse_yaml(text, source)
    for key in raw:
        if key not in _TOP_LEVEL_KEYS:
            log.warning("config %s: unknown top-level key %r is ignored", source, key)
    env_overlay = _mapping(raw.get("environment_variables"), "environment_variables")
    env: dict[str, str] = dict(os.environ)
    env.update({str(k): str(v) for k, v in env_overlay.items() if v is not None})
    resolver = _EnvResolver(env, quiet=packaged)
    data = resolver.resolve(raw, "")
    deployments = _deployments(data.get("model_list"), env, packaged=packaged)
    router = _mapping(data.get("router_settings"), "router_settings")
    _warn_unknown(router, _ROUTER_KEYS, "router_settings")
    _check_router(router)
    return Config(
        deployments=deployments,
        router_settings=router,
        general=_general(_mapping(data.get("general_settings"), "general_settings"), env),
        litellm_settings=_litellm(_mapping(data.get("litellm_settings"), "litellm_settings")),
        source=source,
        sections={k: v for k, v in data.items() if k not in _OWN_SECTIONS and k in _TOP_LEVEL_KEYS},
    )


def _parse_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the position and the parser's complaint: the offending line itself may hold a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(where, f"YAML syntax error: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("(root)", f"expected a mapping of sections, got {_kind(raw)}")
    return raw


class _EnvResolver:
    """Replaces `os.environ/NAME` strings anywhere in the tree; YAML dates become ISO strings
    (`api_version: 2024-06-01` is a date to YAML, a string to every provider)."""

    def __init__(self, env: Mapping[str, str], *, quiet: bool) -> None:
        self._env = env
        self._quiet = quiet

    def resolve(self, value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: self.resolve(v, _join(key, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, str) and value.startswith(ENV_REF_PREFIX):
            return self._lookup(value[len(ENV_REF_PREFIX):], key)
        return value

    def _lookup(self, name: str, key: str) -> str | None:
        found = self._env.get(name)
        if found:
            return found
        level = logging.DEBUG if self._quiet else logging.WARNING
        log.log(level, "config %s: environment variable %s is not set; using null", key or "(root)", name)
        return None


# Providers LiteLLM knows that respgate does not serve yet: a config naming them still loads (with a
# warning, leaving those deployments out); any other unknown provider is a typo and stops start-up.
LITELLM_PROVIDERS = frozenset({
    "anthropic", "gemini", "vertex_ai", "vertex_ai_beta", "bedrock", "bedrock_converse", "sagemaker", "deepseek",
    "groq", "mistral", "ollama", "ollama_chat", "openrouter", "together_ai", "fireworks_ai", "hosted_vllm", "vllm",
    "xai", "cohere", "cohere_chat", "perplexity", "azure_ai", "databricks", "watsonx", "huggingface", "cerebras",
    "sambanova", "nvidia_nim", "deepinfra", "lm_studio", "litellm_proxy", "text-completion-openai", "replicate",
    "ai21", "cloudflare", "friendliai", "github", "dashscope", "moonshot", "volcengine", "openai_like",
    "custom_openai", "anyscale", "nscale", "novita", "nebius", "llamafile", "lambda_ai", "hyperbolic", "featherless_ai",
})


def _deployments(model_list: Any, env: Mapping[str, str], *, packaged: bool) -> list[Deployment]:
    if model_list is None:
        return []
    if not isinstance(model_list, list):
        raise ConfigError("model_list", f"expected a list of deployments, got {_kind(model_list)}")
    deployments: list[Deployment] = []
    seen_ids: set[str] = set()
    for i, entry in enumerate(model_list):
        d = _deployment(entry, f"model_list[{i}]", env)
        if packaged and d.api_key is None and d.provider != "mock":
            continue
        if d.provider not in known_providers():
            log.warning("model_list[%d]: provider `%s` is not supported by respgate yet; deployment `%s` is "
                        "left out", i, d.provider, d.model_name)
            continue
        d = _unique_id(d, seen_ids, f"model_list[{i}].model_info.id")
        seen_ids.add(d.id)
        deployments.append(d)
    return deployments


def _unique_id(d: Deployment, seen: set[str], key: str) -> Deployment:
    """Explicit ids must be unique; derived ones get a suffix, as LiteLLM allows repeated entries."""
    if d.id not in seen:
        return d
    if d.model_info.get("id") is not None:
        raise ConfigError(key, "duplicate deployment id")
    n = 2
    while f"{d.id}-{n}" in seen:
        n += 1
    return _replace_id(d, f"{d.id}-{n}")


def _replace_id(d: Deployment, new_id: str) -> Deployment:
    return Deployment(d.model_name, d.provider, d.upstream_model, api_base=d.api_base, api_key=d.api_key,
                      api_version=d.api_version, timeout=d.timeout, max_retries=d.max_retries, rpm=d.rpm,
                      tpm=d.tpm, extra=d.extra, model_info=d.model_info, id=new_id)


# litellm_params with a Deployment field; every other one goes to Deployment.extra untouched.
_CREDENTIALS: Final = ("api_base", "api_key", "api_version")
_DEPLOYMENT_OWN: Final = ("model", *_CREDENTIALS, "timeout", "max_retries", "rpm", "tpm")


def _deployment(entry: Any, key: str, env: Mapping[str, str]) -> Deployment:
    if not isinstance(entry, dict):
        raise ConfigError(key, f"expected a mapping with model_name and litellm_params, got {_kind(entry)}")
    model_name = _required_str(entry, "model_name", key)
    params = entry.get("litellm_params")
    if params is None:
        raise ConfigError(f"{key}.litellm_params", "required")
    params = _mapping(params, f"{key}.litellm_params")
    pkey = f"{key}.litellm_params"
    model = _required_str(params, "model", pkey)
    provider, upstream = split_model(model)
    if not provider or not upstream:
        raise ConfigError(f"{pkey}.model", 'expected "<provider>/<model name>"')
    if provider not in LITELLM_PROVIDERS and provider not in known_providers():
        raise ConfigError(f"{pkey}.model",
                          f"unknown provider `{provider}` (known: {', '.join(sorted(known_providers()))})")
    creds = {name: _opt_str(params.get(name), f"{pkey}.{name}") for name in _CREDENTIALS}
    for name, value in provider_env_defaults(provider, env).items():
        if creds[name] is None:
            creds[name] = value
    profile = PROFILES.get(provider)
    if profile is not None and profile.default_api_base is None and creds["api_base"] is None:
        raise ConfigError(f"{pkey}.api_base", f"required for provider `{provider}` (it has no default endpoint)")
    extra = {k: v for k, v in params.items() if k not in _DEPLOYMENT_OWN}
    _opt_number(extra.get("stream_timeout"), f"{pkey}.stream_timeout", positive=True)
    _opt_number(extra.get("weight"), f"{pkey}.weight", positive=True)
    model_info = _mapping(entry.get("model_info"), f"{key}.model_info")
    info_id = model_info.get("id")
    bad_id = isinstance(info_id, bool) or not isinstance(info_id, str | int) or info_id == ""
    if info_id is not None and bad_id:
        raise ConfigError(f"{key}.model_info.id", f"expected a non-empty string, got {_kind(info_id)}")
    the_id = str(info_id) if info_id is not None else deployment_id(model_name, provider, upstream,
                                                                     creds["api_base"])
    return Deployment(
        model_name=model_name,
        provider=provider,
        upstream_model=upstream,
        api_base=creds["api_base"],
        api_key=creds["api_key"],
        api_version=creds["api_version"],
        timeout=_opt_number(params.get("timeout"), f"{pkey}.timeout", positive=True),
        max_retries=_opt_int(params.get("max_retries"), f"{pkey}.max_retries") or 0,
        rpm=_opt_int(params.get("rpm"), f"{pkey}.rpm"),
        tpm=_opt_int(params.get("tpm"), f"{pkey}.tpm"),
        extra=extra,
        model_info=model_info,
        id=the_id,
    )


def _general(raw: dict[str, Any], env: Mapping[str, str]) -> GeneralSettings:
    _warn_unknown(raw, _GENERAL_KEYS | _GENERAL_OWN_KEYS, "general_settings")
    key = "general_settings"
    body_bytes = _opt_int(raw.get("max_request_body_bytes"), f"{key}.max_request_body_bytes", minimum=1)
    if body_bytes is None:
        mb = _opt_number(raw.get("max_request_size_mb"), f"{key}.max_request_size_mb", positive=True)
        body_bytes = int(mb * 1024 * 1024) if mb is not None else DEFAULT_MAX_REQUEST_BODY_BYTES
    timeout = _opt_number(raw.get("request_timeout"), f"{key}.request_timeout", positive=True)
    return GeneralSettings(
        master_key=_opt_str(raw.get("master_key"), f"{key}.master_key"),
        # LiteLLM's fallback: the DATABASE_URL environment variable when the config names no database.
        database_url=_opt_str(raw.get("database_url"), f"{key}.database_url") or env.get("DATABASE_URL") or None,
        max_request_body_bytes=body_bytes,
        request_timeout=DEFAULT_REQUEST_TIMEOUT if timeout is None else timeout,
        allow_unauthenticated_public=_opt_bool(raw.get("allow_unauthenticated_public"),
                                               f"{key}.allow_unauthenticated_public") or False,
        response_retention_days=_opt_number(raw.get("response_retention_days"), f"{key}.response_retention_days",
                                            positive=True),
        retention_sweep_interval_seconds=_opt_number(raw.get("retention_sweep_interval_seconds"),
                                                     f"{key}.retention_sweep_interval_seconds", positive=True)
        or 3600.0,
        compaction_mode=_compaction_mode(raw.get("compaction_mode"), f"{key}.compaction_mode"),
        compaction_model=_opt_str(raw.get("compaction_model"), f"{key}.compaction_model"),
        extra={k: v for k, v in raw.items() if k not in _GENERAL_OWN_KEYS},
    )


_CALLBACK_KEYS: Final = ("callbacks", "success_callback", "failure_callback")


def _compaction_mode(value: Any, key: str) -> str:
    mode = _opt_str(value, key) or "summary"
    if mode not in ("summary", "lossless"):
        raise ConfigError(key, f"expected 'summary' or 'lossless', got {mode!r}")
    return mode


def _litellm(raw: dict[str, Any]) -> LitellmSettings:
    _warn_unknown(raw, _LITELLM_KEYS, "litellm_settings")
    key = "litellm_settings"
    callbacks = {name: _callback_list(raw.get(name), f"{key}.{name}") for name in _CALLBACK_KEYS}
    return LitellmSettings(
        drop_params=_opt_bool(raw.get("drop_params"), f"{key}.drop_params") or False,
        request_timeout=_opt_number(raw.get("request_timeout"), f"{key}.request_timeout", positive=True),
        num_retries=_opt_int(raw.get("num_retries"), f"{key}.num_retries"),
        callbacks=callbacks["callbacks"],
        success_callback=callbacks["success_callback"],
        failure_callback=callbacks["failure_callback"],
        extra={k: v for k, v in raw.items()
               if k not in ("drop_params", "request_timeout", "num_retries", *_CALLBACK_KEYS)},
    )


def _check_router(raw: dict[str, Any]) -> None:
    """Type checks for the router settings respgate acts on; the router reads the dict itself."""
    for name in ("num_retries", "allowed_fails", "redis_port", "max_fallbacks"):
        _opt_int(raw.get(name), f"router_settings.{name}")
    for name in ("timeout", "stream_timeout"):
        _opt_number(raw.get(name), f"router_settings.{name}", positive=True)
    _opt_number(raw.get("cooldown_time"), "router_settings.cooldown_time", positive=False)
    _opt_str(raw.get("routing_strategy"), "router_settings.routing_strategy")
    if raw.get("fallbacks") is not None and not isinstance(raw["fallbacks"], list):
        raise ConfigError("router_settings.fallbacks", f"expected a list, got {_kind(raw['fallbacks'])}")
    parse_router_settings(raw)  # the router's own reading: strategy names, fallback shapes, retry_policy


def _callback_list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):  # LiteLLM accepts a single name
        return [value]
    if not isinstance(value, list):
        raise ConfigError(key, f"expected a list, got {_kind(value)}")
    return value


def _warn_unknown(section: dict[str, Any], known: frozenset[str], name: str) -> None:
    for k in section:
        if k not in known:
            log.warning("config: unknown key %s.%s is ignored", name, k)


# --- small typed readers: each names the key, none repeats the value --------------------------------

def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for types, word in ((str, "a string"), (int, "an integer"), (float, "a number"), (dict, "a mapping"),
                        (list, "a list")):
        if isinstance(value, types):
            return word
    return f"a {type(value).__name__}"


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping, got {_kind(value)}")
    return value


def _required_str(section: dict[str, Any], name: str, prefix: str) -> str:
    value = section.get(name)
    key = _join(prefix, name)
    if value is None:
        raise ConfigError(key, "required")
    if not isinstance(value, str) or not value:
        raise ConfigError(key, f"expected a non-empty string, got {_kind(value)}")
    return value


def _opt_str(value: Any, key: str) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise ConfigError(key, f"expected a string, got {_kind(value)}")


def _opt_bool(value: Any, key: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(key, f"expected true or false, got {_kind(value)}")


def _opt_int(value: Any, key: str, *, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(key, f"expected an integer, got {_kind(value)}")
    if value < minimum:
        raise ConfigError(key, f"expected an integer >= {minimum}")
    return value


def _opt_number(value: Any, key: str, *, positive: bool) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(key, f"expected a number, got {_kind(value)}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(key, "expected a number > 0" if positive else "expected a number >= 0")
    return float(value)
