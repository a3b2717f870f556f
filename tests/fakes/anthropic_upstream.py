"""A fake Anthropic Messages API (`POST /v1/messages`) for tests.

An independent oracle: it imports nothing from respgate. Requests are validated with the official
`anthropic.types` MessageCreateParams made strict (unknown keys refused at every depth, no
coercion), plus the checks the live API makes beyond the types: `x-api-key` and
`anthropic-version` headers, every `tool_result` answering a `tool_use` of the message right
before it (and every tool_use answered), thinking budgets (>= 1024 and < max_tokens), and on a
tool-use continuation with thinking enabled the previous assistant turn must start with the very
thinking blocks this fake issued (signatures are remembered; altered or dropped ones are refused).
The 2.14 SDK no longer lists `temperature`/`top_p`/`top_k`; the live API still takes them for
Claude 4.x models, so the fake accepts them too.

A request with an `anthropic-beta` header is validated with the beta params (`anthropic.types.beta`),
as the live API accepts beta tools only then; a computer tool needs its own beta value
(`computer_20250124` <-> `computer-use-2025-01-24`, `computer_20251124` <-> `computer-use-2025-11-24`).

The model is deterministic: "Echo: " + the last user text; "call X" / "call all" with tools gives
tool_use blocks (X, or the first tool); after tool results: "Tool results: " + their texts joined
by "; " (an image in a result reads "[image <media type>]"); `output_config.format` gives a JSON
object filling the schema's required fields with the user text; "refuse" gives stop_reason refusal;
with `thinking` enabled a thinking block "Thinking about: <text>" comes first ("redact" in the
text gives a redacted_thinking block instead). With a computer tool, "computer <JSON>" calls it with
that JSON as the input (checked against the tool version's actions). With the web search server
tool, "search <query>" gives server_tool_use + web_search_tool_result (two results, on the first
allowed domain when there are some) and two cited text blocks; "search fail" gives a
web_search_tool_result_error. Tokens are ceil(chars / 4). Cache: the prefix up to the last
`cache_control` is written the first time it is seen and read afterwards. Every body and event is
validated with the SDK's models before it is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.beta.message_create_params import MessageCreateParamsBase as BetaMessageCreateParamsBase
from anthropic.types.message_create_params import MessageCreateParamsBase
from pydantic import TypeAdapter, ValidationError
from pydantic_core import SchemaValidator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response as HTTPResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

JSON = dict[str, Any]
API_VERSION = "2023-06-01"


class LiveParams(MessageCreateParamsBase, total=False):
    """What the live endpoint accepts: the SDK's params, the sampling knobs, `stream`."""

    temperature: float
    top_p: float
    top_k: int
    stream: bool


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "json-or-python":
        return _strict(schema["json_schema"])
    out = {k: _strict(v) for k, v in schema.items() if k not in ("serialization", "config")}
    if schema.get("type") == "generator":
        out["type"] = "list"
    elif schema.get("type") in ("typed-dict", "model-fields"):  # the SDK's response models sit in unions too
        out["extra_behavior"] = "allow" if "extras_schema" in schema else "forbid"  # open maps stay open
    return out


class BetaLiveParams(BetaMessageCreateParamsBase, total=False):
    """The beta endpoint's body (the SDK's `betas` travels as the header, never in the body)."""

    temperature: float
    top_p: float
    top_k: int
    stream: bool


_PARAMS = SchemaValidator(_strict(TypeAdapter(LiveParams).core_schema))
_BETA_PARAMS = SchemaValidator(_strict(TypeAdapter(BetaLiveParams).core_schema))
COMPUTER_BETAS = {"computer_20250124": "computer-use-2025-01-24", "computer_20251124": "computer-use-2025-11-24",
                  "computer_20241022": "computer-use-2024-10-22"}
