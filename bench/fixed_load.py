"""Exactly N `POST /v1/responses` (non-streaming) at a given concurrency; exits 1 if any was not a 200.

    python bench/fixed_load.py URL KEY N CONCURRENCY [MODEL]

A count, not a duration: `platform_instructions.sh` needs every set-up to do the same work, so that
instructions per request compare (wrk runs for a time instead)."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import orjson

BODY = {"input": "Tell me a three sentence bedtime story about a unicorn.", "max_output_tokens": 100}


async def main(url: str, key: str, n: int, concurrency: int, model: str) -> int:
    body = orjson.dumps({"model": model, **BODY})
    left, bad = n, 0
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async def worker() -> None:
            nonlocal left, bad
            while left > 0:
                left -= 1
                async with session.post(url, data=body) as response:
                    await response.read()
                    bad += response.status != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    if bad:
        print(f"{bad} of {n} requests failed", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (4, 5):
        sys.exit(__doc__)
    model = args[4] if len(args) == 5 else "bench-native"
    sys.exit(asyncio.run(main(args[0], args[1], int(args[2]), int(args[3]), model)))
