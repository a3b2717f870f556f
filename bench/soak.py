#!/usr/bin/env python3
"""Soak: a steady request rate against a running gateway for a long time, with its memory sampled, to
show whether anything grows (RSS, open file descriptors, threads) while the work stays the same.

Open loop: requests leave on a fixed schedule (`--rate` per second, spread over `--connections`
keep-alive connections), whatever the answers' latency, so a gateway that slows down is not given a
rest. The mix is set by `--stream-every` (every Nth request streams) and `--chain-every` (every Nth
continues the previous response with `previous_response_id`, so the store is read as well as written).
Every `--sample` seconds one line: the interval's achieved rate, p50/p99 latency (a stream's: to its
last byte), errors, and the server's RSS (summed over its process tree, from /proc), fds and threads.
At the end the verdict: RSS over time fitted to a line after `--warmup`, its slope in MB per hour and
the growth from the first to the last quarter; "flat" when the fitted growth over the run stays under
`--tolerance-mb`, else "GROWS". Exit status 1 on GROWS or when more than 1% of requests failed.

Stdlib only, Linux only (/proc). The server's pid: `--pid`, else the process listening on the URL's port.

    respgate serve --config bench/respgate-config.yaml --port 4100 &
    python3 bench/soak.py --url http://127.0.0.1:4100 --key sk-bench --model bench-chat \\
        --rate 200 --duration 600
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PROMPT = "Tell me a three sentence bedtime story about a unicorn."


# ---------------------------------------------------------------- the server's process, from /proc


def pid_listening_on(port: int) -> int | None:
    """The pid whose socket listens on `port` (IPv4 or IPv6), by matching /proc/net/tcp* inodes."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(entry)
        except OSError:
            continue
    return None


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


@dataclass
class Memory:
    rss_mb: float
    fds: int
    threads: int


def sample_memory(pid: int) -> Memory:
    rss_kb = fds = threads = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            continue
    return Memory(rss_kb / 1024, fds, threads)


# ---------------------------------------------------------------- the load


@dataclass
class Interval:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    late: int = 0  # requests that left more than 100 ms after their slot (the client could not keep up)