# the input each computer action takes (besides "action"); Anthropic's computer tool reference
_ACTIONS: dict[str, set[str]] = {
    "screenshot": set(), "cursor_position": set(), "wait": {"duration"},
    "left_click": {"coordinate", "text"}, "right_click": {"coordinate", "text"},
    "middle_click": {"coordinate", "text"}, "double_click": {"coordinate", "text"},
    "triple_click": {"coordinate", "text"}, "mouse_move": {"coordinate", "text"},
    "left_mouse_down": {"coordinate"}, "left_mouse_up": {"coordinate"},
    "left_click_drag": {"start_coordinate", "coordinate"}, "key": {"text"}, "hold_key": {"text", "duration"},
    "type": {"text"}, "scroll": {"coordinate", "scroll_direction", "scroll_amount", "text"},
}
_EVENT = TypeAdapter(RawMessageStreamEvent)


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message

    def body(self) -> JSON:
        return {"type": "error", "error": {"type": self.kind, "message": self.message},
                "request_id": "req_" + secrets.token_hex(12)}


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


class Recorded(NamedTuple):
    headers: dict[str, str]
    body: Any


# ---------------------------------------------------------------- validation


def _loc(loc: tuple[Any, ...]) -> str:
    # pydantic puts union member names into the path; the API shows only the data path
    return ".".join(str(p) for p in loc if isinstance(p, int) or not re.search(r"[A-Z\[]", str(p)))


def validate(body: Any, betas: frozenset[str] = frozenset()) -> JSON:
    if not isinstance(body, dict):
        raise _bad("body: Input should be an object")
    if "betas" in body:
        raise _bad("betas: Extra inputs are not permitted")
    try:
        (_BETA_PARAMS if betas else _PARAMS).validate_python(body, strict=True)
    except ValidationError as exc:
        errors = exc.errors()
        extra = next((e for e in errors if e["type"] == "extra_forbidden"), None)
        missing = next((e for e in errors if e["type"] == "missing"), None)
        err = extra or missing or min(errors, key=lambda e: len(e["loc"]))
        words = {"extra_forbidden": "Extra inputs are not permitted", "missing": "Field required"}
        raise _bad(f"{_loc(err['loc'])}: {words.get(err['type'], err['msg'])}") from None
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        if thinking["budget_tokens"] < 1024:
            raise _bad("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if thinking["budget_tokens"] >= body["max_tokens"]:
            raise _bad("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                       "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                       "#max-tokens-and-context-window-size")
    if not body["messages"]:
        raise _bad("messages: at least one message is required")
    for i, tool in enumerate(body.get("tools") or []):
        needed = COMPUTER_BETAS.get(tool.get("type", ""))
        if needed is not None and needed not in betas:
            raise _bad(f"tools.{i}: the tool type '{tool['type']}' requires the beta header "
                       f"'anthropic-beta: {needed}'")
        if tool.get("type", "").startswith("web_search_") and tool.get("allowed_domains") and \
                tool.get("blocked_domains"):
            raise _bad(f"tools.{i}: allowed_domains and blocked_domains cannot both be set")
    _check_tool_sequence(body["messages"])
    return body


def _blocks(message: JSON) -> list[JSON]:
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _check_tool_sequence(messages: list[JSON]) -> None:
    for i, message in enumerate(messages):
        uses = [b["id"] for b in _blocks(message) if b["type"] == "tool_use"]
        nxt = messages[i + 1] if i + 1 < len(messages) else None
        if uses and nxt is not None:
            answered = {b["tool_use_id"] for b in _blocks(nxt) if b["type"] == "tool_result"}
            missing = [u for u in uses if u not in answered]
            if missing:
                raise _bad(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                           f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                           "`tool_result` block in the next message.")
        results = [(j, b["tool_use_id"]) for j, b in enumerate(_blocks(message)) if b["type"] == "tool_result"]
        before = {b["id"] for b in _blocks(messages[i - 1]) if b["type"] == "tool_use"} if i else set()
        for j, use_id in results:
            if use_id not in before:
                raise _bad(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                           f"{use_id}. Each `tool_result` block must have a corresponding `tool_use` block in "
                           "the previous message.")


# ---------------------------------------------------------------- the echo model


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _text_of(blocks: list[JSON]) -> str:
    return "".join(b.get("text", "") for b in blocks if b["type"] == "text")


def _result_text(block: JSON) -> str:
    content = block.get("content", "")
    if isinstance(content, str):
        return content
    return "".join(b["text"] if b["type"] == "text" else f"[image {b['source'].get('media_type', 'by url')}]"
                   if b["type"] == "image" else "" for b in content)


def _fill(schema: Any, text: str) -> Any:
    if not isinstance(schema, dict):
        return text
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: _fill(props.get(k), text) for k in schema.get("required") or []}
    return {"integer": 0, "number": 0, "boolean": False, "array": [], "null": None}.get(kind, text)


