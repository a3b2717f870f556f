"""What spend tracking costs a request, and how fast its rows reach the database.

    python bench/spend_bench.py [--n 20000] [--pg postgresql://postgres@127.0.0.1:5432/test]

post_call: µs per call on the event loop for the hook alone (price the usage from the cached float
prices + build the row + enqueue), with logs on and off, and for `cost_of` by itself, against a table
model (genai-prices) and a model_info-priced one. write: N calls ended at once, then `flush()`: rows/s
into memory, SQLite (a temporary file) and PostgreSQL (a throwaway table, dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from respgate.calls import Call, Principal
from respgate.deployments import Deployment
from respgate.spend import SpendTracker, cost_of
from respgate.spend.backends import MemorySpendLog, PostgresSpendLog, SqliteSpendLog
from respgate.spend.store import SpendLog

TABLE = Deployment("gpt-4o", "openai", "gpt-4o-2024-08-06")
CUSTOM = Deployment("mine", "mock", "echo", model_info={"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6})
KEY = Principal("owner", token="a" * 64, key_alias="bench", team_id="team", user_id="user")
USAGE = {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 300, "cache_write_tokens": 0},
         "output_tokens": 410, "output_tokens_details": {"reasoning_tokens": 64}, "total_tokens": 1610}


def calls(n: int, deployment: Deployment) -> list[Call]:
    out = []
    for _ in range(n):
        c = Call(KEY, {"model": deployment.model_name, "input": "hi", "user": "end-user"})
        c.deployment = deployment
        c.response_id = "resp_x"
        c.response = {"id": "resp_x", "status": "completed", "usage": USAGE}
        c.ended = c.started + 0.1
        out.append(c)
    return out


async def per_call(n: int) -> None:
    for name, d in (("genai-prices", TABLE), ("model_info", CUSTOM)):
        cost_of(d, USAGE)  # warm the price cache
        t0 = time.perf_counter()
        for _ in range(n):
            cost_of(d, USAGE)
        print(f"cost_of ({name}):               {(time.perf_counter() - t0) / n * 1e6:6.2f} µs")
        for logs in (True, False):
            tracker = SpendTracker(MemorySpendLog(n + 1), logs_enabled=logs, flush_interval=3600, batch_size=n + 1)
            batch = calls(n, d)
            t0 = time.perf_counter()
            for c in batch:
                await tracker.post_call(c)
            per = (time.perf_counter() - t0) / n * 1e6
            print(f"post_call ({name}, logs {'on ' if logs else 'off'}): {per:6.2f} µs")
            await tracker.close()


async def write_rate(n: int, log: SpendLog, name: str) -> None:
    tracker = SpendTracker(log, flush_interval=3600, batch_size=500)
    await tracker.start()
    try:
        for c in calls(n, CUSTOM):
            await tracker.post_call(c)
        t0 = time.perf_counter()
        await tracker.flush()
        elapsed = time.perf_counter() - t0
        print(f"write {n} rows ({name}): {n / elapsed:10,.0f} rows/s")
    finally:
        await tracker.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    await per_call(args.n)
    await write_rate(args.n, MemorySpendLog(args.n), "memory")
    with tempfile.TemporaryDirectory() as tmp:
        await write_rate(args.n, SqliteSpendLog(str(Path(tmp) / "spend.db")), "sqlite")
    if args.pg:
        prefix = f"spend_bench_{uuid.uuid4().hex[:8]}_"
        log = PostgresSpendLog(args.pg, prefix)
        try:
            await write_rate(args.n, log, "postgres")
        finally:
            import asyncpg

            conn = await asyncpg.connect(args.pg)
            await conn.execute(f"DROP TABLE IF EXISTS {prefix}logs")
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
