"""What a virtual key costs a request on the hot path: authenticate (cached) + pre_call + post_call.

    python bench/keys_bench.py [--n 100000]

µs per request on the event loop, memory storage, no Redis (the background tasks are not running, so
nothing else competes): the master key alone (no hooks needed), a key without limits, a key with every
limit (rpm, tpm, max_parallel_requests, max_budget) under a team with a budget, and the same with a
`user` that is not a customer (a cached miss) and one that is a customer with a budget. Making the
`Call` itself (a uuid4 request id, two clocks) is in every line; it is printed alone first.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from respgate.calls import Call, Principal
from respgate.keys.admin_people import Admin
from respgate.keys.manager import KeyManager
from respgate.keys.storage import MemoryStorage
from respgate.proxy.auth import Authenticator

MASTER = "sk-bench-master"
ADMIN = Principal("admin", is_admin=True)
USAGE = {"input_tokens": 12, "output_tokens": 30, "total_tokens": 42}
HEADER_PREFIX = "Bearer "


async def run(auth: Authenticator, keys: KeyManager, key: str, body: dict[str, object], n: int) -> float:
    header = HEADER_PREFIX + key
    response = {"status": "completed", "usage": USAGE}
    start = time.perf_counter()
    for _ in range(n):
        principal = await auth.authenticate(header, None)
        call = Call(principal, body)
        await keys.pre_call(call)
        call.response = response
        call.cost = 1e-9
        await keys.post_call(call)
    return (time.perf_counter() - start) / n * 1e6


async def main(n: int) -> None:
    keys = KeyManager(MemoryStorage(), cache_ttl=3600)
    admin = keys.admin = Admin(keys)
    auth = Authenticator(MASTER, keys)
    plain = (await admin.generate_key({}, ADMIN))["key"]
    team = (await admin.new_team({"max_budget": 1e9, "rpm_limit": 10**9}))["team_id"]
    limited = (await admin.generate_key({"team_id": team, "rpm_limit": 10**9, "tpm_limit": 10**12,
                                         "max_parallel_requests": 1000, "max_budget": 1e9,
                                         "models": ["bench-model"]}, ADMIN))["key"]
    await admin.new_customer({"user_id": "customer-1", "max_budget": 1e9})
    body = {"model": "bench-model", "input": "hi"}
    cases = [
        ("master key", MASTER, body),
        ("virtual key, no limits", plain, body),
        ("virtual key + team, every limit", limited, body),
        ("  + user that is not a customer", limited, {**body, "user": "someone"}),
        ("  + customer with a budget", limited, {**body, "user": "customer-1"}),
    ]
    start = time.perf_counter()
    for _ in range(n):
        Call(ADMIN, body)
    print(f"{'(making the Call alone)':34s} {(time.perf_counter() - start) / n * 1e6:6.2f} µs")
    for name, key, b in cases:
        await run(auth, keys, key, b, n // 10)  # warm up
        print(f"{name:34s} {await run(auth, keys, key, b, n):6.2f} µs per authenticate+pre_call+post_call")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().n))