def _arguments(tool: JSON, text: str) -> JSON:
    schema = tool.get("input_schema") or {}
    props = schema.get("properties") or {}
    return {name: text for name in schema.get("required") or [] if (props.get(name) or {}).get("type") == "string"}


def _chosen_tools(request: JSON, last_user: str) -> list[JSON]:
    tools = [t for t in request.get("tools") or [] if t.get("type", "custom") == "custom"]
    choice = request.get("tool_choice") or {"type": "auto"}
    if not tools or choice["type"] == "none":
        return []
    single = choice.get("disable_parallel_tool_use", False)
    if choice["type"] == "tool":
        return [t for t in tools if t["name"] == choice["name"]]
    if not last_user.startswith("call ") and choice["type"] != "any":
        return []
    target = last_user.removeprefix("call ").split(" ")[0] if last_user.startswith("call ") else ""
    picked = tools if target == "all" else [t for t in tools if t["name"] == target] or tools[:1]
    return picked[:1] if single else picked


def _prefix_chars(request: JSON) -> int:
    """Characters up to and including the last cache_control marker (0 when none)."""
    pieces: list[tuple[int, bool]] = []
    system = request.get("system")
    for block in ([{"type": "text", "text": system}] if isinstance(system, str) else system or []):
        pieces.append((len(block["text"]), "cache_control" in block))
    for tool in request.get("tools") or []:
        pieces.append((len(json.dumps(tool)), "cache_control" in tool))
    for message in request["messages"]:
        for block in _blocks(message):
            pieces.append((len(json.dumps(block)), "cache_control" in block))
    marked = [k for k, (_, m) in enumerate(pieces) if m]
    return sum(c for c, _ in pieces[: marked[-1] + 1]) if marked else 0


def _betas(request: Request) -> frozenset[str]:
    return frozenset(b.strip() for b in request.headers.get("anthropic-beta", "").split(",") if b.strip())


def _computer_input(text: str, tool: JSON) -> JSON:
    """The JSON after "computer ", checked as the tool takes it: a known action with its own fields,
    coordinates inside the declared display."""
    try:
        given = json.loads(text)
    except ValueError:
        raise _bad("the fake's computer probe needs JSON after 'computer '") from None
    allowed = _ACTIONS.get(given.get("action")) if isinstance(given, dict) else None
    if allowed is None or set(given) - allowed - {"action"}:
        raise _bad(f"the fake's computer probe is not a valid {tool['type']} action: {text}")
    for key in ("coordinate", "start_coordinate"):
        x, y = given.get(key) or (0, 0)
        if not (0 <= x < tool["display_width_px"] and 0 <= y < tool["display_height_px"]):
            raise _bad(f"{key} {given[key]} is outside the display")
    return given


