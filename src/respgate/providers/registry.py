"""Provider name (the prefix of `litellm_params.model`) -> adapter. A new provider is one line here."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .anthropic import PROVIDER_FACTORIES as ANTHROPIC
from .base import Provider
from .bedrock import PROVIDER_FACTORIES as BEDROCK
from .chat.profiles import PROFILES, ChatProfile
from .chat.provider import ChatCompletionsProvider
from .gemini import PROVIDER_FACTORIES as GEMINI
from .mock import MockProvider
from .openai import ResponsesPassthrough
from .vertex_ai import VertexAIProvider


def _chat(profile: ChatProfile) -> Callable[[], Provider]:
    return lambda: ChatCompletionsProvider(profile)


_FACTORIES: dict[str, Callable[[], Provider]] = {
    "openai": lambda: ResponsesPassthrough("openai"),
    "azure": lambda: ResponsesPassthrough("azure"),
    "mock": MockProvider,
    # every OpenAI-compatible chat provider: one row each in chat/profiles.py
    **{name: _chat(profile) for name, profile in PROFILES.items()},
    # native adapters: anthropic; gemini, vertex_ai; bedrock, bedrock_converse
    **ANTHROPIC,
    **GEMINI,
    "vertex_ai": VertexAIProvider,  # Gemini and Claude on Vertex AI
    **BEDROCK,
}


# Providers whose upstream keeps responses (and runs background ones) itself.
STATEFUL_PROVIDERS = frozenset({"openai", "azure"})


def known_providers() -> frozenset[str]:
    return frozenset(_FACTORIES)


def build_providers(names: set[str]) -> dict[str, Provider]:
    """One adapter instance per provider in use; an unknown provider stops start-up."""
    out: dict[str, Provider] = {}
    for name in sorted(names):
        factory = _FACTORIES.get(name)
        if factory is None:
            raise ConfigError("model_list[].litellm_params.model",
                              f"unknown provider `{name}` (known: {', '.join(sorted(_FACTORIES))})")
        out[name] = factory()
    return out
