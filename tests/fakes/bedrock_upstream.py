"""A fake Bedrock Runtime (`POST /model/{modelId}/converse` and `/converse-stream`) for tests.

An independent oracle: it imports nothing from respgate. Every request must carry a SigV4 signature
that botocore, recomputing it with the known test credentials, agrees with (else 403
InvalidSignatureException / UnrecognizedClientException). Bodies are checked against the
`bedrock-runtime` service model's Converse input shape with botocore's ParamValidator (unknown
fields, wrong types and missing members refused as ValidationException), plus the checks the live
service makes: alternating roles starting with user, no blank text, toolResult only after its
toolUse, toolConfig present when the history has tool blocks, and (with thinking on) the assistant
turn before tool results starting with the exact reasoning the fake issued.

The model is deterministic. It answers "Echo: " + the last user text (+ " [image:png]" per image,
" [document:pdf]" per document); "call all" / "call X" with tools (or a forced toolChoice) answers
with toolUse blocks (all tools, or X — the first tool when none is named X), their inputs filling
required string properties with the user text; after tool results it answers "Tool results: " + their
texts joined by "; "; an outputConfig json_schema gets a JSON object filling required string fields;
thinking in additionalModelRequestFields adds a signed reasoningText block ("Thinking about: ..."),
and a redactedContent block when the text says "secret". Tokens are ceil(chars / 4); maxTokens
truncates the text (stopReason max_tokens). cachePoint blocks: the prefix before the last one is
written on first sight and read afterwards.

ConverseStream answers are real `application/vnd.amazon.eventstream` frames (`encode_frame`), text
split into `piece`-sized deltas, each payload padded with a "p" field as AWS does.
Fault knobs: `fail_next` (HTTP errors), `stream_exception` (an exception frame after N frames).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.validate import ParamValidator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

JSON = dict[str, Any]
ACCESS_KEY = "AKIDFAKEBEDROCK00001"
SECRET_KEY = "fake/secret+key/for/bedrock/tests0000001"
REGION = "us-east-1"
_MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")
_CONVERSE_INPUT = _MODEL.operation_model("Converse").input_shape


class BedrockFault(Exception):
    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: JSON


# ---------------------------------------------------------------- event-stream encoding


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + b"\x07" + struct.pack("!H", len(raw_value)) + raw_value


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths + CRC), string headers, payload, message CRC."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack("!I", binascii.crc32(body))


def event_frame(name: str, payload: JSON) -> bytes:
    padded = {**payload, "p": "abcdefghijklmnopqrstuvwxyz"[: 1 + len(name) % 20]}
    return encode_frame({":event-type": name, ":content-type": "application/json", ":message-type": "event"},
                        json.dumps(padded, separators=(",", ":"), ensure_ascii=False).encode())


def exception_frame(name: str, message: str) -> bytes:
    member = name[:1].lower() + name[1:]
    return encode_frame({":exception-type": member, ":content-type": "application/json",
                         ":message-type": "exception"}, json.dumps({"message": message}).encode())


def stream_events(answer: JSON, piece: int = 5) -> list[tuple[str, JSON]]:
    """The ConverseStream events for a Converse answer (text and tool input split into pieces)."""
    events: list[tuple[str, JSON]] = [("messageStart", {"role": "assistant"})]
    for i, block in enumerate(answer["output"]["message"]["content"]):
        where = {"contentBlockIndex": i}
        if "toolUse" in block:
            tool = block["toolUse"]
            events.append(("contentBlockStart", {**where, "start": {"toolUse": {"toolUseId": tool["toolUseId"],
                                                                              "name": tool["name"]}}}))
            text = json.dumps(tool["input"], separators=(",", ":"), ensure_ascii=False)
            events += [("contentBlockDelta", {**where, "delta": {"toolUse": {"input": c}}})
                       for c in _split(text, piece)]
        elif "text" in block:
            events += [("contentBlockDelta", {**where, "delta": {"text": c}}) for c in _split(block["text"], piece)]
        elif "reasoningContent" in block:
            thought = block["reasoningContent"]
            if "redactedContent" in thought:
                events.append(("contentBlockDelta", {**where, "delta": {"reasoningContent": {
                    "redactedContent": thought["redactedContent"]}}}))
            else:
                rt = thought["reasoningText"]
                events += [("contentBlockDelta", {**where, "delta": {"reasoningContent": {"text": c}}})
                           for c in _split(rt["text"], piece)]
                events.append(("contentBlockDelta", {**where, "delta": {"reasoningContent": {
                    "signature": rt["signature"]}}}))
        events.append(("contentBlockStop", where))
    events.append(("messageStop", {"stopReason": answer["stopReason"]}))
    events.append(("metadata", {"usage": answer["usage"], "metrics": {"latencyMs": 1}}))
    return events


def encode_stream(answer: JSON, piece: int = 5) -> bytes:
    return b"".join(event_frame(name, payload) for name, payload in stream_events(answer, piece))


def _split(text: str, piece: int) -> list[str]:
    return [text[i:i + piece] for i in range(0, len(text), piece)] or [""]


# ---------------------------------------------------------------- signature


def verify_signature(method: str, url: str, headers: dict[str, str], body: bytes, secret: str = SECRET_KEY,
                     token: str | None = None) -> None:
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        raise BedrockFault(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    key, _date, region, service, _ = fields["Credential"].split("/")
    if key != ACCESS_KEY:
        raise BedrockFault(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    if token is not None and headers.get("x-amz-security-token") != token:
        raise BedrockFault(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    signed = fields["SignedHeaders"].split(";")
    request = AWSRequest(method=method, url=url, data=body, headers={h: headers[h] for h in signed})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(key, secret, token), service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if service != "bedrock" or not hmac.compare_digest(expected, fields["Signature"]):
        raise BedrockFault(403, "InvalidSignatureException",
                           "The request signature we calculated does not match the signature you provided. "
                           "Check your AWS Secret Access Key and signing method.")


# ---------------------------------------------------------------- validation


def validate_converse(model_id: str, body: Any) -> JSON:
    if not isinstance(body, dict):
        raise BedrockFault(400, "ValidationException", "The request body must be a JSON object.")
    report = ParamValidator().validate({**body, "modelId": model_id}, _CONVERSE_INPUT)
    if report.has_errors():
        raise BedrockFault(400, "ValidationException", report.generate_report())
    messages = body["messages"]
    if not messages or messages[0]["role"] != "user":
        raise BedrockFault(400, "ValidationException", "A conversation must start with a user message.")
    uses: set[str] = set()
    for i, message in enumerate(messages):
        if i and message["role"] == messages[i - 1]["role"]:
            raise BedrockFault(400, "ValidationException", "A conversation must alternate between user and "
                                                           "assistant roles.")
        for block in message["content"]:
            if "text" in block and not block["text"].strip():
                raise BedrockFault(400, "ValidationException", "The text field in the ContentBlock object is blank.")
            if "toolUse" in block:
                uses.add(block["toolUse"]["toolUseId"])
            if "toolResult" in block and block["toolResult"]["toolUseId"] not in uses:
                raise BedrockFault(400, "ValidationException", "A toolResult block has no matching toolUse block.")
    if uses and "toolConfig" not in body:
        raise BedrockFault(400, "ValidationException", "The toolConfig field must be defined when using toolUse "
                                                       "and toolResult content blocks.")
    return body


# ---------------------------------------------------------------- the model


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _sign(text: str) -> str:
    return hmac.new(b"fake-bedrock", text.encode(), hashlib.sha256).hexdigest()


@dataclass
class FakeBedrock:
    secret_key: str = SECRET_KEY
    session_token: str | None = None
    piece: int = 5
    fail_next: list[tuple[int, str, str]] = field(default_factory=list)
    stream_exception: tuple[int, str, str] | None = None  # (after N frames, exception name, message)
    requests: list[Received] = field(default_factory=list)
    _cached: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/model/{model_id:path}/converse", self._converse, methods=["POST"]),
                                     Route("/model/{model_id:path}/converse-stream", self._stream, methods=["POST"])])

    async def _converse(self, request: Request) -> Response:
        try:
            answer = await self._answer(request)
        except BedrockFault as f:
            return _fault(f)
        return Response(json.dumps(answer), media_type="application/json")

    async def _stream(self, request: Request) -> Response:
        try:
            answer = await self._answer(request)
        except BedrockFault as f:
            return _fault(f)
        frames = [event_frame(n, p) for n, p in stream_events(answer, self.piece)]
        if self.stream_exception is not None:
            after, name, message = self.stream_exception
            frames = [*frames[:after], exception_frame(name, message)]
        return Response(b"".join(frames), media_type="application/vnd.amazon.eventstream")

    async def _answer(self, request: Request) -> JSON:
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw_path = request.scope["raw_path"].decode()
        verify_signature("POST", f"http://{headers['host']}{raw_path}", headers, raw, self.secret_key,
                         self.session_token)
        if self.fail_next:
            status, name, message = self.fail_next.pop(0)
            raise BedrockFault(status, name, message)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            raise BedrockFault(400, "SerializationException", "The request body is not JSON.") from None
        model_id = unquote(request.path_params["model_id"])
        self.requests.append(Received(raw_path, headers, body))
        return self.respond(validate_converse(model_id, body))

    # --- behaviour -----------------------------------------------------------------------

    def respond(self, body: JSON) -> JSON:
        messages = body["messages"]
        self._check_thinking_back(body)
        last = messages[-1]["content"]
        results = [b["toolResult"] for b in last if "toolResult" in b]
        text = " ".join(b["text"] for b in last if "text" in b)
        content: list[JSON] = []
        thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
        if thinking and thinking.get("type") == "enabled":
            thought = f"Thinking about: {text or 'the tool results'}"
            content.append({"reasoningContent": {"reasoningText": {"text": thought, "signature": _sign(thought)}}})
            if "secret" in text:
                content.append({"reasoningContent": {"redactedContent": "c2VjcmV0LXRob3VnaHQ="}})
        calls = [] if results else self._calls(body, text)
        stop = "tool_use" if calls else "end_turn"
        if calls:
            content += calls
        else:
            reply = self._reply(body, text, results, last)
            limit = (body.get("inferenceConfig") or {}).get("maxTokens")
            if limit is not None and _tokens(reply) > limit:
                reply, stop = reply[: limit * 4], "max_tokens"
            content.append({"text": reply})
        return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                "usage": self._usage(body, content), "metrics": {"latencyMs": 1}}

    def _reply(self, body: JSON, text: str, results: list[JSON], last: list[JSON]) -> str:
        if results:
            return "Tool results: " + "; ".join(" ".join(c.get("text", "") for c in r["content"]) for r in results)
        fmt = (body.get("outputConfig") or {}).get("textFormat")
        if fmt:
            schema = json.loads(fmt["structure"]["jsonSchema"]["schema"])
            return json.dumps({k: text for k in schema.get("required", [])})
        extras = [f" [image:{b['image']['format']}]" for b in last if "image" in b]
        extras += [f" [document:{b['document']['format']}]" for b in last if "document" in b]
        return f"Echo: {text}" + "".join(extras)

    def _calls(self, body: JSON, text: str) -> list[JSON]:
        config = body.get("toolConfig") or {}
        tools = [t["toolSpec"] for t in config.get("tools", []) if "toolSpec" in t]
        choice = config.get("toolChoice") or {}
        if not tools:
            return []
        if "tool" in choice:
            picked = [t for t in tools if t["name"] == choice["tool"]["name"]]
        elif text.startswith("call all"):
            picked = tools
        elif text.startswith("call ") or "any" in choice:
            named = text[5:].split(" ")[0] if text.startswith("call ") else ""
            picked = [t for t in tools if t["name"] == named] or tools[:1]
        else:
            return []
        out = []
        for n, tool in enumerate(picked):
            schema = tool["inputSchema"]["json"]
            args = {k: text for k in schema.get("required", []) if schema["properties"][k].get("type") == "string"}
            out.append({"toolUse": {"toolUseId": f"tooluse_{_sign(text + tool['name'])[:10]}{n}",
                                    "name": tool["name"], "input": args}})
        return out

    def _check_thinking_back(self, body: JSON) -> None:
        """With thinking on, the assistant turn that called tools must start with our own reasoning, unaltered."""
        thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
        if not thinking:
            return
        for message in body["messages"]:
            if message["role"] != "assistant" or not any("toolUse" in b for b in message["content"]):
                continue
            first = message["content"][0].get("reasoningContent")
            text = (first or {}).get("reasoningText")
            if text is None or text.get("signature") != _sign(text.get("text", "")):
                raise BedrockFault(400, "ValidationException", "Expected thinking or redacted_thinking, but "
                                   "found tool_use. When thinking is enabled, a final assistant message must start "
                                   "with a thinking block.")

    def _usage(self, body: JSON, content: list[JSON]) -> JSON:
        blocks = [*body.get("system", []), *(b for m in body["messages"] for b in m["content"])]
        total = _tokens(json.dumps(blocks))
        cut = max((i for i, b in enumerate(blocks) if "cachePoint" in b), default=-1)
        read = write = 0
        if cut >= 0:
            prefix = json.dumps(blocks[:cut])
            cached = _tokens(prefix)
            key = hashlib.sha256(prefix.encode()).hexdigest()
            read, write = (cached, 0) if key in self._cached else (0, cached)
            self._cached.add(key)
        out = _tokens(json.dumps(content))
        inputs = max(total - read - write, 0)
        return {"inputTokens": inputs, "outputTokens": out, "totalTokens": inputs + read + write + out,
                "cacheReadInputTokens": read, "cacheWriteInputTokens": write}


def _fault(f: BedrockFault) -> Response:
    return Response(json.dumps({"message": f.message}), status_code=f.status, media_type="application/json",
                    headers={"x-amzn-ErrorType": f"{f.name}:http://internal.amazon.com/coral/com.amazonaws.bedrock/"})
