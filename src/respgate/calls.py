"""Who is asking and what happened to their request: the platform's view of one call.

`Principal` is the caller (master key, virtual key, or nobody when the proxy runs without keys).
`Call` follows one client request from the gateway's entry to its end: the deployment that served
it, the final Response, the cost. `CallHook`s (virtual-key limits, spend, metrics, traces, callbacks,
guardrails — see platform.py) see every call twice: `pre_call` before any work (may refuse it, may
rewrite the body) and `post_call` once it has ended, successfully or not. A hook's `post_call` must
not block: anything slow (I/O, user callbacks) is queued and done off the request's path.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

if TYPE_CHECKING:
    from .deployments import Deployment
    from .errors import RespgateError
    from .events import Event

log = logging.getLogger("respgate.calls")


def new_request_id() -> str:
    """32 hex digits: the time in nanoseconds, then 64 random bits. Unique like a uuid4 (at a tenth of its
    cost), and rising with time, so the spend log's index on request ids grows at its end instead of
    taking every insert at a random page (a third of that table's write cost)."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. `owner` scopes every stored object ("" when the proxy runs without keys).

    `token` is the hash of a virtual key ("" for the master key or no key); `limits` is the virtual
    key's own record, opaque to the gateway (the keys package reads it in its hooks)."""

    owner: str = ""
    token: str = ""
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    is_admin: bool = False
    models: frozenset[str] | None = None  # model groups this key may call; None: all
    limits: Any = None


class Tokens(NamedTuple):
    """A call's usage as every hook reads it (cost, spend row, metrics, limits, traces): counts >= 0,
    from Responses' names or Chat Completions' (`prompt_tokens`, ...). `total` is the upstream's when
    it gave one, else input + output."""

    input: int
    output: int
    total: int
    cached: int  # input read from the cache (part of `input`)
    cache_write: int  # input written to the cache (part of `input`)
    reasoning: int  # part of `output`


def tokens_of(usage: dict[str, Any]) -> Tokens:
    get = usage.get
    inp = _count(get("input_tokens") if "input_tokens" in usage else get("prompt_tokens"))
    out = _count(get("output_tokens") if "output_tokens" in usage else get("completion_tokens"))
    cached = written = reasoning = 0
    details = get("input_tokens_details") or get("prompt_tokens_details")
    if isinstance(details, dict):
        cached = _count(details.get("cached_tokens"))
        written = _count(details.get("cache_write_tokens"))
    details = get("output_tokens_details") or get("completion_tokens_details")
    if isinstance(details, dict):
        reasoning = _count(details.get("reasoning_tokens"))
    return Tokens(inp, out, _count(get("total_tokens")) or inp + out, cached, written, reasoning)


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0  # not a bool, not negative


CallRoute = Literal["responses", "chat.completions", "responses.compact", "responses.input_tokens"]


@dataclass(slots=True, eq=False)
class Call:
    """One client request. The gateway fills in where it went and how it ended; hooks add cost and
    whatever they keep per call in `extra`."""

    principal: Principal
    body: Any  # the request as sent (a guardrail may replace it in pre_call)
    route: CallRoute = "responses"
    stream: bool = False
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)  # perf_counter seconds
    started_at: float = field(default_factory=time.time)  # wall clock, for logs
    deployment: Deployment | None = None  # the deployment of the last attempt
    response_id: str = ""
    first_event: float | None = None  # perf_counter of the first stream event sent
    ended: float | None = None
    response: dict[str, Any] | None = None  # the final Response (completed, incomplete, failed, cancelled)
    error: RespgateError | None = None  # set when the call failed before or instead of a Response
    cost: float | None = None  # USD, set by the spend package's hook
    extra: dict[str, Any] = field(default_factory=dict)
    # (the Response read, its counts): cost, spend, metrics and limits all ask
    _tokens: tuple[dict[str, Any] | None, Tokens | None] | None = field(default=None, repr=False)

    @property
    def model(self) -> str:
        """The model (group) the client asked for."""
        model = self.body.get("model") if isinstance(self.body, dict) else None
        return model if isinstance(model, str) else ""

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = self.response.get("usage") if self.response is not None else None
        return usage if isinstance(usage, dict) else None

    @property
    def tokens(self) -> Tokens | None:
        """The final Response's usage, read once for all the hooks; None without one."""
        response = self.response
        read = self._tokens
        if read is None or read[0] is not response:
            usage = self.usage
            read = self._tokens = (response, tokens_of(usage) if usage is not None else None)
        return read[1]

    @property
    def status(self) -> str:
        """completed | incomplete | failed | cancelled | error (no Response at all)."""
        if self.response is not None:
            return str(self.response.get("status") or "completed")
        return "error"

    @property
    def latency(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def time_to_first_event(self) -> float | None:
        return None if self.first_event is None else self.first_event - self.started


class CallHook(Protocol):
    """A part of the platform that sees calls. Raise a RespgateError in `pre_call` to refuse one. A hook
    with a false `wants_pre_call` attribute is not called before the work (a no-op coroutine per request
    is measurable on the hot path). A hook whose `post_call` never awaits may also have `ended(call)`, a
    plain method doing the same, which is called instead (no coroutine to make and drive per call)."""

    async def pre_call(self, call: Call) -> None: ...

    async def post_call(self, call: Call) -> None: ...


class StreamHook(Protocol):
    """A hook that also wants each stream event (called inline: keep it to counters)."""

    def stream_event(self, call: Call, event: Event) -> None: ...


class ResponseHook(Protocol):
    """A hook that sees (and may change, or refuse with a 4xx) a JSON Response before it is stored
    and sent: output guardrails."""

    async def on_response(self, call: Call, response: dict[str, Any]) -> None: ...


class Hooks:
    """The hooks in the order they run. Empty -> `active` is False and the gateway skips all of this."""

    def __init__(self, hooks: Sequence[CallHook] = ()) -> None:
        self._hooks = tuple(hooks)
        self._pre_hooks = tuple(h for h in self._hooks if getattr(h, "wants_pre_call", True))
        # (the hook, its plain `ended` or None: then its coroutine `post_call`)
        self._enders: tuple[tuple[CallHook, Callable[[Call], None] | None], ...] = tuple(
            (h, getattr(h, "ended", None)) for h in self._hooks)
        self._stream_hooks: tuple[StreamHook, ...] = tuple(
            h for h in self._hooks if callable(getattr(h, "stream_event", None)))  # type: ignore[misc]
        self._response_hooks: tuple[ResponseHook, ...] = tuple(
            h for h in self._hooks if callable(getattr(h, "on_response", None)))  # type: ignore[misc]
        self.active = bool(self._hooks)
        self.wants_events = bool(self._stream_hooks)
        self.wants_responses = bool(self._response_hooks)

    async def on_response(self, call: Call, response: dict[str, Any]) -> None:
        """Errors propagate: a guardrail's refusal is the client's answer."""
        for h in self._response_hooks:
            await h.on_response(call, response)

    async def pre_call(self, call: Call) -> None:
        for h in self._pre_hooks:
            await h.pre_call(call)

    async def post_call(self, call: Call) -> None:
        """Every hook runs even when one fails: a broken callback must not skip spend or limits, and
        the client's answer is already made, so a failure here is logged, never raised."""
        if call.ended is None:
            call.ended = time.perf_counter()
        for h, ended in self._enders:
            try:
                if ended is not None:
                    ended(call)
                else:
                    await h.post_call(call)
            except Exception as e:
                log.error("post_call hook %s failed: %s", type(h).__name__, type(e).__name__, exc_info=e)

    def stream_event(self, call: Call, event: Event) -> None:
        for h in self._stream_hooks:
            h.stream_event(call, event)
