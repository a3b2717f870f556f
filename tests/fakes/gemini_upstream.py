"""A fake Gemini API (AI Studio `v1beta/models/{m}:generateContent` / `:streamGenerateContent?alt=sse`,
and Vertex AI `v1/projects/{p}/locations/{l}/publishers/google/models/{m}:...`) for tests.

An independent oracle: it imports nothing from respgate. Request bodies (camelCase REST JSON) are
validated with `google.genai.types` models (extra keys forbidden, as the real API refuses unknown
names) and the rules Gemini enforces: roles user/model, a functionResponse only right after a turn
of as many functionCalls, and — for thinking models (2.5, 3) — the first functionCall of every
model turn carrying the `thoughtSignature` this server issued for exactly that call (or Gemini's
documented `skip_thought_signature_validator`). Every answer is validated with
`GenerateContentResponse` before it is sent.

The model is deterministic: "Echo: " + the last user text; "call all" / "call X" with tools gives
function calls (all tools in parallel, or X — the first tool when none is named X) whose required
string arguments hold the user text; after functionResponses, "Tool results: " + their outputs
joined by "; "; a JSON response MIME type gives a JSON object of the schema's required fields;
"trigger safety" ends with finishReason SAFETY; maxOutputTokens truncates (MAX_TOKENS). With
thinkingConfig.includeThoughts a thought part "Thinking about: <text>" comes first. With the
`googleSearch` tool, "search <query>" answers with a grounded text (non-ASCII included, as the byte
offsets of grounding segments are UTF-8) and `groundingMetadata` (queries, two web chunks, supports,
the search entry point) on the last chunk; Gemini 2.x refuses googleSearch beside function
declarations, as the live API does. Tokens are ceil(chars / 4).

Vertex routes need `Authorization: Bearer <t>` with t in `tokens`; `POST /token` is an OAuth token
endpoint for service-account JWT grants (verified with `public_key` when given) that issues them.
Fault knobs: `fail_next(http_status, status, message, reason=)`, `break_stream_after`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from google.genai import types as gt
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

JSON = dict[str, Any]
SKIP_SIGNATURE = "skip_thought_signature_validator"
_STATUS_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class GenerateContentRequest(BaseModel):
    """The REST body of generateContent (the SDK has no type for it: it is built from these parts)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    contents: list[gt.Content]
    system_instruction: gt.Content | None = None
    tools: list[gt.Tool] | None = None
    tool_config: gt.ToolConfig | None = None
    generation_config: gt.GenerationConfig | None = None
    safety_settings: list[gt.SafetySetting] | None = None
    cached_content: str | None = None
    labels: dict[str, str] | None = None


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason

    def response(self) -> JSONResponse:
        error: JSON = {"code": self.code, "message": self.message, "status": _STATUS_CODES.get(self.code, "UNKNOWN")}
        if self.reason:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": self.reason,
                                 "domain": "googleapis.com"}]
        return JSONResponse({"error": error}, status_code=self.code)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc[:-1]) or "GenerateContentRequest"


def _validation_error(e: ValidationError) -> ApiError:
    first = e.errors()[0]
    if first["type"] == "extra_forbidden":
        return ApiError(400, f'Invalid JSON payload received. Unknown name "{first["loc"][-1]}" at '
                             f"'{_location(first['loc'])}': Cannot find field.")
    return ApiError(400, f"Invalid value at '{'.'.join(str(p) for p in first['loc'])}': {first['msg']}")


