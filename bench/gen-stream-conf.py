#!/usr/bin/env python3
"""Writes the canned streaming upstream (nginx, 127.0.0.1:18090) into $BENCH_DIR (/tmp/respgate-bench).

Five stream bodies of N text deltas each, every one in its provider's exact wire format: a Responses
event stream, a Chat Completions chunk stream, an Anthropic Messages stream, a Gemini
streamGenerateContent `alt=sse` stream and a Bedrock ConverseStream body of binary
`application/vnd.amazon.eventstream` frames; and `upstream-stream.conf`, which `upstream-nginx.conf`
includes. Stdlib only (the event-stream frames are encoded here: prelude, CRC32s, string headers); run
by setup.sh.
Usage: gen-stream-conf.py [N_DELTAS]   (default 100)
"""

from __future__ import annotations

import binascii
import json
import os
import struct
import sys
from pathlib import Path
from typing import Any

CREATED = 1763850000
MODEL = "gpt-4o-2024-08-06"
ANTHROPIC_MODEL = "claude-sonnet-4-20250514"
GEMINI_MODEL = "gemini-2.0-flash"
PROMPT_TOKENS = 18


def _json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def responses_stream(words: list[str]) -> tuple[str, int]:
    """The Responses SSE body for a one-message answer made of `words`, and its number of events."""
    text = "".join(words)
    response = {
        "id": "resp_0123456789abcdef", "object": "response", "created_at": CREATED, "status": "in_progress",
        "background": False, "error": None, "incomplete_details": None, "instructions": None,
        "max_output_tokens": None, "model": MODEL, "output": [], "parallel_tool_calls": True,
        "previous_response_id": None, "reasoning": {"effort": None, "summary": None}, "store": True,
        "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
        "usage": None, "user": None, "metadata": {},
    }
    item = {"id": "msg_0123456789abcdef", "type": "message", "status": "in_progress", "role": "assistant",
            "content": []}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    done_part = {**part, "text": text}
    done_item = {**item, "status": "completed", "content": [done_part]}
    usage = {"input_tokens": 18, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": len(words),
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 18 + len(words)}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response},
        {"type": "response.in_progress", "response": response},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
        *({"type": "response.output_text.delta", **where, "delta": w, "logprobs": []} for w in words),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": done_part},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": "response.completed",
         "response": {**response, "status": "completed", "output": [done_item], "usage": usage}},
    ]
    body = "".join(
        f"event: {ev['type']}\ndata: {_json({'type': ev['type'], 'sequence_number': seq, **ev})}\n\n"
        for seq, ev in enumerate(events)
    )
    return body, len(events)


def chat_stream(words: list[str]) -> tuple[str, int]:
    """The Chat Completions SSE body (with a usage chunk and [DONE]) and its number of chunks."""
    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        c: dict[str, Any] = {"id": "chatcmpl-0123456789abcdef", "object": "chat.completion.chunk",
                             "created": CREATED, "model": MODEL, "system_fingerprint": "fp_bench",
                             "choices": choices}
        if usage:
            c["usage"] = usage
        return f"data: {_json(c)}\n\n"

    def choice(delta: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    n = len(words)
    chunks = [chunk(choice({"role": "assistant", "content": ""}))]
    chunks += [chunk(choice({"content": w})) for w in words]
    chunks.append(chunk(choice({}, "stop")))
    chunks.append(chunk([], {"prompt_tokens": 18, "completion_tokens": n, "total_tokens": 18 + n}))
    return "".join(chunks) + "data: [DONE]\n\n", len(chunks)


def anthropic_stream(words: list[str]) -> tuple[str, int]:
    """The Messages SSE body (message_start .. message_stop, with a ping as the API sends) and its events."""
    message: dict[str, Any] = {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
               "model": ANTHROPIC_MODEL, "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": PROMPT_TOKENS, "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": 0, "output_tokens": 1, "service_tier": "standard"}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}} for w in words),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": len(words)}},
        {"type": "message_stop"},
    ]
    return "".join(f"event: {ev['type']}\ndata: {_json(ev)}\n\n" for ev in events), len(events)


def gemini_stream(words: list[str]) -> tuple[str, int]:
    """The streamGenerateContent?alt=sse body (CRLF-separated as Google sends it) and its chunks.

    Every chunk carries usageMetadata; the last one adds finishReason and the candidate token count."""
    n = len(words)

    def chunk(i: int, word: str) -> str:
        last = i == n - 1
        candidate: dict[str, Any] = {"content": {"parts": [{"text": word}], "role": "model"}, "index": 0}
        usage: dict[str, Any] = {"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS,
                                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT_TOKENS}]}
        if last:
            candidate["finishReason"] = "STOP"
            usage = {**usage, "candidatesTokenCount": n, "totalTokenCount": PROMPT_TOKENS + n,
                     "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": n}]}
        body = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": GEMINI_MODEL,
                "responseId": "Jq0kaZ6XLdCZ1MkP6YSb0Ak"}
        return f"data: {_json(body)}\r\n\r\n"

    return "".join(chunk(i, w) for i, w in enumerate(words)), n