def _search(query: str, tool: JSON) -> list[JSON]:
    use_id = "srvtoolu_" + secrets.token_hex(12)
    blocks: list[JSON] = [{"type": "server_tool_use", "id": use_id, "name": "web_search", "input": {"query": query}}]
    if query == "fail":
        return [*blocks, {"type": "web_search_tool_result", "tool_use_id": use_id,
                          "content": {"type": "web_search_tool_result_error", "error_code": "unavailable"}},
                {"type": "text", "text": "The search failed."}]
    domain = (tool.get("allowed_domains") or ["example.org"])[0]
    results = [{"type": "web_search_result", "url": f"https://{domain}/{n}", "title": f"Result {n} for {query}",
                "encrypted_content": "Eo" + secrets.token_hex(16), "page_age": "2 days ago"} for n in (1, 2)]

    def cite(n: int, text: str) -> JSON:
        return {"type": "web_search_result_location", "url": results[n]["url"], "title": results[n]["title"],
                "encrypted_index": "Ei" + secrets.token_hex(8), "cited_text": text}

    return [
        *blocks,
        {"type": "web_search_tool_result", "tool_use_id": use_id, "content": results},
        {"type": "text", "text": f"About {query}: "},
        {"type": "text", "text": "the first source says yes.", "citations": [cite(0, "yes")]},
        {"type": "text", "text": " "},
        {"type": "text", "text": "The second agrees.", "citations": [cite(1, "agrees"), cite(0, "yes")]},
    ]


# ---------------------------------------------------------------- the server


@dataclass
class _Faults:
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: deque[tuple[int, JSON | None]] = field(default_factory=deque)
    delays: deque[float] = field(default_factory=deque)
    drops: deque[int] = field(default_factory=deque)
    error_events: int = 0


_DEFAULT_FAILURES = {
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
}


