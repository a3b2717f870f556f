"""Shared pieces of the keys tests (no tests here): a settable clock and a KeyManager over a given storage."""

from __future__ import annotations

import os
from typing import Any

from respgate.calls import Call, Principal
from respgate.keys.admin_people import Admin
from respgate.keys.manager import KeyManager
from respgate.keys.shared import SharedLimits
from respgate.keys.storage import MemoryStorage, Storage

ADMIN = Principal("admin-owner", is_admin=True)
PG_DSN = os.environ.get("RESPGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
START = 1_800_000_000.0  # a minute boundary, so per-minute windows are predictable


class Clock:
    def __init__(self) -> None:
        self.now = START
        self.mono = 1000.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


def manager(storage: Storage | None = None, clock: Clock | None = None, *, ttl: float = 5.0,
            shared: SharedLimits | None = None, groups: dict[str, frozenset[str]] | None = None) -> KeyManager:
    clock = clock or Clock()
    m = KeyManager(storage or MemoryStorage(), cache_ttl=ttl, shared=shared, access_groups=groups,
                   clock=clock.wall, monotonic=clock.monotonic)
    m.admin = Admin(m, model_names=frozenset({"mock/echo", "mock/recall"}))
    return m


def admin(m: KeyManager) -> Admin:
    assert m.admin is not None
    return m.admin


async def new_key(m: KeyManager, **fields: Any) -> str:
    generated = await admin(m).generate_key(fields, ADMIN)
    key: str = generated["key"]
    return key


async def call(m: KeyManager, key: str | None, body: dict[str, Any] | None = None) -> Call:
    """pre_call for one request as `key` (None: the master key); raises what pre_call raises."""
    principal = await m.verify(key) if key is not None else ADMIN
    c = Call(principal, body if body is not None else {"model": "mock/echo", "input": "hi"})
    await m.pre_call(c)
    return c


async def finish(m: KeyManager, c: Call, *, cost: float | None = None, tokens: int = 0) -> None:
    c.cost = cost
    c.response = {"status": "completed", "usage": {"input_tokens": tokens // 2, "output_tokens": tokens - tokens // 2}}
    await m.post_call(c)
