"""WebSocket mode beside SSE, for the same mock model (`mock/echo`, no pacing: as fast as it can stream),
against a real `respgate serve` (uvicorn, uvloop, httptools; WebSockets by uvicorn's default
implementation, sans-I/O over `websockets`), with its SQLite store on as in production.

For each transport: events per second, time to first event (request sent -> first event read), and
per-event latency (the gap between consecutive events of one response, p50 / p99), first one client
doing responses one after another (an agent loop: one keep-alive HTTP connection, or one socket),
then `--concurrency` clients at once. WebSockets run twice: with permessage-deflate (what the openai
SDK and most clients negotiate by default) and without.

    /tmp/rg-venv/bin/python bench/ws_bench.py [--responses 400] [--concurrency 8] [--words 100]

With two or more CPUs the server is pinned to CPU 1 and this client to CPU 0.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from websockets.asyncio.client import connect

KEY = "sk-bench"
MODEL = "mock/echo"


@dataclass
class Figures:
    events: int = 0
    responses: int = 0
    first: list[float] = field(default_factory=list)  # seconds to the first event, per response
    gaps: list[float] = field(default_factory=list)  # seconds between consecutive events

    def add(self, sent: float, stamps: list[float]) -> None:
        self.events += len(stamps)
        self.responses += 1
        self.first.append(stamps[0] - sent)
        self.gaps.extend(b - a for a, b in itertools.pairwise(stamps))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


# -- clients ------------------------------------------------------------------------------------------------

async def sse_client(url: str, body: bytes, n: int, figures: Figures) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            sent = time.perf_counter()
            stamps = []
            async with http.post(url + "/v1/responses", data=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                async for line in r.content:
                    if line.startswith(b"data: "):
                        stamps.append(time.perf_counter())
                        if b'"response.completed"' in line[:64]:
                            break
            figures.add(sent, stamps)


async def ws_client(url: str, create: bytes, n: int, figures: Figures, deflate: bool) -> None:
    ws_url = url.replace("http://", "ws://") + "/v1/responses"
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {KEY}"}, max_size=None,
                       compression="deflate" if deflate else None) as ws:
        for _ in range(n):
            sent = time.perf_counter()
            await ws.send(create)
            stamps = []
            while True:
                message = await ws.recv(decode=False)
                stamps.append(time.perf_counter())
                if b'"response.completed"' in message[:64]:
                    break
                if b'"type":"error"' in message[:32]:
                    raise SystemExit(f"the server answered with an error: {message[:300]!r}")
            figures.add(sent, stamps)


async def run(kind: str, url: str, words: int, responses: int, clients: int) -> tuple[Figures, float]:
    text = " ".join(f"word{i}" for i in range(words))
    body = orjson.dumps({"model": MODEL, "input": text, "stream": True})
    create = orjson.dumps({"type": "response.create", "model": MODEL, "input": text})
    figures = Figures()
    per = max(1, responses // clients)

    def one() -> asyncio.Future[None]:
        if kind == "sse":
            return asyncio.ensure_future(sse_client(url, body, per, figures))
        return asyncio.ensure_future(ws_client(url, create, per, figures, deflate=kind == "ws+deflate"))

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    return figures, time.perf_counter() - start


# -- the server ---------------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time (Linux), to charge the server's own cost per event."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "config.yaml"
    config.write_text(f"model_list:\n  - model_name: {MODEL}\n    litellm_params: {{model: {MODEL}}}\n"
                      f"general_settings:\n  master_key: {KEY}\n  database_url: sqlite:///{workdir}/bench.db\n"
                      # one socket here asks for hundreds of responses a second: above the default limit
                      "  websocket_max_messages_per_second: 100000\n")
    port = free_port()
    cmd = [sys.executable, "-m", "respgate.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
           "--port", str(port)]
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health/liveliness", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("respgate did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--words", type=int, default=100, help="words of input, one delta each")
    args = parser.parse_args()
    if (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp:
        proc, url = start_server(Path(tmp))
        try:
            for kind in ("sse", "ws", "ws+deflate"):  # warm-up: imports, caches, the store's first pages
                asyncio.run(run(kind, url, args.words, 20, 1))
            print(f"mock/echo, {args.words} words -> {args.words + 8} events a response; "
                  f"{args.responses} responses per row\n")
            print(f"{'transport':<12}{'clients':>8}{'events/s':>11}{'resp/s':>9}{'first p50':>11}{'first p99':>11}"
                  f"{'gap p50':>10}{'gap p99':>10}{'server CPU/event':>18}")
            for clients in (1, args.concurrency):
                for kind in ("sse", "ws", "ws+deflate"):
                    cpu = cpu_seconds(proc.pid)
                    f, wall = asyncio.run(run(kind, url, args.words, args.responses, clients))
                    cpu = cpu_seconds(proc.pid) - cpu
                    print(f"{kind:<12}{clients:>8}{f.events / wall:>11,.0f}{f.responses / wall:>9,.0f}"
                          f"{pct(f.first, .5) * 1e3:>9.2f}ms{pct(f.first, .99) * 1e3:>9.2f}ms"
                          f"{pct(f.gaps, .5) * 1e6:>8.0f}µs{pct(f.gaps, .99) * 1e6:>8.0f}µs"
                          f"{cpu / f.events * 1e6:>13.1f}µs ({cpu / wall:.0%})")
            print("\nfirst = request sent -> first event read; gap = between consecutive events of a response "
                  f"(mean over all: {statistics.mean(f.gaps) * 1e6:.0f}µs in the last row); server CPU/event = the "
                  "gateway process's CPU time per event (its busy share of the wall time)")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
