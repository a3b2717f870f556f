#!/usr/bin/env python3
"""What a chained turn costs: p50 of a turn with `previous_response_id` (a 20-item history) vs a plain turn.

Builds a chain on the gateway (each turn adds its user message and the answer's output items, so
HISTORY / 2 turns of a one-message answer), then sends TURNS plain turns and TURNS chained turns,
interleaved one for one on one keep-alive connection so that a noisy machine slows both alike. Every
chained turn names the same tip, so each one loads exactly the built history from the store and sends it
upstream. Prints `key=value` lines for run.sh: chain_items, plain_p50_ms, chained_p50_ms,
chained_added_p50_ms, plain_p90_ms, chained_p90_ms, tip (the id to chain on, for wrk), ok, failed.
Respgate only: LiteLLM keeps previous responses only with a database. Stdlib only.
Usage: chain_bench.py BASE_URL MODEL [--history 20] [--turns 300] [--key KEY]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit

PROMPT = "Tell me a three sentence bedtime story about a unicorn."


class Client:
    def __init__(self, base_url: str, key: str) -> None:
        url = urlsplit(base_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._path = url.path.rstrip("/") + "/v1/responses"
        self._headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)

    def turn(self, body: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
        """(ms from send to the whole answer, the answer when 2xx JSON, else None)."""
        data = json.dumps(body).encode()
        start = time.perf_counter()
        try:
            self._conn.request("POST", self._path, body=data, headers=self._headers)
            resp = self._conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()  # reconnects on the next request
            return (time.perf_counter() - start) * 1e3, None
        ms = (time.perf_counter() - start) * 1e3
        if not 200 <= resp.status < 300:
            return ms, None
        return ms, json.loads(raw)

    def close(self) -> None:
        self._conn.close()


def build_chain(client: Client, model: str, history: int) -> tuple[str, int]:
    """The id of a response whose conversation so far holds at least `history` items, and that count."""
    items = 0
    previous: str | None = None
    n = 0
    while items < history:
        body: dict[str, Any] = {"model": model, "input": f"Turn {n}: {PROMPT}", "max_output_tokens": 100}
        if previous:
            body["previous_response_id"] = previous
        _, answer = client.turn(body)
        if answer is None or answer.get("status") != "completed":
            sys.exit(f"chain_bench: turn {n} of the chain failed")
        previous = str(answer["id"])
        items += 1 + len(answer.get("output") or [])  # its input message and its output items
        n += 1
    assert previous is not None
    return previous, items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base_url")
    ap.add_argument("model")
    ap.add_argument("--history", type=int, default=20, help="items in the chain a chained turn continues")
    ap.add_argument("--turns", type=int, default=300, help="measured turns of each kind")
    ap.add_argument("--warmup", type=int, default=30, help="unmeasured turns of each kind first")
    ap.add_argument("--key", default="sk-bench")
    args = ap.parse_args()

    client = Client(args.base_url, args.key)
    tip, items = build_chain(client, args.model, args.history)
    plain_body = {"model": args.model, "input": PROMPT, "max_output_tokens": 100}
    chained_body = {**plain_body, "previous_response_id": tip}

    plain: list[float] = []
    chained: list[float] = []
    failed = 0
    for i in range(args.warmup + args.turns):
        for body, into in ((plain_body, plain), (chained_body, chained)):
            ms, answer = client.turn(body)
            ok = answer is not None and answer.get("status") == "completed"
            if ok and body is chained_body and answer is not None:
                ok = answer.get("previous_response_id") == tip
            if not ok:
                failed += 1
            elif i >= args.warmup:
                into.append(ms)
    client.close()

    def pct(xs: list[float], q: int) -> float | None:
        return statistics.quantiles(xs, n=100)[q - 1] if len(xs) >= 2 else None

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    p50_plain, p50_chained = pct(plain, 50), pct(chained, 50)
    added = None if p50_plain is None or p50_chained is None else p50_chained - p50_plain
    print(f"chain_items={items}")
    print(f"plain_p50_ms={fmt(p50_plain)}")
    print(f"chained_p50_ms={fmt(p50_chained)}")
    print(f"chained_added_p50_ms={fmt(added)}")
    print(f"plain_p90_ms={fmt(pct(plain, 90))}")
    print(f"chained_p90_ms={fmt(pct(chained, 90))}")
    print(f"tip={tip}")
    print(f"ok={len(plain) + len(chained)}")
    print(f"failed={failed}")


if __name__ == "__main__":
    main()
