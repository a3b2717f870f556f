"""The callback interface (LiteLLM's `CustomLogger`, in spirit and in names) and how callbacks are found.

A callback is one of:

- an object with any of `CustomLogger`'s methods (subclass `CustomLogger`, or LiteLLM's own class, or
  just have the methods). For each event the async method runs if the object has its own, else the
  sync one (in a thread) — implement one of each pair; defining both does not log twice;
- a plain function `fn(kwargs, response_obj, start_time, end_time)` (sync or async), LiteLLM's
  `success_callback` / `failure_callback` shape;
- in a config, a string: `"module.attr"` (an instance, a class — instantiated with no arguments — or a
  function; the module is looked up beside the config file first, as LiteLLM does with
  `custom_callbacks.proxy_handler_instance`), or a built-in name (`jsonl`, `prometheus`, `otel`).

Where it is listed decides what it hears: `callbacks` everything, `success_callback` successes only,
`failure_callback` failures only.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from ..errors import ConfigError

__all__ = ["CallbackSet", "CustomLogger", "Handler", "load_entry"]

log = logging.getLogger("respgate.observe")

Event = Literal["pre", "post_api", "success", "failure", "stream"]
ALL_EVENTS: frozenset[Event] = frozenset({"pre", "post_api", "success", "failure", "stream"})
SUCCESS_EVENTS: frozenset[Event] = frozenset({"success"})
FAILURE_EVENTS: frozenset[Event] = frozenset({"failure"})


class CustomLogger:
    """Subclass and override what you need. Every method runs off the request path, after the
    fact; an exception in one is logged and the request is not affected.

    - `kwargs`: the call as LiteLLM describes it (`model`, `messages`/`input`, `litellm_call_id`,
      `litellm_params.metadata.user_api_key_alias` / `_team_id` / `_hash`, `response_cost`, and on
      success/failure `standard_logging_object`: see docs/callbacks.md); on failure `exception`.
    - `response_obj`: the final Response as a dict (success; on failure the failed Response or None);
      for stream events, the event as a dict.
    - `start_time`, `end_time`: datetimes (for a stream event, `end_time` is when it was sent).
    """

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        pass

    def log_post_api_call(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    def log_stream_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    async def async_log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        pass

    async def async_log_stream_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        pass


# event -> (async method, sync method)
_METHODS: dict[Event, tuple[str | None, str]] = {
    "pre": ("async_log_pre_api_call", "log_pre_api_call"),
    "post_api": (None, "log_post_api_call"),
    "success": ("async_log_success_event", "log_success_event"),
    "failure": ("async_log_failure_event", "log_failure_event"),
    "stream": ("async_log_stream_event", "log_stream_event"),
}


@dataclass(frozen=True, slots=True)
class Method:
    fn: Callable[..., Any]
    is_async: bool


@dataclass(frozen=True, slots=True)
class Handler:
    """One callback with the method it runs for each event it hears (None: not this event)."""

    name: str
    target: Any
    pre: Method | None = None
    post_api: Method | None = None
    success: Method | None = None
    failure: Method | None = None
    stream: Method | None = None


def _is_base(klass: type) -> bool:
    """Our CustomLogger, or LiteLLM's (whose methods are all no-ops too)."""
    return klass is CustomLogger or (klass.__name__ == "CustomLogger" and klass.__module__.startswith("litellm"))


def _own(obj: Any, name: str) -> Callable[..., Any] | None:
    """`obj.name` when the object's class (or the object itself) defines it, not a CustomLogger base."""
    if name in getattr(obj, "__dict__", {}):
        found = getattr(obj, name)
        return found if callable(found) else None
    for klass in type(obj).__mro__:
        if name in vars(klass):
            if _is_base(klass) or klass is object:
                return None
            found = getattr(obj, name)
            return found if callable(found) else None
    return None


