"""From callback lists to what runs: user handlers, and the built-ins they switch on.

An entry is an object or function (used as is), a built-in name (`prometheus`, `otel`, `jsonl`),
or a `"module.attr"` path (callbacks.load_entry). Unknown bare names — LiteLLM's integrations such as
`langfuse` or `datadog` — are reported once and skipped, so a LiteLLM config still loads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ..config import Config
from .callbacks import ALL_EVENTS, FAILURE_EVENTS, SUCCESS_EVENTS, Event, Handler, handler_for, load_entry, merge
from .jsonl import JsonlLogger, jsonl_path

log = logging.getLogger("respgate.observe")

JSONL_NAMES: Final = frozenset({"jsonl", "file"})
PROMETHEUS_NAMES: Final = frozenset({"prometheus"})
OTEL_NAMES: Final = frozenset({"otel", "opentelemetry"})
LIST_EVENTS: Final = (("callbacks", ALL_EVENTS), ("success_callback", SUCCESS_EVENTS),
                      ("failure_callback", FAILURE_EVENTS))

CallbackLists = Iterable[tuple[Iterable[Any], frozenset[Event], str]]  # (entries, events, where)

_warned: set[str] = set()


@dataclass(slots=True)
class Plan:
    handlers: list[Handler] = field(default_factory=list)
    metrics: bool = False
    tracing: bool = False

    def __bool__(self) -> bool:
        return bool(self.handlers) or self.metrics or self.tracing


class Resolver:
    """Resolves callback lists for one config; shares one JsonlLogger and remembers loaded paths."""

    def __init__(self, config: Config) -> None:
        settings = config.sections.get("callback_settings")
        self.settings: dict[str, Any] = settings if isinstance(settings, dict) else {}
        self.base_dir = os.path.dirname(os.path.abspath(config.source)) if os.path.isfile(config.source) else None
        self.jsonl: JsonlLogger | None = None
        self._loaded: dict[str, Any] = {}

    def plan(self, lists: CallbackLists, *, relative: bool = True) -> Plan:
        """`relative`: `module.attr` paths are looked up beside the config file first."""
        plan = Plan()
        for entries, events, where in lists:
            for i, entry in enumerate(entries):
                target = self._target(entry, f"{where}[{i}]", plan, relative)
                if target is None:
                    continue
                handler = handler_for(target, events)
                if handler is not None:
                    plan.handlers.append(handler)
                else:
                    warn_once(f"handler:{where}:{id(target)}",
                              "callback %s (%s) has no callback method for its list; it is ignored",
                              f"{where}[{i}]", type(target).__name__)
        plan.handlers = merge(plan.handlers)
        return plan

    def _target(self, entry: Any, where: str, plan: Plan, relative: bool) -> Any:
        if not isinstance(entry, str):
            return entry
        name = entry.strip()
        lowered = name.lower()
        if lowered in PROMETHEUS_NAMES:
            plan.metrics = True
            return None
        if lowered in OTEL_NAMES:
            plan.tracing = True
            return None
        if lowered in JSONL_NAMES:
            if self.jsonl is None:
                self.jsonl = JsonlLogger(jsonl_path(self.settings))
            return self.jsonl
        if "." in name and " " not in name:
            if name not in self._loaded:
                self._loaded[name] = load_entry(name, where, self.base_dir if relative else None)
            return self._loaded[name]
        warn_once(f"name:{lowered}", "callback %r (%s) is not built into respgate (built in: jsonl, prometheus, "
                  "otel; or give a \"module.attr\" path); it is ignored", name, where)
        return None


def config_lists(config: Config) -> CallbackLists:
    s = config.litellm_settings
    return [(s.callbacks, ALL_EVENTS, "litellm_settings.callbacks"),
            (s.success_callback, SUCCESS_EVENTS, "litellm_settings.success_callback"),
            (s.failure_callback, FAILURE_EVENTS, "litellm_settings.failure_callback")]


def warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)