@dataclass
class Load:
    host: str
    port: int
    key: str
    model: str
    stream_model: str
    stream_every: int
    chain_every: int
    current: Interval = field(default_factory=Interval)
    sent: int = 0
    failed: int = 0
    last_id: str | None = None

    def body(self, n: int) -> tuple[bytes, bool, bool]:
        """The nth request, whether it streams, and whether it is plain (a chain may start from it)."""
        stream = self.stream_every > 0 and n % self.stream_every == 0
        payload: dict[str, object] = {"model": self.stream_model if stream else self.model,
                                      "input": f"{PROMPT} ({n})"}
        if stream:
            payload["stream"] = True
        elif self.chain_every > 0 and n % self.chain_every == 0 and self.last_id:
            # Always onto a plain turn: a chain that kept growing would make every turn costlier.
            payload["previous_response_id"] = self.last_id
        return json.dumps(payload).encode(), stream, "previous_response_id" not in payload and not stream

    async def connection(self, index: int, connections: int, rate: float, start: float, end: float) -> None:
        """One keep-alive connection sending its share of the schedule: slots index, index+C, index+2C..."""
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        n = index
        loop = asyncio.get_running_loop()
        try:
            while True:
                slot = start + n / rate
                if slot >= end:
                    return
                delay = slot - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.1:
                    self.current.late += 1
                if writer is None:
                    try:
                        reader, writer = await asyncio.open_connection(self.host, self.port)
                    except OSError:
                        self._failed()
                        n += connections
                        continue
                assert reader is not None
                body, stream, plain = self.body(n)
                t0 = loop.time()
                try:
                    status, payload = await self.exchange(reader, writer, body)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    writer.close()
                    writer = None
                    self._failed()
                    n += connections
                    continue
                self.sent += 1
                if status != 200 or (stream and b"event: response.completed" not in payload):
                    self._failed()
                else:
                    self.current.latencies.append(loop.time() - t0)
                    if plain:
                        rid = _response_id(payload)
                        if rid:
                            self.last_id = rid
                n += connections
        finally:
            if writer is not None:
                writer.close()

    def _failed(self) -> None:
        self.sent += 1
        self.failed += 1
        self.current.errors += 1

    async def exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       body: bytes) -> tuple[int, bytes]:
        head = (f"POST /v1/responses HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        length: int | None = None
        chunked = False
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            return status, b"".join(parts)
        return status, await reader.readexactly(length or 0)


def _response_id(payload: bytes) -> str | None:
    try:
        parsed = json.loads(payload)
    except ValueError:
        return None
    rid = parsed.get("id") if isinstance(parsed, dict) else None
    return rid if isinstance(rid, str) else None


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per hour."""
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 3600


async def soak(args: argparse.Namespace, pid: int) -> int:
    url = urlsplit(args.url)
    load = Load(url.hostname or "127.0.0.1", url.port or 80, args.key, args.model,
                args.stream_model or f"{args.model}-stream", args.stream_every, args.chain_every)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    end = start + args.duration
    tasks = [asyncio.create_task(load.connection(i, args.connections, args.rate, start, end))
             for i in range(args.connections)]
    print(f"soak: {args.rate:g} req/s for {args.duration:g} s over {args.connections} connections, model "
          f"{args.model}, streams 1/{args.stream_every or '-'}, chained 1/{args.chain_every or '-'}; "
          f"server pid {pid} (tree {process_tree(pid)})")
    print(f"{'t s':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} {'late':>4} {'RSS MB':>7} "
          f"{'fds':>5} {'thr':>4}" + (f" {'db MB':>7} {'WAL MB':>7}" if args.db else ""))
    samples: list[tuple[float, Memory]] = [(0.0, sample_memory(pid))]
    first = samples[0][1]
    wal_sizes: list[float] = []

    def disk() -> str:
        if not args.db:
            return ""
        db, wal = file_mb(args.db), file_mb(args.db + "-wal")
        wal_sizes.append(wal)
        return f" {db:7.1f} {wal:7.1f}"

    print(f"{0:6.0f} {'':>7} {'':>7} {'':>7} {'':>4} {'':>4} {first.rss_mb:7.1f} {first.fds:5d} {first.threads:4d}"
          + disk())
    next_sample = start + args.sample
    while not all(t.done() for t in tasks):
        await asyncio.wait(tasks, timeout=max(0.0, next_sample - loop.time()))
        if loop.time() < next_sample and not all(t.done() for t in tasks):
            continue
        interval, load.current = load.current, Interval()
        elapsed = loop.time() - start
        mem = sample_memory(pid)
        samples.append((elapsed, mem))
        span = max(elapsed - samples[-2][0], 0.001)
        print(f"{elapsed:6.0f} {len(interval.latencies) / span:7.1f} {_pct(interval.latencies, 0.5):7.2f} "
              f"{_pct(interval.latencies, 0.99):7.2f} {interval.errors:4d} {interval.late:4d} {mem.rss_mb:7.1f} "
              f"{mem.fds:5d} {mem.threads:4d}" + disk(), flush=True)
        next_sample += args.sample
    for t in tasks:
        t.result()

    steady = [(t, m.rss_mb) for t, m in samples if t >= args.warmup] or [(t, m.rss_mb) for t, m in samples]
    quarter = max(1, len(steady) // 4)
    head = statistics.fmean(v for _, v in steady[:quarter])
    tail = statistics.fmean(v for _, v in steady[-quarter:])
    slope = slope_per_hour(steady)
    fitted = slope * (steady[-1][0] - steady[0][0]) / 3600
    grows = fitted > args.tolerance_mb
    failed_share = load.failed / max(load.sent, 1)
    fds = [m.fds for t, m in samples if t >= args.warmup] or [samples[-1][1].fds]
    print(f"requests {load.sent}, failed {load.failed} ({failed_share:.2%})")
    print(f"RSS after warm-up: first quarter {head:.1f} MB, last quarter {tail:.1f} MB, fitted slope "
          f"{slope:+.1f} MB/h ({fitted:+.1f} MB over the run); fds {min(fds)}..{max(fds)}")
    print(f"verdict: {'GROWS' if grows else 'flat'} (tolerance {args.tolerance_mb:g} MB over the run)")
    wal_grows = bool(wal_sizes) and max(wal_sizes) > args.wal_limit_mb
    if wal_sizes:
        print(f"WAL: largest {max(wal_sizes):.1f} MB, last {wal_sizes[-1]:.1f} MB: "
              f"{'GROWS' if wal_grows else 'bounded'} (limit {args.wal_limit_mb:g} MB)")
    return 1 if grows or wal_grows or failed_share > 0.01 else 0


def file_mb(path: str) -> float:
    try:
        return os.stat(path).st_size / 1e6
    except OSError:
        return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:4100")
    parser.add_argument("--key", default=os.environ.get("RESPGATE_KEY", "sk-bench"))
    parser.add_argument("--model", default="bench-chat", help="JSON requests (default bench-chat: the bridge, "
                        "whose ids are the gateway's own, so every response is a new row)")
    parser.add_argument("--stream-model", help="streamed requests (default: MODEL-stream)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stream-every", type=int, default=4, help="every Nth request streams (0: none)")
    parser.add_argument("--chain-every", type=int, default=3, help="every Nth continues the last (0: none)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between memory samples")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds left out of the verdict")
    parser.add_argument("--tolerance-mb", type=float, default=8.0)
    parser.add_argument("--db", help="the server's SQLite database file: its size and its WAL's are sampled too")
    parser.add_argument("--wal-limit-mb", type=float, default=150.0,
                        help="a WAL larger than this is growth (respgate truncates past 64 MB)")
    parser.add_argument("--pid", type=int, help="the server's pid (default: whoever listens on the port)")
    args = parser.parse_args()
    if args.rate <= 0 or args.duration <= 0 or args.connections <= 0:
        parser.error("--rate, --duration and --connections must be positive")
    pid = args.pid or pid_listening_on(urlsplit(args.url).port or 80)
    if pid is None:
        parser.error(f"nothing listens on {args.url}; start the gateway or pass --pid")
    return asyncio.run(soak(args, pid))


if __name__ == "__main__":
    sys.exit(main())