def _json(body: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(json.dumps(body), status, media_type="application/json",
                        headers={"request-id": "req_" + secrets.token_hex(12)})


class FakeAnthropic:
    """`with ServerThread(FakeAnthropic().app) as s: Anthropic(base_url=s.url, api_key="sk-ant")`."""

    def __init__(self, api_key: str = "sk-ant-test") -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self._faults = _Faults()
        self._signatures: dict[str, str] = {}  # signature -> the thinking it signs
        self._redacted: set[str] = set()
        self._turn_thinking: dict[str, list[JSON]] = {}  # tool_use id -> the thinking blocks of its turn
        self._cached: set[str] = set()
        # Claude on Vertex AI: bearer tokens the test hands out (a google-auth token endpoint elsewhere)
        self.vertex_tokens: set[str] = set()
        self.app = Starlette(routes=[
            Route("/v1/messages", self._endpoint, methods=["POST"]),
            Route("/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{target}",
                  self._vertex_endpoint, methods=["POST"]),
        ])

    # ---- fault knobs: each applies to one coming request, in the order they were set

    def fail_next(self, status: int, body: JSON | None = None) -> None:
        with self._faults.lock:
            self._faults.failures.append((status, body))

    def delay_next(self, seconds: float) -> None:
        with self._faults.lock:
            self._faults.delays.append(seconds)

    def drop_stream_after(self, n_events: int) -> None:
        with self._faults.lock:
            self._faults.drops.append(n_events)

    def error_event_next(self) -> None:
        """The next stream sends an `overloaded_error` event halfway."""
        with self._faults.lock:
            self._faults.error_events += 1

    # ---- plumbing

    async def _endpoint(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        self.requests.append(Recorded(dict(request.headers), body))
        authorized = request.headers.get("x-api-key") == self.api_key
        versioned = request.headers.get("anthropic-version") == API_VERSION
        return await self._serve(body, authorized, versioned, _betas(request))

    async def _vertex_endpoint(self, request: Request) -> Any:
        """Vertex's rawPredict / streamRawPredict: the model in the path, `anthropic_version` in the body,
        no `model` field; the stream flag must agree with the method."""
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        self.requests.append(Recorded(dict(request.headers), body))
        model, _, method = request.path_params["target"].partition(":")
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if isinstance(body, dict):
            if "model" in body:
                return _json(_bad("model: Extra inputs are not permitted").body(), 400)
            body = dict(body)  # the recorded request stays as sent
            versioned = body.pop("anthropic_version", None) == "vertex-2023-10-16"
            if bool(body.get("stream")) != (method == "streamRawPredict"):
                return _json(_bad(f"stream does not match the method {method}").body(), 400)
            body = {"model": model, **body}
        else:
            versioned = False
        return await self._serve(body, bearer in self.vertex_tokens, versioned, _betas(request))

    async def _serve(self, body: Any, authorized: bool, versioned: bool, betas: frozenset[str]) -> Any:
        with self._faults.lock:
            delay = self._faults.delays.popleft() if self._faults.delays else 0.0
            failure = self._faults.failures.popleft() if self._faults.failures else None
        if delay:
            await asyncio.sleep(delay)
        if failure is not None:
            status, given = failure
            kind, message = _DEFAULT_FAILURES.get(status, ("api_error", f"Failure {status}"))
            return _json(given or ApiError(status, kind, message).body(), status)
        try:
            if not authorized:
                raise ApiError(401, "authentication_error", "invalid x-api-key")
            if not versioned:
                raise _bad("anthropic-version: header is required")
            if body is None:
                raise _bad("There was an issue with your request body: it is not valid JSON.")
            req = validate(body, betas)
            self._check_thinking(req)
            message = self._answer(req)
        except ApiError as exc:
            return _json(exc.body(), exc.status)
        if not req.get("stream"):
            return _json(message)
        with self._faults.lock:
            drop = self._faults.drops.popleft() if self._faults.drops else None
            error_midway = self._faults.error_events > 0
            self._faults.error_events -= error_midway
        return _EventStream(stream_events(message), drop, error_midway)

    def _check_thinking(self, req: JSON) -> None:
        messages = req["messages"]
        for i, message in enumerate(messages):
            for j, block in enumerate(_blocks(message)):
                if block["type"] == "thinking" and self._signatures.get(block["signature"]) != block["thinking"]:
                    raise _bad(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
                if block["type"] == "redacted_thinking" and block["data"] not in self._redacted:
                    raise _bad(f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block")
        if (req.get("thinking") or {}).get("type") != "enabled" or len(messages) < 2:
            return
        last = _blocks(messages[-1])
        if not any(b["type"] == "tool_result" for b in last):
            return
        turn = _blocks(messages[-2])
        issued = next((self._turn_thinking[b["id"]] for b in turn
                       if b["type"] == "tool_use" and b["id"] in self._turn_thinking), [])
        sent = [b for b in turn if b["type"] in ("thinking", "redacted_thinking")]
        if turn[0]["type"] not in ("thinking", "redacted_thinking") or sent != issued:
            raise _bad(f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                       f"but found `{turn[0]['type']}`. When `thinking` is enabled, a final `assistant` message "
                       "must start with a thinking block (preceeding the lastmost set of `tool_use` and "
                       "`tool_result` blocks).")

    def _answer(self, req: JSON) -> JSON:
        messages = req["messages"]
        users = [m for m in messages if m["role"] == "user"]
        last_blocks = _blocks(users[-1]) if users else []
        last_user = _text_of(last_blocks)
        results = [_result_text(b) for b in last_blocks if b["type"] == "tool_result"]
        content: list[JSON] = []
        if (req.get("thinking") or {}).get("type") == "enabled":
            content.append(self._thinking(last_user))
        stop = "end_turn"
        calls = [] if results else _chosen_tools(req, last_user)
        server = {t.get("type", ""): t for t in req.get("tools") or []}
        computer = next((t for kind, t in server.items() if kind in COMPUTER_BETAS), None)
        searcher = next((t for kind, t in server.items() if kind.startswith("web_search_")), None)
        if computer is not None and last_user.startswith("computer "):  # also right after a tool result
            use = {"type": "tool_use", "id": "toolu_" + secrets.token_hex(12), "name": "computer",
                   "input": _computer_input(last_user.removeprefix("computer "), computer)}
            content.append(use)
            stop = "tool_use"
        elif searcher is not None and last_user.startswith("search ") and not results:
            content += _search(last_user.removeprefix("search "), searcher)
        elif calls:
            stop = "tool_use"
            for tool in calls:
                use = {"type": "tool_use", "id": "toolu_" + secrets.token_hex(12), "name": tool["name"],
                       "input": _arguments(tool, last_user)}
                content.append(use)
                self._turn_thinking[use["id"]] = [b for b in content if b["type"] != "tool_use"]
        elif last_user.startswith("refuse"):
            stop = "refusal"
        else:
            fmt = (req.get("output_config") or {}).get("format")
            if results:
                text = "Tool results: " + "; ".join(results)
            elif fmt:
                text = json.dumps(_fill(fmt["schema"], last_user))
            else:
                text = "Echo: " + last_user
            if _tokens(len(text)) > req["max_tokens"]:
                text, stop = text[: req["max_tokens"] * 4], "max_tokens"
            content.append({"type": "text", "text": text})
        input_tokens = _tokens(len(json.dumps(req["messages"])) + len(json.dumps(req.get("system") or "")))
        prefix = _tokens(_prefix_chars(req))
        key = hashlib.sha256(json.dumps(req["messages"])[: _prefix_chars(req)].encode()).hexdigest()
        read = prefix if prefix and key in self._cached else 0
        written = prefix - read
        if prefix:
            self._cached.add(key)
        thinking_chars = sum(len(b.get("thinking", "")) for b in content)
        usage: JSON = {"input_tokens": max(input_tokens - prefix, 0),
                       "output_tokens": _tokens(len(json.dumps(content))),
                       "cache_creation_input_tokens": written, "cache_read_input_tokens": read,
                       "output_tokens_details": {"thinking_tokens": _tokens(thinking_chars)}}
        searches = sum(1 for b in content if b["type"] == "server_tool_use")
        if searches:
            usage["server_tool_use"] = {"web_search_requests": searches, "web_fetch_requests": 0}
        message = {"id": "msg_" + secrets.token_hex(12), "type": "message", "role": "assistant",
                   "model": req["model"], "content": content, "stop_reason": stop, "stop_sequence": None,
                   "usage": usage}
        Message.model_validate(message)
        return message

    def _thinking(self, text: str) -> JSON:
        if "redact" in text:
            data = "EmwKAhgBEgy" + secrets.token_hex(16)
            self._redacted.add(data)
            return {"type": "redacted_thinking", "data": data}
        thought = f"Thinking about: {text}"
        signature = "EqQB" + secrets.token_hex(24)
        self._signatures[signature] = thought
        return {"type": "thinking", "thinking": thought, "signature": signature}


# ---------------------------------------------------------------- streaming


def _pieces(text: str, size: int = 5) -> list[str]:
    return [text[at : at + size] for at in range(0, len(text), size)] or []


def stream_events(message: JSON) -> list[JSON]:
    """The live API's event sequence for a finished message, each event validated."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    events: list[JSON] = [{"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                                 "usage": start_usage}},
                          {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        deltas: list[JSON] = []
        if kind == "text":
            opening: JSON = {"type": "text", "text": ""}
            deltas = [{"type": "citations_delta", "citation": c} for c in block.get("citations") or []]
            deltas += [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        elif kind == "thinking":
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind in ("tool_use", "server_tool_use"):
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(json.dumps(block["input"]), 4)]
        else:
            opening = block
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                   "usage": usage})
    events.append({"type": "message_stop"})
    for event in events:
        if event["type"] != "ping":
            _EVENT.validate_python(event)
    return events


def encode_sse(events: list[JSON]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


class _EventStream:
    def __init__(self, events: list[JSON], drop_after: int | None, error_midway: bool) -> None:
        self.events, self.drop_after, self.error_midway = events, drop_after, error_midway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        error_at = len(self.events) // 2 if self.error_midway else None
        for sent, event in enumerate(self.events):
            if self.drop_after is not None and sent >= self.drop_after:
                return  # no final empty body: the connection closes mid-stream
            if sent == error_at:
                event = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            await send({"type": "http.response.body", "body": encode_sse([event]), "more_body": True})
            if sent == error_at:
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})