@dataclass
class FakeGemini:
    api_key: str = "gemini-test-key"
    tokens: set[str] = field(default_factory=set)
    public_key: bytes | None = None  # the service account's, to verify JWT grants at /token
    break_stream_after: int | None = None
    cached_tokens: int = 0
    requests: list[Seen] = field(default_factory=list)
    token_grants: int = 0
    _faults: list[tuple[int, str, str | None]] = field(default_factory=list)
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[
            Route("/v1beta/models/{target}", self._studio, methods=["POST"]),
            Route("/v1/projects/{project}/locations/{location}/publishers/google/models/{target}", self._vertex,
                  methods=["POST"]),
            Route("/token", self._token, methods=["POST"]),
        ])

    def fail_next(self, code: int, message: str, reason: str | None = None) -> None:
        self._faults.append((code, message, reason))

    # --- routes ---------------------------------------------------------------------------------

    async def _studio(self, request: Request) -> Response:
        if request.headers.get("x-goog-api-key") is None:
            return ApiError(403, "Method doesn't allow unregistered callers (callers without established "
                                 "identity). Please use API Key or other form of API consumer identity "
                                 "to call this API.").response()
        if request.headers["x-goog-api-key"] != self.api_key:
            return ApiError(400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID").response()
        return await self._generate(request)

    async def _vertex(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return ApiError(401, "Request had invalid authentication credentials. Expected OAuth 2 access "
                                 "token, login cookie or other valid authentication credential.",
                            "ACCESS_TOKEN_EXPIRED").response()
        return await self._generate(request)

    async def _token(self, request: Request) -> Response:
        form = dict(urllib.parse.parse_qsl((await request.body()).decode()))
        assertion = form.get("assertion") or ""
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not assertion:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if self.public_key is not None:
            from google.auth import jwt

            try:
                jwt.decode(assertion, certs=self.public_key, verify=True, audience="https://oauth2.googleapis.com/token")  # type: ignore[no-untyped-call]
            except ValueError as e:
                return JSONResponse({"error": "invalid_grant", "error_description": str(e)}, status_code=400)
        token = "ya29.fake-" + secrets.token_hex(8)
        self.tokens.add(token)
        self.token_grants += 1
        return JSONResponse({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    async def _generate(self, request: Request) -> Response:
        target = request.path_params["target"]
        model, _, method = target.partition(":")
        raw = await request.body()
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        self.requests.append(Seen(request.url.path, dict(request.headers), body))
        try:
            if method not in ("generateContent", "streamGenerateContent"):
                raise ApiError(404, f"Method {method} not found.")
            if self._faults:
                code, message, reason = self._faults.pop(0)
                raise ApiError(code, message, reason)
            if not isinstance(body, dict):
                raise ApiError(400, "Invalid JSON payload received.")
            try:
                req = GenerateContentRequest.model_validate(body)
            except ValidationError as e:
                raise _validation_error(e) from None
            self._check(model, req, body)
            chunks = self._answer(model, req, stream=method == "streamGenerateContent")
        except ApiError as e:
            return e.response()
        if method == "generateContent":
            return JSONResponse(chunks[0])
        if request.query_params.get("alt") != "sse":
            return JSONResponse(chunks)  # without alt=sse Gemini streams one JSON array
        return StreamingResponse(self._sse(chunks), media_type="text/event-stream")

    async def _sse(self, chunks: list[JSON]) -> Any:
        for i, chunk in enumerate(chunks):
            if self.break_stream_after is not None and i >= self.break_stream_after:
                raise RuntimeError("stream broken on purpose")
            yield b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"

    # --- validation -----------------------------------------------------------------------------

    def _sign(self, kind: str, what: Any) -> str:
        mac = hmac.new(self._secret, f"{kind}:{json.dumps(what, sort_keys=True)}".encode(), hashlib.sha256)
        return base64.b64encode(mac.digest()).decode()

    def _check(self, model: str, req: GenerateContentRequest, raw: JSON) -> None:
        if not req.contents:
            raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified\n")
        thinking = "2.5" in model or "gemini-3" in model
        gen = req.generation_config
        tc = gen.thinking_config if gen else None
        if tc and tc.thinking_level is not None and "gemini-3" not in model:
            raise ApiError(400, "Thinking level is not supported for this model.")
        if tc and tc.thinking_budget is not None and "gemini-3" in model and tc.thinking_level is not None:
            raise ApiError(400, "You can only set only one of thinking budget and thinking level.")
        if gen and (gen.response_json_schema is not None or gen.response_schema is not None) and \
                gen.response_mime_type != "application/json":
            raise ApiError(400, "response_mime_type must be application/json when a response schema is set.")
        tools = req.tools or []
        if any(t.google_search for t in tools) and any(t.function_declarations for t in tools) and \
                "gemini-3" not in model:
            raise ApiError(400, "Tool use with function calling is unsupported")
        for t in tools:
            for fd in t.function_declarations or []:
                if fd.parameters is not None and fd.parameters_json_schema is not None:
                    raise ApiError(400, "parameters and parameters_json_schema cannot both be set.")
        previous: gt.Content | None = None
        for n, content in enumerate(req.contents):
            if content.role not in ("user", "model"):
                raise ApiError(400, f"Please use a valid role: user, model. (got {content.role!r})")
            parts = content.parts or []
            calls = [p.function_call for p in parts if p.function_call]
            responses = [p.function_response for p in parts if p.function_response]
            if responses:
                before = [p.function_call for p in (previous.parts or [])] if previous else []
                before_calls = [c for c in before if c]
                if not before_calls or previous is None or previous.role != "model":
                    raise ApiError(400, "Please ensure that function response turn comes immediately after a "
                                        "function call turn.")
                if len(before_calls) != len(responses):
                    raise ApiError(400, "Please ensure that the number of function response parts is equal to "
                                        "the number of function call parts of the function call turn.")
                if sorted(c.name or "" for c in before_calls) != sorted(r.name or "" for r in responses):
                    raise ApiError(400, "Function response names do not match the function calls.")
            if calls and content.role == "model" and thinking:
                first = next(p for p in raw["contents"][n]["parts"] if "functionCall" in p)
                call = first["functionCall"]
                sig = first.get("thoughtSignature")
                wanted = self._sign("call", [call["name"], call.get("args") or {}])
                if sig not in (SKIP_SIGNATURE, wanted):
                    raise ApiError(400, f"Function call `{call['name']}` in the {n + 1}. content block is missing "
                                        "a `thought_signature`." if sig is None else
                                   "Corrupted thought signature.")
            previous = content

    # --- the model ------------------------------------------------------------------------------

    def _answer(self, model: str, req: GenerateContentRequest, *, stream: bool) -> list[JSON]:
        last = req.contents[-1]
        parts = last.parts or []
        user_text = " ".join(p.text for p in parts if p.text)
        gen = req.generation_config or gt.GenerationConfig()
        thinking = "2.5" in model or "gemini-3" in model
        out: list[JSON] = []
        if gen.thinking_config and gen.thinking_config.include_thoughts:
            out.append({"text": f"Thinking about: {user_text}", "thought": True})
        finish = "STOP"
        calls = self._calls(req, user_text) if last.role == "user" and not any(p.function_response for p in parts) \
            else []
        searching = any(t.google_search for t in req.tools or []) and user_text.startswith("search ")
        if searching:
            text, grounding = _grounded(user_text.removeprefix("search "))
            out.append({"text": text})
            return self._chunks(req, out, finish, stream=stream, grounding=grounding)
        if calls:
            for i, call in enumerate(calls):
                part: JSON = {"functionCall": call}
                if thinking and i == 0:
                    part["thoughtSignature"] = self._sign("call", [call["name"], call["args"]])
                out.append(part)
        else:
            responses = [p.function_response for p in parts if p.function_response]
            if responses:
                text = "Tool results: " + "; ".join(str((r.response or {}).get("output", r.response))
                                                    for r in responses)
            elif gen.response_mime_type == "application/json":
                schema = gen.response_json_schema or {}
                props = schema.get("properties", {}) if isinstance(schema, dict) else {}
                text = json.dumps({k: user_text if props.get(k, {}).get("type") == "string" else 0
                                   for k in (schema.get("required", []) if isinstance(schema, dict) else [])})
            else:
                text = f"Echo: {user_text}"
            if "trigger safety" in user_text:
                finish, text = "SAFETY", ""
            limit = gen.max_output_tokens
            if limit is not None and _tokens(text) > limit:
                text, finish = text[:limit * 4], "MAX_TOKENS"
            if text:
                out.append({"text": text, **({"thoughtSignature": self._sign("text", text)} if thinking else {})})
        return self._chunks(req, out, finish, stream=stream)

    def _calls(self, req: GenerateContentRequest, text: str) -> list[JSON]:
        decls = [d for t in req.tools or [] for d in t.function_declarations or []]
        config = req.tool_config.function_calling_config if req.tool_config else None
        mode = str(config.mode.value if config and config.mode else "AUTO")
        if config and config.allowed_function_names:
            decls = [d for d in decls if d.name in config.allowed_function_names]
        if not decls or mode == "NONE" or (mode != "ANY" and not text.startswith("call ")):
            return []
        words = text.split()
        named = [d for d in decls if len(words) > 1 and d.name == words[1]]
        chosen = decls if len(words) > 1 and words[1] == "all" else (named or decls[:1])
        out = []
        for d in chosen:
            schema = d.parameters_json_schema if isinstance(d.parameters_json_schema, dict) else {}
            props = schema.get("properties", {})
            args = {k: text for k in schema.get("required", []) if props.get(k, {}).get("type") == "string"}
            out.append({"name": d.name, "args": args})
        return out

    def _chunks(self, req: GenerateContentRequest, parts: list[JSON], finish: str, *, stream: bool,
                grounding: JSON | None = None) -> list[JSON]:
        prompt = _tokens(json.dumps(req.model_dump(mode="json", exclude_none=True)))
        thoughts = sum(_tokens(p.get("text", "")) for p in parts if p.get("thought"))
        answer = sum(_tokens(p.get("text", "") or json.dumps(p.get("functionCall", ""))) for p in parts
                     if not p.get("thought"))
        usage: JSON = {"promptTokenCount": prompt, "candidatesTokenCount": answer,
                       "totalTokenCount": prompt + answer + thoughts}
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = self.cached_tokens
        pieces: list[list[JSON]] = [parts]
        if stream:  # text in 8-character pieces; a text signature comes alone at the end, as Gemini does
            pieces = []
            for p in parts:
                if p.get("text"):
                    text, sig = p["text"], p.get("thoughtSignature")
                    for i in range(0, len(text), 8):
                        pieces.append([{**({"thought": True} if p.get("thought") else {}), "text": text[i:i + 8]}])
                    if sig:
                        pieces.append([{"text": "", "thoughtSignature": sig}])
                else:
                    pieces.append([p])
            pieces = pieces or [[]]
        chunks = []
        for i, piece in enumerate(pieces):
            candidate: JSON = {"content": {"role": "model", "parts": piece}, "index": 0}
            if i == len(pieces) - 1:
                candidate["finishReason"] = finish
                if grounding is not None:
                    candidate["groundingMetadata"] = grounding
            chunk = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "fake-gemini",
                     "responseId": "fake" + secrets.token_hex(6)}
            gt.GenerateContentResponse.model_validate(chunk)
            chunks.append(chunk)
        return chunks


def _grounded(query: str) -> tuple[str, JSON]:
    """A grounded answer and its metadata: segment offsets count UTF-8 bytes, as Gemini's do."""
    first, second = "Le café est bon.", "The second source agrees."
    text = f"About {query}: {first} {second}"
    raw = text.encode()

    def segment(piece: str) -> JSON:
        start = raw.index(piece.encode())
        return {"startIndex": start, "endIndex": start + len(piece.encode()), "text": piece}

    chunks = [{"web": {"uri": f"https://vertexaisearch.cloud.google.com/grounding-api-redirect/{n}",
                       "title": f"source{n}.example", "domain": f"source{n}.example"}} for n in (1, 2)]
    return text, {
        "webSearchQueries": [query, f"{query} details"],
        "groundingChunks": chunks,
        "groundingSupports": [{"segment": segment(first), "groundingChunkIndices": [0]},
                              {"segment": segment(second), "groundingChunkIndices": [1, 0]}],
        "searchEntryPoint": {"renderedContent": "<div>Google Search suggestions</div>"},
    }
