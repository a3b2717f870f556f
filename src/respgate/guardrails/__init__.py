"""Guardrails: checks on what goes to the model and what comes back, that mask or refuse (config
`guardrails:`, LiteLLM's shape; see config.py). One built-in kind: the regex content filter
(patterns.py) for PII, the user's regexes and blocked words.

- pre_call / during_call: the input texts (text.py) are masked — the upstream never sees the
  originals — or the request is refused with a 400 naming the guardrail. (`during_call` runs before
  the upstream call too: a local regex costs microseconds, so there is nothing to overlap.)
- post_call: `on_response(call, response)` masks the Response's output texts or refuses it (400),
  when the gateway calls it before the Response is stored and serialised. In `post_call` itself,
  where the client's bytes are already made, a violation is only recorded and logged.

A guardrail runs when `default_on`, or when the request names it: `"guardrails": ["name"]` in the
body or in `metadata` (LiteLLM's per-request opt-in); that field is taken out of the body here, so
the request's validation never sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from ..calls import Call
from ..config import Config
from ..errors import InvalidRequestError
from .config import Guardrail, parse_guardrails
from .patterns import Blocked
from .text import TextFn, response_texts, rewrite_request, rewrite_response

__all__ = ["Guardrail", "Guardrails", "build"]

log = logging.getLogger("respgate.guardrails")

EXTRA_KEY: Final = "guardrails"  # call.extra: {"requested": [...], "masked": {name: n}, "violations": {...}}
_OUTPUT_DONE: Final = "guardrails.output_checked"


class Guardrails:
    def __init__(self, guardrails: list[Guardrail]) -> None:
        self.by_name = {g.name: g for g in guardrails}
        self.input = tuple(g for g in guardrails if g.on_input)
        self.output = tuple(g for g in guardrails if g.on_output)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def pre_call(self, call: Call) -> None:
        body = call.body
        if not isinstance(body, dict):
            return
        requested, body = self._take_requested(body)
        if requested:
            call.extra[EXTRA_KEY] = {"requested": requested}
        active = [g for g in self.input if g.default_on or g.name in requested]
        if active:
            body = self._mask_input(call, body, active)
        call.body = body

    async def on_response(self, call: Call, response: dict[str, Any]) -> None:
        """Masks or refuses a Response before it is stored and sent (the gateway's hook, JSON only)."""
        call.extra[_OUTPUT_DONE] = True
        active = self._output_for(call)
        if active:
            _run(active, lambda fn: rewrite_response(response, fn), call, "masked_output", "output", None)

    async def post_call(self, call: Call) -> None:
        if call.response is None or call.extra.get(_OUTPUT_DONE):
            return
        active = self._output_for(call)
        if not active:
            return
        texts = response_texts(call.response)
        for g in active:
            found = sorted({name for text in texts for name in g.filter.findings(text)})
            if found:  # the bytes are sent: all that is left is to say so
                self._record(call, "violations", {g.name: found})
                log.warning("guardrail %s: %s in a response already sent (request %s)", g.name, ", ".join(found),
                            call.request_id)

    # -- helpers ---------------------------------------------------------------------------------------

    def _take_requested(self, body: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """The guardrail names the request asks for, and the body without them."""
        names: list[str] = []
        top = body.get("guardrails")
        metadata = body.get("metadata")
        in_meta = metadata.get("guardrails") if isinstance(metadata, dict) else None
        if top is None and in_meta is None:
            return names, body
        body = dict(body)
        for value, param in ((top, "guardrails"), (in_meta, "metadata.guardrails")):
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidRequestError(f"Invalid type for '{param}': expected an array of guardrail names.",
                                          param=param, code="invalid_type")
            for v in value:
                if v not in self.by_name:
                    raise InvalidRequestError(f"Unknown guardrail '{v}' in '{param}'.", param=param,
                                              code="unknown_guardrail")
                if v not in names:
                    names.append(v)
        body.pop("guardrails", None)
        if in_meta is not None:
            assert isinstance(metadata, dict)
            rest = {k: v for k, v in metadata.items() if k != "guardrails"}
            if rest:
                body["metadata"] = rest
            else:
                body.pop("metadata")
        return names, body

    def _mask_input(self, call: Call, body: dict[str, Any], active: list[Guardrail]) -> dict[str, Any]:
        param = "messages" if call.route == "chat.completions" else "input"
        result = body

        def walk(fn: TextFn) -> None:
            nonlocal result
            result = rewrite_request(result, fn)

        _run(active, walk, call, "masked_input", "input", param)
        return result

    def _output_for(self, call: Call) -> list[Guardrail]:
        if not self.output:
            return []
        requested = (call.extra.get(EXTRA_KEY) or {}).get("requested") or ()
        return [g for g in self.output if g.default_on or g.name in requested]

    @staticmethod
    def _record(call: Call, kind: str, values: dict[str, Any]) -> None:
        call.extra.setdefault(EXTRA_KEY, {}).setdefault(kind, {}).update(values)


def _run(active: list[Guardrail], walk: Callable[[TextFn], None], call: Call, kind: str, where: str,
         param: str | None) -> None:
    """Every guardrail's blocking rules first, on the original texts (one guardrail's mask must not hide
    what another refuses), then each guardrail's masks in turn."""
    def check(text: str) -> str:
        for g in active:
            try:
                g.filter.check(text)
            except Blocked as b:
                raise _blocked(g, b, where, param) from None
        return text

    walk(check)
    masked: dict[str, int] = {}
    for g in active:
        if not g.filter.masking:
            continue

        def mask(text: str, g: Guardrail = g) -> str:
            new, names = g.filter.apply(text)
            if names:
                masked[g.name] = masked.get(g.name, 0) + len(names)
            return new

        walk(mask)
    if masked:
        call.extra.setdefault(EXTRA_KEY, {}).setdefault(kind, {}).update(masked)


def _blocked(g: Guardrail, b: Blocked, where: str, param: str | None) -> InvalidRequestError:
    return InvalidRequestError(f"Content blocked by guardrail '{g.name}': {b.rule} pattern detected in the {where}.",
                               param=param, code="content_blocked")


def build(config: Config) -> Guardrails | None:
    guardrails = parse_guardrails(config.sections.get("guardrails"))
    return Guardrails(guardrails) if guardrails else None