def handler_for(target: Any, events: frozenset[Event], name: str | None = None) -> Handler | None:
    """The Handler of a callback object or function hearing `events`; None when it would hear nothing."""
    label = name or _label(target)
    if inspect.isfunction(target) or inspect.isbuiltin(target) or inspect.ismethod(target):
        return _function_handler(label, target, events)
    found: dict[str, Method] = {}
    for event in events:
        async_name, sync_name = _METHODS[event]
        fn = _own(target, async_name) if async_name else None
        if fn is not None:
            found[event] = Method(fn, True)
        elif (fn := _own(target, sync_name)) is not None:
            found[event] = Method(fn, inspect.iscoroutinefunction(fn))
    if not found:  # an object with none of the methods may still be a function: `__call__`
        return _function_handler(label, target, events) if callable(target) else None
    return Handler(label, target, **found)


def _function_handler(label: str, fn: Any, events: frozenset[Event]) -> Handler | None:
    """A function hears success and failure (as `fn(kwargs, response_obj, start_time, end_time)`)."""
    call = fn if inspect.isroutine(fn) else type(fn).__call__  # a callable object: its __call__
    m = Method(fn, inspect.iscoroutinefunction(call))
    h = Handler(label, fn, success=m if "success" in events else None, failure=m if "failure" in events else None)
    return h if (h.success or h.failure) else None


def _label(target: Any) -> str:
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None) or type(target).__module__
    return f"{module}.{name}"


class CallbackSet:
    """The handlers of one configuration, indexed by event so the hot path asks one attribute."""

    def __init__(self, handlers: Iterable[Handler] = ()) -> None:
        self.handlers = tuple(handlers)
        self.pre = tuple(h for h in self.handlers if h.pre)
        self.success = tuple(h for h in self.handlers if h.success or h.post_api)
        self.failure = tuple(h for h in self.handlers if h.failure or h.post_api)
        self.stream = tuple(h for h in self.handlers if h.stream)

    def __bool__(self) -> bool:
        return bool(self.handlers)

    def merged(self, other: CallbackSet) -> CallbackSet:
        return CallbackSet(merge([*self.handlers, *other.handlers]))


def merge(handlers: Iterable[Handler]) -> list[Handler]:
    """One Handler per callback object: listed in `callbacks` and `success_callback` it still logs once."""
    by_target: dict[int, Handler] = {}
    order: list[int] = []
    for h in handlers:
        key = id(h.target)
        old = by_target.get(key)
        if old is None:
            by_target[key] = h
            order.append(key)
            continue
        by_target[key] = Handler(old.name, old.target, pre=old.pre or h.pre, post_api=old.post_api or h.post_api,
                                 success=old.success or h.success, failure=old.failure or h.failure,
                                 stream=old.stream or h.stream)
    return [by_target[k] for k in order]


def load_entry(entry: str, where: str, base_dir: str | None) -> Any:
    """`"module.attr"` -> the object (a class is instantiated). The module is taken from `base_dir`
    (the config file's directory) when a file of that name is there, else imported normally."""
    module_name, _, attr = entry.rpartition(".")
    try:
        module = _module(module_name, base_dir)
    except Exception as e:
        raise ConfigError(where, f"cannot import {module_name!r} ({type(e).__name__}: {e})") from None
    if not hasattr(module, attr):
        raise ConfigError(where, f"module {module_name!r} has no attribute {attr!r}")
    target = getattr(module, attr)
    if inspect.isclass(target):
        try:
            target = target()
        except Exception as e:
            raise ConfigError(where, f"cannot create {entry!r} ({type(e).__name__}: {e})") from None
    return target


def _module(name: str, base_dir: str | None) -> ModuleType:
    if base_dir:
        rel = os.path.join(base_dir, *name.split("."))
        for path in (rel + ".py", os.path.join(rel, "__init__.py")):
            if os.path.isfile(path):
                return _load_file(name, path)
    return importlib.import_module(name)


def _load_file(name: str, path: str) -> ModuleType:
    """A module from a file beside the config; registered under its name unless that is taken by
    another module (then under a private name), so a second load of the same file reuses it."""
    existing = sys.modules.get(name)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == os.path.abspath(path):
        return existing
    key = name if existing is None else f"_respgate_callbacks.{abs(hash(os.path.abspath(path)))}.{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    return module
