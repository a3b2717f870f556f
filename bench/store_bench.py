"""How fast the SQLite store saves from one event loop, and how long it holds that loop.

    python bench/store_bench.py [--n 5000] [--concurrency 1000] [--rate 2500] [--readers 2]

burst: N saves issued at once from one loop (at most C in flight): saves/s, commits, the loop's
CPU per save, and the loop's lag meanwhile (a 1 ms heartbeat: what an HTTP request on the same
loop would wait). paced: the same saves arriving at RATE/s, first through a null store (the floor:
task + serialise + future) and then through SQLite. Then the orjson cost a save pays on the loop,
and read latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from respgate.store.base import ResponseRecord
from respgate.store.sqlite import SqliteStore


def sample_response(response_id: str) -> dict[str, Any]:
    text = "The quick brown fox jumps over the lazy dog. " * 40  # ~1.8 KB of output text
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "model": "gpt-4o-2024-08-06",
        "output": [
            {
                "id": "msg_" + "0" * 48,
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {"input_tokens": 120, "output_tokens": 410, "total_tokens": 530},
        "temperature": 1.0,
        "top_p": 1.0,
        "tools": [],
        "metadata": {},
    }


def sample_record(i: int) -> ResponseRecord:
    rid = f"resp_bench_{i}"
    return ResponseRecord(
        id=rid,
        owner="key-hash",
        model="gpt-4o",
        deployment_id="dep-1",
        provider="openai",
        status="completed",
        created_at=time.time(),
        previous_response_id=f"resp_bench_{i - 1}" if i else None,
        response=sample_response(rid),
        input_items=[
            {"id": f"msg_in_{i}_{k}", "type": "message", "role": "user", "content": "Tell me a story."}
            for k in range(2)
        ],
    )


class Heartbeat:
    """Sleeps `period` in a loop and records how late each wake-up is: the loop's blocked time."""

    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, time.perf_counter() - start - self.period))

    def __enter__(self) -> Heartbeat:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


class NullStore:
    """The loop-side shape of a save without the store: serialise, then await a future resolved
    on the loop. Its figures are the floor that the real store is compared with."""

    async def save(self, record: ResponseRecord) -> None:
        orjson.dumps(record.response)
        [orjson.dumps(item) for item in record.input_items]
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.set_result, None)
        await future


async def burst(store: SqliteStore, records: list[ResponseRecord], concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def save(record: ResponseRecord) -> None:
        async with limit:
            await store.save(record)

    commits, cpu = store.commits, time.thread_time()
    with Heartbeat() as beat:
        start = time.perf_counter()
        await asyncio.gather(*(save(r) for r in records))
        elapsed = time.perf_counter() - start
    cpu = time.thread_time() - cpu
    print(
        f"burst: {len(records)} saves, <= {concurrency} in flight: {len(records) / elapsed:,.0f}/s, "
        f"{store.commits - commits} commits, loop CPU {cpu / len(records) * 1e6:.1f} us/save, "
        f"{_lag(beat)}"
    )


async def paced(store: SqliteStore | NullStore, records: list[ResponseRecord], rate: int, label: str) -> None:
    """Saves arriving at `rate` per second, as from a server: what the loop pays at that load."""
    tasks: list[asyncio.Task[None]] = []
    per_tick = max(1, rate // 1000)
    cpu = time.thread_time()
    with Heartbeat() as beat:
        start = time.perf_counter()
        for i in range(0, len(records), per_tick):
            tasks += [asyncio.create_task(store.save(r)) for r in records[i : i + per_tick]]
            await asyncio.sleep(max(0.0, start + (i + per_tick) / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    cpu = time.thread_time() - cpu
    print(
        f"paced {label}: {len(records)} saves at {rate:,}/s asked, {len(records) / elapsed:,.0f}/s done, "
        f"loop busy {cpu / elapsed * 100:.0f}%, {_lag(beat)}"
    )


async def run(n: int, concurrency: int, rate: int, readers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "bench.db"), readers=readers)
        await store.open()
        records = [sample_record(i) for i in range(n)]
        await burst(store, records, concurrency)
        await paced(NullStore(), records, rate, "no store ")
        await paced(store, records, rate, "sqlite   ")

        start = time.perf_counter()
        for r in records[:1000]:
            orjson.dumps(r.response).decode()
            [orjson.dumps(item).decode() for item in r.input_items]
        per = (time.perf_counter() - start) / min(n, 1000)
        print(f"serialising one record on the loop: {per * 1e6:.1f} us")

        timings: list[float] = []
        for r in records[-500:]:
            start = time.perf_counter()
            await store.get(r.id)
            timings.append(time.perf_counter() - start)
        print(
            f"get round trip: median {statistics.median(timings) * 1e6:.0f} us, "
            f"p99 {_pct(timings, 99) * 1e6:.0f} us"
        )
        start = time.perf_counter()
        chain = await store.chain(records[-1].id, limit=100)
        print(f"chain of {len(chain)}: {(time.perf_counter() - start) * 1e3:.2f} ms")
        await store.close()


def _lag(beat: Heartbeat) -> str:
    lags = beat.lags
    return (
        f"loop lag p50 {_pct(lags, 50) * 1e3:.2f} / p99 {_pct(lags, 99) * 1e3:.2f} / "
        f"max {max(lags, default=0) * 1e3:.2f} ms"
    )


def _pct(values: list[float], pct: int) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * pct // 100)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=2500)
    parser.add_argument("--readers", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.n, args.concurrency, args.rate, args.readers))


if __name__ == "__main__":
    main()
