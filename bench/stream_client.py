#!/usr/bin/env python3
"""Time to first event: N sequential streaming POSTs to /v1/responses over one keep-alive connection.

For each stream it timestamps the send, the first `data:` line and the end of the body, and counts the
events (`data:` lines other than `[DONE]`). Prints `key=value` lines for run.sh: ttfe_p50_ms, ttfe_p90_ms,
stream_p50_ms (whole stream), events (per stream, from the last one), ok, failed. Stdlib only, so any
python3 runs it; run.sh pins it to the load core.
Usage: stream_client.py BASE_URL MODEL [--streams N] [--key KEY]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from urllib.parse import urlsplit

PROMPT = "Tell me a three sentence bedtime story about a unicorn."


def one_stream(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
               ) -> tuple[float, float, int] | None:
    """(ms to first event, ms to end of stream, events) or None when the answer is not a 2xx stream."""
    start = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    if not 200 <= resp.status < 300:
        resp.read()
        return None
    first: float | None = None
    events = 0
    while line := resp.readline():
        if line.startswith(b"data:"):
            if first is None:
                first = time.perf_counter()
            if line[5:].strip() != b"[DONE]":
                events += 1
    resp.read()  # marks the response finished so the connection can carry the next request
    end = time.perf_counter()
    if first is None:
        return None
    return (first - start) * 1e3, (end - start) * 1e3, events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base_url")
    ap.add_argument("model")
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--key", default="sk-bench")
    args = ap.parse_args()

    url = urlsplit(args.base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=60)
    path = url.path.rstrip("/") + "/v1/responses"
    request = {"model": args.model, "input": PROMPT, "max_output_tokens": 100, "stream": True}
    body = json.dumps(request).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {args.key}",
               "Accept": "text/event-stream"}

    ttfe: list[float] = []
    total: list[float] = []
    events = failed = 0
    for _ in range(args.streams):
        try:
            got = one_stream(conn, path, body, headers)
        except (OSError, http.client.HTTPException):
            conn.close()  # reconnect on the next request
            got = None
        if got is None:
            failed += 1
            continue
        ttfe.append(got[0])
        total.append(got[1])
        events = got[2]
    conn.close()

    def pct(xs: list[float], q: int) -> str:
        return f"{statistics.quantiles(xs, n=100)[q - 1]:.3f}" if len(xs) >= 2 else "n/a"

    print(f"ttfe_p50_ms={pct(ttfe, 50)}")
    print(f"ttfe_p90_ms={pct(ttfe, 90)}")
    print(f"stream_p50_ms={pct(total, 50)}")
    print(f"events={events}")
    print(f"ok={len(ttfe)}")
    print(f"failed={failed}")


if __name__ == "__main__":
    main()