def _eventstream_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # header value type 7 = string, with a 2-byte length
    return struct.pack("!B", len(raw_name)) + raw_name + b"\x07" + struct.pack("!H", len(raw_value)) + raw_value


def eventstream_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One `vnd.amazon.eventstream` event message: total and header lengths, prelude CRC32, headers,
    JSON payload (padded with a "p" field as AWS pads it), message CRC32."""
    padded = {**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGH"[: 4 + len(event_type) % 24]}
    head = b"".join(_eventstream_header(k, v) for k, v in (
        (":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")))
    data = _json(padded).encode()
    prelude = struct.pack("!II", 12 + len(head) + len(data) + 4, len(head))
    message = prelude + struct.pack("!I", binascii.crc32(prelude)) + head + data
    return message + struct.pack("!I", binascii.crc32(message))


def bedrock_stream(words: list[str]) -> tuple[bytes, int]:
    """The ConverseStream body (messageStart, text deltas, contentBlockStop, messageStop, metadata)."""
    n = len(words)
    events: list[tuple[str, dict[str, Any]]] = [
        ("messageStart", {"role": "assistant"}),
        *(("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}) for w in words),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": {"inputTokens": PROMPT_TOKENS, "outputTokens": n, "totalTokens": PROMPT_TOKENS + n},
                      "metrics": {"latencyMs": 412}}),
    ]
    return b"".join(eventstream_frame(name, payload) for name, payload in events), len(events)


def nginx_conf(bench_dir: Path, n: int) -> str:
    # nginx's static module refuses POST with 405; error_page turns that into the file itself (a GET
    # internal redirect). Paths with a model in them (Gemini, Bedrock) match a regex and are sent, the
    # same way, to an internal location that serves the file.
    return f"""# generated by gen-stream-conf.py ({n} deltas): canned streaming upstream on 127.0.0.1:18090
server {{
  listen 127.0.0.1:18090;
  location = /v1/responses {{
    default_type text/event-stream; alias {bench_dir}/stream-responses.sse; error_page 405 =200 $uri;
  }}
  location = /v1/chat/completions {{
    default_type text/event-stream; alias {bench_dir}/stream-chat.sse; error_page 405 =200 $uri;
  }}
  location = /v1/messages {{
    default_type text/event-stream; alias {bench_dir}/stream-anthropic.sse; error_page 405 =200 $uri;
  }}
  location ~ ^/v1beta/models/[^/]+:streamGenerateContent$ {{
    error_page 405 =200 /_canned/stream-gemini.sse; return 405;
  }}
  location ~ ^/model/.+/converse-stream$ {{
    error_page 405 =200 /_canned/stream-bedrock.bin; return 405;
  }}
  location = /_canned/stream-gemini.sse {{
    internal; default_type text/event-stream; alias {bench_dir}/stream-gemini.sse;
  }}
  location = /_canned/stream-bedrock.bin {{
    internal; default_type application/vnd.amazon.eventstream; alias {bench_dir}/stream-bedrock.bin;
  }}
}}
"""


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    words = [f"word{i} " for i in range(n)]
    bench_dir = Path(os.environ.get("BENCH_DIR", "/tmp/respgate-bench")).resolve()
    bench_dir.mkdir(parents=True, exist_ok=True)
    responses_body, n_events = responses_stream(words)
    chat_body, n_chunks = chat_stream(words)
    (bench_dir / "stream-responses.sse").write_text(responses_body)
    (bench_dir / "stream-chat.sse").write_text(chat_body)
    anthropic_body, n_anthropic = anthropic_stream(words)
    gemini_body, n_gemini = gemini_stream(words)
    bedrock_body, n_bedrock = bedrock_stream(words)
    (bench_dir / "stream-anthropic.sse").write_text(anthropic_body)
    (bench_dir / "stream-gemini.sse").write_text(gemini_body, newline="")
    (bench_dir / "stream-bedrock.bin").write_bytes(bedrock_body)
    (bench_dir / "upstream-stream.conf").write_text(nginx_conf(bench_dir, n))
    print(f"upstream-stream.conf: {n_events} Responses events, {n_chunks} chat chunks, {n_anthropic} Anthropic "
          f"events, {n_gemini} Gemini chunks, {n_bedrock} Bedrock frames")


if __name__ == "__main__":
    main()
