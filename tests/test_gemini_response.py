"""Gemini answers -> Responses: finish reasons, usage, signatures, errors, and any chunking of a
stream gives the JSON call's Response (hypothesis)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
from typing import Any

import orjson
import pytest
from google.auth.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from grammar import check_stream
from respgate.deployments import Deployment
from respgate.errors import RespgateError
from respgate.providers.gemini import signatures
from respgate.providers.gemini.auth import REFRESH_MARGIN, VertexToken
from respgate.providers.gemini.errors import google_error
from respgate.providers.gemini.response import GeminiToResponses, usage_of
from respgate.streaming import StreamBuilder

SHELL: dict[str, Any] = {"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress",
                         "model": "m", "output": [], "usage": None, "error": None, "incomplete_details": None}
D = Deployment("g", "gemini", "gemini-2.5-flash", api_key="AIza-secret")


def _run(chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    b = StreamBuilder(dict(SHELL))
    t = GeminiToResponses(b)
    events = b.start()
    for chunk in chunks:
        events += t.chunk(chunk)
    events += t.finish()
    return events, b.response


ANSWER: dict[str, Any] = {
    "candidates": [{"content": {"role": "model", "parts": [
        {"text": "I should check the weather and the time.", "thought": True},
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "U0lHMQ=="},
        {"functionCall": {"name": "clock", "args": {}}},
        {"text": "Let me look that up for you right now.", "thoughtSignature": "U0lHMg=="}]},
        "finishReason": "STOP"}],
    "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 7, "thoughtsTokenCount": 5,
                      "cachedContentTokenCount": 4, "totalTokenCount": 22},
}


def _comparable(response: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for item in response["output"]:
        item = {k: v for k, v in item.items() if k not in ("id", "call_id")}
        if "encrypted_content" in item:
            item["encrypted_content"] = [(r.kind, r.signature) for r in signatures.decode(item["encrypted_content"])
                                         or []]
        out.append(item)
    return out


def test_answer_maps_items_usage_and_signatures() -> None:
    events, response = _run([ANSWER])
    check_stream(events)
    assert [o["type"] for o in response["output"]] == ["reasoning", "function_call", "function_call", "message",
                                                       "reasoning"]
    first = response["output"][0]
    assert first["summary"][0]["text"] == "I should check the weather and the time."
    call_id = response["output"][1]["call_id"]
    assert signatures.decode(first["encrypted_content"]) == [signatures.Signed("call", "U0lHMQ==", call_id)]
    assert signatures.decode(response["output"][4]["encrypted_content"]) == [signatures.Signed("text", "U0lHMg==")]
    assert orjson.loads(response["output"][1]["arguments"]) == {"city": "Paris"}
    assert response["usage"] == {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4,
                                                                              "cache_write_tokens": 0},
                                 "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 5},
                                 "total_tokens": 22}


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if text[a:b]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 60), max_size=6), st.lists(st.integers(0, 60), max_size=6), st.booleans())
def test_any_chunking_gives_the_json_response(thought_cuts: list[int], text_cuts: list[int],
                                              sig_alone: bool) -> None:
    parts = ANSWER["candidates"][0]["content"]["parts"]
    pieces: list[dict[str, Any]] = [{"text": t, "thought": True} for t in _split(parts[0]["text"], thought_cuts)]
    pieces += [parts[1], parts[2]]
    texts = _split(parts[3]["text"], text_cuts)
    pieces += [{"text": t} for t in texts]
    if sig_alone:
        pieces.append({"text": "", "thoughtSignature": "U0lHMg=="})
    else:
        pieces[-1] = {**pieces[-1], "thoughtSignature": "U0lHMg=="}
    chunks = [{"candidates": [{"content": {"role": "model", "parts": [p]}}],
               "usageMetadata": ANSWER["usageMetadata"]} for p in pieces]
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    events, streamed = _run(chunks)
    check_stream(events)
    assert _comparable(streamed) == _comparable(_run([ANSWER])[1])
    assert streamed["usage"] == usage_of(ANSWER["usageMetadata"])


@pytest.mark.parametrize(("reason", "status", "detail"), [
    ("STOP", "completed", None), ("MAX_TOKENS", "incomplete", "max_output_tokens"),
    ("SAFETY", "incomplete", "content_filter"), ("RECITATION", "incomplete", "content_filter"),
    ("BLOCKLIST", "incomplete", "content_filter"), ("PROHIBITED_CONTENT", "incomplete", "content_filter"),
])
def test_finish_reasons(reason: str, status: str, detail: str | None) -> None:
    _, response = _run([{"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]},
                                         "finishReason": reason}]}])
    assert response["status"] == status
    assert (response.get("incomplete_details") or {}).get("reason") == detail


def test_blocked_prompt_is_content_filter() -> None:
    _, response = _run([{"promptFeedback": {"blockReason": "SAFETY"}}])
    assert response["incomplete_details"] == {"reason": "content_filter"}


def test_error_inside_a_stream_fails_the_response() -> None:
    events, response = _run([{"candidates": [{"content": {"parts": [{"text": "a"}]}}]},
                             {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}])
    check_stream(events)
    assert response["status"] == "failed"
    assert response["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}


@pytest.mark.parametrize(("http", "status", "reason", "expected"), [
    (429, "RESOURCE_EXHAUSTED", None, 429), (400, "INVALID_ARGUMENT", None, 400),
    (403, "PERMISSION_DENIED", None, 502), (401, "UNAUTHENTICATED", None, 502),
    (400, "INVALID_ARGUMENT", "API_KEY_INVALID", 502), (503, "UNAVAILABLE", None, 503),
    (504, "DEADLINE_EXCEEDED", None, 504), (500, "INTERNAL", None, 500), (404, "NOT_FOUND", None, 404),
])
def test_google_error_table(http: int, status: str, reason: str | None, expected: int) -> None:
    error: dict[str, Any] = {"code": http, "message": "msg with AIza-secret", "status": status}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    err = google_error(http, orjson.dumps({"error": error}), D)
    assert isinstance(err, RespgateError) and err.status == expected
    assert "AIza-secret" not in err.message and "msg with ***" in err.message


# --- Vertex tokens with injected credentials ---------------------------------------------------------

class FakeCredentials(Credentials):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.refreshes: list[int] = []

    def refresh(self, request: Any) -> None:
        self.refreshes.append(threading.get_ident())
        self.token = f"tok-{len(self.refreshes)}"
        self.expiry = dt.datetime(2030, 1, 1, 1, 0, 0)


def _refresh(creds: Credentials) -> None:
    creds.refresh(None)  # type: ignore[no-untyped-call]


async def test_vertex_token_refreshes_off_the_loop_and_before_expiry() -> None:
    creds = FakeCredentials()
    expiry_epoch = (dt.datetime(2030, 1, 1, 1, 0, 0) - dt.datetime(1970, 1, 1)).total_seconds()
    now = [expiry_epoch - 3600]
    token = VertexToken(Deployment("v", "vertex_ai", "gemini-2.5-pro"), credentials=creds, refresh=_refresh,
                        clock=lambda: now[0])
    tokens = await asyncio.gather(*(token.bearer() for _ in range(5)))
    assert tokens == ["tok-1"] * 5 and len(creds.refreshes) == 1  # one refresh for concurrent callers
    assert creds.refreshes[0] != threading.get_ident()  # in a worker thread, not on the event loop
    now[0] = expiry_epoch - REFRESH_MARGIN - 1
    assert await token.bearer() == "tok-1"
    now[0] = expiry_epoch - REFRESH_MARGIN + 1  # inside the margin: refreshed before it expires
    assert await token.bearer() == "tok-2"
