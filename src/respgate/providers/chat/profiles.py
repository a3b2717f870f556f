"""One declarative row per OpenAI-compatible chat provider: where it lives and what it accepts.

A provider is data, not a module: the request mapping reads these flags instead of branching on
names. Facts come from LiteLLM's provider code (prefix, default base URL, env var names) and each
provider's API reference; a flag marked "conservative" is one we could not confirm, set so that
respgate refuses (400, or drops with `drop_params`) rather than send a field the upstream might
silently ignore.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

__all__ = ["PROFILES", "ChatProfile", "profile_for"]


@dataclass(frozen=True, slots=True)
class ChatProfile:
    name: str  # LiteLLM prefix: "deepseek", "groq", ...
    default_api_base: str | None  # with the /v1 (or equivalent) suffix; None = api_base required
    api_key_env: tuple[str, ...] = ()  # LiteLLM's env var names, first found wins
    api_base_env: tuple[str, ...] = ()
    max_tokens_param: str = "max_completion_tokens"  # or "max_tokens"
    supports_strict: bool = True  # function.strict / json_schema.strict accepted
    supports_parallel_tool_calls: bool = True
    supports_json_schema: bool = True  # response_format json_schema
    supports_json_object: bool = True
    supports_reasoning_effort: bool = False
    reasoning_field: str | None = None  # where reasoning arrives: "reasoning_content" / "reasoning"
    accepts_reasoning_back: bool = False  # assistant messages may carry `reasoning_field` back
    supports_developer_role: bool = False  # else developer -> system
    supports_stream_usage: bool = True  # stream_options.include_usage
    supports_logprobs: bool = True
    supports_service_tier: bool = False
    supports_prompt_cache_key: bool = False
    supports_user: bool = True
    supports_images: bool = True
    supports_files: bool = False  # chat `file` content parts (base64 file_data)
    auth_header: str = "Authorization"  # "Authorization" -> "Bearer <key>"; any other name carries the bare key
    supports_tools: bool = True  # function tools at all (Perplexity has none)
    # Appended to an api_base that lacks it: LiteLLM users give Ollama's server root (http://host:11434),
    # while its OpenAI-compatible API lives under /v1.
    base_path: str = ""


_VLLM: Final = ChatProfile(
    name="hosted_vllm",
    default_api_base=None,
    api_key_env=("HOSTED_VLLM_API_KEY",),
    api_base_env=("HOSTED_VLLM_API_BASE",),
    # vLLM validates strict/parallel_tool_calls/reasoning_effort and applies guided decoding for
    # json_schema. Reasoning parsers emit `reasoning_content`, and chat templates (DeepSeek-R1,
    # Qwen3, gpt-oss) read it back from assistant messages. Many chat templates know no
    # "developer" role, so it becomes system.
    supports_reasoning_effort=True,
    reasoning_field="reasoning_content",
    accepts_reasoning_back=True,
)

_OLLAMA: Final = ChatProfile(
    name="ollama",
    # Ollama's OpenAI-compatible endpoint; LiteLLM's OLLAMA_API_BASE (and api_base) name the server
    # root (http://localhost:11434), so `base_path` adds /v1 to a base that lacks it.
    default_api_base="http://localhost:11434/v1",
    base_path="/v1",
    api_key_env=("OLLAMA_API_KEY",),
    api_base_env=("OLLAMA_API_BASE",),
    max_tokens_param="max_tokens",
    # Ollama decodes requests leniently: unknown fields are ignored, not refused. So only what it
    # documents is marked supported; `strict`, `parallel_tool_calls` and `logprobs` would be
    # silently ignored (conservative: refuse).
    supports_strict=False,
    supports_parallel_tool_calls=False,
    supports_logprobs=False,
    supports_reasoning_effort=True,  # documented: maps to `think` levels
    reasoning_field="reasoning",
)

_PROFILES: Final = (
    _VLLM,
    # `vllm/` in LiteLLM runs vLLM in-process; here it is the same HTTP server as hosted_vllm.
    replace(_VLLM, name="vllm"),
    _OLLAMA,
    replace(_OLLAMA, name="ollama_chat"),
    ChatProfile(
        name="lm_studio",
        # LiteLLM requires LM_STUDIO_API_BASE; LM Studio's server listens on :1234 by default.
        default_api_base="http://localhost:1234/v1",
        api_key_env=("LM_STUDIO_API_KEY",),
        api_base_env=("LM_STUDIO_API_BASE",),
        max_tokens_param="max_tokens",
        # Structured output is json_schema only ("response_format.type must be json_schema or
        # text"). strict/parallel/stream usage/logprobs unconfirmed: conservative.
        supports_json_object=False,
        supports_strict=False,
        supports_parallel_tool_calls=False,
        supports_stream_usage=False,
        supports_logprobs=False,
        reasoning_field="reasoning_content",
    ),
    ChatProfile(
        name="groq",
        default_api_base="https://api.groq.com/openai/v1",
        api_key_env=("GROQ_API_KEY",),
        api_base_env=("GROQ_API_BASE",),
        # Groq answers 400 to logprobs/top_logprobs/logit_bias/messages[].name and n != 1.
        supports_logprobs=False,
        supports_reasoning_effort=True,  # qwen3 / gpt-oss
        # With reasoning_format "parsed" (gpt-oss: always) reasoning arrives in `message.reasoning`.
        reasoning_field="reasoning",
        supports_service_tier=True,  # on_demand / flex / performance / auto
    ),
    ChatProfile(
        name="deepseek",
        # LiteLLM's default: /beta is a superset of /v1 that also enables strict function calling.
        default_api_base="https://api.deepseek.com/beta",
        api_key_env=("DEEPSEEK_API_KEY",),
        api_base_env=("DEEPSEEK_API_BASE",),
        max_tokens_param="max_tokens",
        supports_parallel_tool_calls=False,  # not a DeepSeek parameter
        supports_json_schema=False,  # JSON output is json_object only
        supports_reasoning_effort=True,
        # Thinking mode: reasoning_content on an assistant turn that called tools MUST be sent back
        # (else 400 "reasoning_content ... must be passed back"); on other turns it is ignored. The
        # legacy deepseek-reasoner refused it, but the current API accepts it everywhere.
        reasoning_field="reasoning_content",
        accepts_reasoning_back=True,
        supports_user=False,  # undocumented: conservative
        supports_images=False,  # the chat API is text-only
    ),
    ChatProfile(
        name="mistral",
        default_api_base="https://api.mistral.ai/v1",
        api_key_env=("MISTRAL_AZURE_API_KEY", "MISTRAL_API_KEY"),
        api_base_env=("MISTRAL_AZURE_API_BASE",),
        max_tokens_param="max_tokens",
        # Mistral rejects unknown fields (extra_forbidden): no stream_options (usage always comes
        # in the last chunk), logprobs, user. Function `strict` and json_schema `strict` exist.
        supports_stream_usage=False,
        supports_logprobs=False,
        supports_user=False,
    ),
    ChatProfile(
        name="together_ai",
        default_api_base="https://api.together.xyz/v1",
        api_key_env=("TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_TOKEN"),
        api_base_env=("TOGETHER_AI_API_BASE",),
        max_tokens_param="max_tokens",
        # Together's logprobs is an integer, not OpenAI's boolean + top_logprobs; strict, parallel
        # tool calls, stream_options and reasoning_effort unconfirmed: conservative.
        supports_strict=False,
        supports_parallel_tool_calls=False,
        supports_stream_usage=False,
        supports_logprobs=False,
        reasoning_field="reasoning",
    ),
    ChatProfile(
        name="openrouter",
        default_api_base="https://openrouter.ai/api/v1",
        api_key_env=("OPENROUTER_API_KEY", "OR_API_KEY"),
        api_base_env=("OPENROUTER_API_BASE",),
        max_tokens_param="max_tokens",
        # OpenRouter accepts OpenAI's top-level reasoning_effort as well as `reasoning.effort`, and
        # returns reasoning in `message.reasoning`. Reasoning goes back only as `reasoning_details`
        # (provider-specific blocks we do not keep), so none is sent back.
        supports_reasoning_effort=True,
        reasoning_field="reasoning",
        supports_files=True,  # PDF `file` parts with base64 file_data
    ),
    ChatProfile(
        name="fireworks_ai",
        default_api_base="https://api.fireworks.ai/inference/v1",
        api_key_env=("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"),
        api_base_env=("FIREWORKS_API_BASE",),
        max_tokens_param="max_tokens",
        # strict, parallel tool calls, stream_options and logprobs unconfirmed: conservative.
        supports_strict=False,
        supports_parallel_tool_calls=False,
        supports_stream_usage=False,
        supports_logprobs=False,
        supports_reasoning_effort=True,
        reasoning_field="reasoning_content",
    ),
    ChatProfile(
        name="xai",
        default_api_base="https://api.x.ai/v1",
        api_key_env=("XAI_API_KEY",),
        api_base_env=("XAI_API_BASE",),
        max_tokens_param="max_tokens",
        supports_strict=False,  # unconfirmed for function tools: conservative
        supports_reasoning_effort=True,  # grok-3-mini; other models refuse it upstream
        reasoning_field="reasoning_content",
    ),
    ChatProfile(
        name="perplexity",
        default_api_base="https://api.perplexity.ai",
        api_key_env=("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
        api_base_env=("PERPLEXITY_API_BASE",),
        max_tokens_param="max_tokens",
        # Sonar has no function calling; structured output is json_schema (and regex) only;
        # reasoning models put their thinking in <think> inside content, not in a field.
        supports_tools=False,
        supports_strict=False,
        supports_parallel_tool_calls=False,
        supports_json_object=False,
        supports_reasoning_effort=True,  # sonar-deep-research
        supports_stream_usage=False,
        supports_logprobs=False,
        supports_user=False,
    ),
    ChatProfile(
        name="cerebras",
        default_api_base="https://api.cerebras.ai/v1",
        api_key_env=("CEREBRAS_API_KEY",),
        api_base_env=("CEREBRAS_API_BASE",),
        supports_reasoning_effort=True,  # gpt-oss
        reasoning_field="reasoning",
        supports_stream_usage=False,  # unconfirmed: conservative
        supports_images=False,  # text-only models
    ),
    ChatProfile(
        name="azure_ai",
        default_api_base=None,
        api_key_env=("AZURE_AI_API_KEY",),
        api_base_env=("AZURE_AI_API_BASE",),
        max_tokens_param="max_tokens",
        # LiteLLM sends `api-key` to *.services.ai.azure.com and *.openai.azure.com hosts and
        # `Authorization: Bearer` elsewhere (serverless *.models.ai.azure.com); the Azure AI model
        # inference API accepts `api-key` on both, so it is the one header here.
        auth_header="api-key",
        supports_strict=False,
        supports_parallel_tool_calls=False,
        supports_stream_usage=False,
        supports_logprobs=False,
        supports_user=False,
        reasoning_field="reasoning_content",
    ),
    # A generic OpenAI-compatible chat endpoint: api_base required, OpenAI semantics assumed except
    # the newer max_completion_tokens, which older servers do not know.
    ChatProfile(name="openai_like", default_api_base=None, max_tokens_param="max_tokens",
                supports_reasoning_effort=True, reasoning_field="reasoning_content"),
    ChatProfile(name="custom_openai", default_api_base=None, max_tokens_param="max_tokens",
                supports_reasoning_effort=True, reasoning_field="reasoning_content"),
)

PROFILES: Final[dict[str, ChatProfile]] = {p.name: p for p in _PROFILES}


def profile_for(provider: str) -> ChatProfile | None:
    """The profile for a LiteLLM provider prefix, or None when it is not a chat provider we know."""
    return PROFILES.get(provider)
