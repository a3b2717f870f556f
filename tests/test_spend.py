"""The spend hook and its logs, on every backend: one row per call (none lost, none twice, under
concurrency and failed writes), what a row holds, and the reports grouped by key, team, user, end user,
model and day. PostgreSQL is the test server of $RESPGATE_TEST_PG_DSN (never skipped)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from respgate.calls import Call, Principal
from respgate.config import Config, load_config
from respgate.deployments import Deployment
from respgate.errors import ConfigError, RateLimitError
from respgate.spend import SpendFilter, SpendTracker, build
from respgate.spend.backends import MemorySpendLog, PostgresSpendLog, SqliteSpendLog, sibling_file
from respgate.spend.rows import COLUMNS, Row, end_user_of, row_of
from respgate.spend.store import SpendLog
from respgate.store.factory import DatabaseTarget
from test_faults_store import write_lock_held_by_another_process
from test_store import PG_DSN

PRICED = Deployment("priced", "mock", "echo", model_info={"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                                                          "cache_read_input_token_cost": 5e-7})
OTHER = Deployment("other", "mock", "echo", model_info={"input_cost_per_token": 3e-6, "output_cost_per_token": 4e-6})
ALICE = Principal("owner-a", token="tok-a", key_alias="alice-key", team_id="team-1", user_id="alice")
BOB = Principal("owner-b", token="tok-b", key_alias="bob-key", team_id="team-2", user_id="bob")
ADMIN = Principal("owner-admin", is_admin=True)
DAY1 = datetime(2025, 3, 1, 10, tzinfo=UTC).timestamp()
DAY2 = datetime(2025, 3, 2, 23, 59, tzinfo=UTC).timestamp()


def usage(inp: int = 100, out: int = 50, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": inp + out}


def make_call(principal: Principal = ALICE, deployment: Deployment = PRICED, *, status: str = "completed",
              u: dict[str, Any] | None = None, body: dict[str, Any] | None = None, at: float | None = None,
              stream: bool = False) -> Call:
    call = Call(principal, {"model": deployment.model_name, "input": "hi", **(body or {})}, stream=stream)
    call.deployment = deployment
    call.response_id = f"resp_{uuid.uuid4().hex}"
    call.response = {"id": call.response_id, "status": status, "usage": u if u is not None else usage()}
    if at is not None:
        call.started_at = at
    call.ended = call.started + 0.25
    if stream:
        call.first_event = call.started + 0.05
    return call


async def drop_pg_table(table: str) -> None:
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
    finally:
        await conn.close()


Backend = Callable[[], SpendLog]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """`make()` -> a fresh, unopened spend log of the parametrised kind (all in one table per test)."""
    prefix = f"spend_t{uuid.uuid4().hex[:10]}_"
    kind = request.param

    def make() -> SpendLog:
        if kind == "memory":
            return MemorySpendLog()
        if kind == "sqlite":
            return SqliteSpendLog(str(tmp_path / "spend.db"), prefix)
        return PostgresSpendLog(PG_DSN, prefix)

    yield make
    if kind == "postgres":
        await drop_pg_table(f"{prefix}logs")


@pytest.fixture
async def tracker(backend: Backend) -> AsyncIterator[SpendTracker]:
    t = SpendTracker(backend(), flush_interval=0.05, batch_size=50)
    await t.start()
    yield t
    await t.close()


async def all_rows(t: SpendTracker, where: SpendFilter | None = None) -> list[dict[str, Any]]:
    return await t.logs(where or SpendFilter(), limit=100_000)


# -- one row per call -------------------------------------------------------------------------------

async def test_post_call_prices_the_call_and_logs_one_row(tracker: SpendTracker) -> None:
    call = make_call(u=usage(inp=1000, cached=200, out=300, reasoning=100),
                     body={"user": "end-user-7"}, stream=True)
    await tracker.post_call(call)
    assert call.cost == pytest.approx(800 * 1e-6 + 200 * 5e-7 + 300 * 2e-6)
    [row] = await all_rows(tracker)
    assert row["request_id"] == call.request_id and row["response_id"] == call.response_id
    assert (row["api_key"], row["key_alias"], row["team_id"], row["user_id"], row["end_user"]) == (
        "tok-a", "alice-key", "team-1", "alice", "end-user-7")
    assert (row["model_group"], row["deployment_id"], row["provider"], row["model"]) == (
        "priced", PRICED.id, "mock", "echo")
    assert (row["input_tokens"], row["cached_tokens"], row["output_tokens"], row["reasoning_tokens"],
            row["total_tokens"]) == (1000, 200, 300, 100, 1300)
    assert row["spend"] == pytest.approx(call.cost)
    assert row["latency_ms"] == pytest.approx(250.0) and row["ttft_ms"] == pytest.approx(50.0)
    assert row["end_time"] - row["start_time"] == pytest.approx(0.25)
    assert (row["status"], row["response_status"], row["route"], row["call_type"], row["stream"]) == (
        "success", "completed", "responses", "aresponses", 1)


async def test_absent_values_are_stored_as_null(tracker: SpendTracker) -> None:
    """The master key's call, no alias/team/user, no end user, no stream, no Response: NULL in every
    backend (SQLite's rows carry its NaN for them), and reports group them under None."""
    call = make_call(Principal("owner-m", is_admin=True))
    call.response = None
    await tracker.post_call(call)
    [row] = await all_rows(tracker)
    assert {c: row[c] for c in ("api_key", "key_alias", "team_id", "user_id", "end_user", "ttft_ms",
                                "response_status", "error_type", "error_code")} == dict.fromkeys(
        ("api_key", "key_alias", "team_id", "user_id", "end_user", "ttft_ms", "response_status", "error_type",
         "error_code"))
    assert (row["status"], row["http_status"], row["input_tokens"]) == ("success", 200, 0)
    [group] = await tracker.report(SpendFilter(), ["team_id"])
    assert group["team_id"] is None and group["requests"] == 1


async def test_rows_equal_calls_under_concurrency(tracker: SpendTracker) -> None:
    """Calls end while the writer is writing; every row lands exactly once."""
    calls = [make_call(ALICE if i % 2 else BOB) for i in range(1000)]

    async def end(chunk: Sequence[Call]) -> None:
        for c in chunk:
            await tracker.post_call(c)
            await asyncio.sleep(0)

    await asyncio.gather(*(end(calls[i::20]) for i in range(20)))
    rows = await all_rows(tracker)
    assert len(rows) == 1000
    assert sorted(r["request_id"] for r in rows) == sorted(c.request_id for c in calls)
    [total] = await tracker.report(SpendFilter(), ())
    assert total["requests"] == 1000
    assert total["spend"] == pytest.approx(sum(c.cost or 0 for c in calls))


async def test_post_call_twice_logs_once(tracker: SpendTracker) -> None:
    call = make_call()
    await tracker.post_call(call)
    await tracker.post_call(call)
    assert len(await all_rows(tracker)) == 1


async def test_close_writes_everything_pending(backend: Backend) -> None:
    log = backend()
    t = SpendTracker(log, flush_interval=3600, batch_size=10_000)  # the writer would not wake on its own
    await t.start()
    for _ in range(37):
        await t.post_call(make_call())
    assert t.pending == 37
    await t.close()
    reopened = SpendTracker(backend(), flush_interval=3600)
    await reopened.start()
    try:
        assert len(await all_rows(reopened)) == (37 if not isinstance(log, MemorySpendLog) else 0)
    finally:
        await reopened.close()


class Flaky(MemorySpendLog):
    """Fails the first `failures` writes, once after committing (a lost reply), to prove retries count once."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def write(self, rows: Sequence[Row]) -> None:
        if self.failures:
            self.failures -= 1
            if self.failures % 2:
                await super().write(rows)  # committed, but the caller hears an error
            raise ConnectionResetError("database went away")
        await super().write(rows)


async def test_failed_writes_are_retried_without_loss_or_double_count() -> None:
    t = SpendTracker(Flaky(failures=3), flush_interval=0.01, batch_size=5)
    await t.start()
    try:
        calls = [make_call() for _ in range(40)]
        for c in calls:
            await t.post_call(c)
        for _ in range(3):
            with pytest.raises(ConnectionResetError):
                await t.flush()
        assert len(await all_rows(t)) == 40
    finally:
        await t.close()


async def test_disabled_logs_still_price_the_call() -> None:
    t = SpendTracker(MemorySpendLog(), logs_enabled=False)
    await t.start()
    try:
        call = make_call()
        await t.post_call(call)
        assert call.cost == pytest.approx(100 * 1e-6 + 50 * 2e-6)
        assert await all_rows(t) == []
    finally:
        await t.close()


async def test_build_reads_litellm_settings(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("general_settings:\n  disable_spend_logs: true\n  proxy_batch_write_at: 2\n"
                    "  maximum_spend_logs_retention_period: 7d\n"
                    "litellm_settings:\n  disable_end_user_cost_tracking: true\n")
    t = build(load_config(str(path)), DatabaseTarget("sqlite", str(tmp_path / "x.db")), None)
    assert t is not None and isinstance(t.backend, SqliteSpendLog)
    assert (t.logs_enabled, t.track_end_user, t.flush_interval, t.retention) == (False, False, 2.0, 7 * 86400.0)
    path.write_text("general_settings:\n  maximum_spend_logs_retention_period: soon\n")
    with pytest.raises(ConfigError, match="maximum_spend_logs_retention_period"):
        build(load_config(str(path)), DatabaseTarget("memory"), None)
    default = build(Config.empty(), DatabaseTarget("memory"), None)
    assert default is not None and default.logs_enabled and isinstance(default.backend, MemorySpendLog)


async def test_failures_are_logged_with_their_error(tracker: SpendTracker) -> None:
    refused = Call(ALICE, {"model": "priced"})
    refused.error = RateLimitError("slow down", code="rate_limit_exceeded")
    failed = make_call(status="failed")
    assert failed.response is not None
    failed.response["error"] = {"code": "server_error", "message": "boom"}
    incomplete = make_call(status="incomplete")
    for c in (refused, failed, incomplete):
        await tracker.post_call(c)
    rows = {r["request_id"]: r for r in await all_rows(tracker)}
    r = rows[refused.request_id]
    assert (r["status"], r["response_status"], r["error_type"], r["error_code"], r["http_status"], r["spend"]) == (
        "failure", None, RateLimitError.type, "rate_limit_exceeded", 429, 0.0)
    assert refused.cost is None
    r = rows[failed.request_id]
    assert (r["status"], r["response_status"], r["error_code"]) == ("failure", "failed", "server_error")
    assert failed.cost is not None and failed.cost > 0  # the tokens it used are paid for
    r = rows[incomplete.request_id]
    assert (r["status"], r["response_status"]) == ("success", "incomplete")


def test_end_user_as_litellm_reads_it() -> None:
    assert end_user_of({"user": "u1", "safety_identifier": "s1", "metadata": {"user_id": "m1"}}) == "u1"
    assert end_user_of({"safety_identifier": "s1", "metadata": {"user_id": "m1"}}) == "s1"
    assert end_user_of({"metadata": {"user_id": "m1"}}) == "m1"
    assert end_user_of({"metadata": {"end_user_id": "m2"}}) == "m2"
    assert end_user_of({"user": 5, "metadata": "x"}) is None


async def test_retention_purges_old_rows(tracker: SpendTracker) -> None:
    await tracker.post_call(make_call(at=DAY1))
    await tracker.post_call(make_call())
    await tracker.flush()
    assert await tracker.backend.purge(DAY2) == 1
    assert len(await all_rows(tracker)) == 1


# -- reports ----------------------------------------------------------------------------------------

async def seed(t: SpendTracker) -> None:
    """alice: 2 calls on day 1 (priced, end user e1), 1 on day 2 (other); bob: 1 on day 2 (priced, e2)."""
    for call in (make_call(ALICE, at=DAY1, body={"user": "e1"}), make_call(ALICE, at=DAY1 + 60, body={"user": "e1"}),
                 make_call(ALICE, OTHER, at=DAY2), make_call(BOB, at=DAY2, body={"safety_identifier": "e2"})):
        await t.post_call(call)


PRICED_CALL = 100 * 1e-6 + 50 * 2e-6
OTHER_CALL = 100 * 3e-6 + 50 * 4e-6


@pytest.mark.parametrize(("group_by", "expected"), [
    (("api_key",), {("tok-a",): (3, 2 * PRICED_CALL + OTHER_CALL), ("tok-b",): (1, PRICED_CALL)}),
    (("team_id",), {("team-1",): (3, 2 * PRICED_CALL + OTHER_CALL), ("team-2",): (1, PRICED_CALL)}),
    (("user_id",), {("alice",): (3, 2 * PRICED_CALL + OTHER_CALL), ("bob",): (1, PRICED_CALL)}),
    (("end_user",), {("e1",): (2, 2 * PRICED_CALL), (None,): (1, OTHER_CALL), ("e2",): (1, PRICED_CALL)}),
    (("model_group",), {("priced",): (3, 3 * PRICED_CALL), ("other",): (1, OTHER_CALL)}),
    (("day",), {("2025-03-01",): (2, 2 * PRICED_CALL), ("2025-03-02",): (2, PRICED_CALL + OTHER_CALL)}),
    (("day", "api_key"), {("2025-03-01", "tok-a"): (2, 2 * PRICED_CALL), ("2025-03-02", "tok-a"): (1, OTHER_CALL),
                          ("2025-03-02", "tok-b"): (1, PRICED_CALL)}),
])
async def test_report_groups(tracker: SpendTracker, group_by: tuple[str, ...],
                             expected: dict[tuple[Any, ...], tuple[int, float]]) -> None:
    await seed(tracker)
    groups = await tracker.report(SpendFilter(), group_by)
    got = {tuple(g[c] for c in group_by): (g["requests"], g["spend"]) for g in groups}
    assert got.keys() == expected.keys()
    for k, (n, spend) in expected.items():
        assert got[k][0] == n and got[k][1] == pytest.approx(spend)
    assert [g["spend"] for g in groups] == sorted((g["spend"] for g in groups), reverse=True)
    if "api_key" in group_by:
        assert {g["api_key"]: g["key_alias"] for g in groups} == {"tok-a": "alice-key", "tok-b": "bob-key"}
    assert sum(g["input_tokens"] for g in groups) == 400 and sum(g["total_tokens"] for g in groups) == 600


async def test_filters_and_date_range(tracker: SpendTracker) -> None:
    await seed(tracker)
    day2 = datetime(2025, 3, 2, tzinfo=UTC).timestamp()
    assert len(await all_rows(tracker, SpendFilter(start=day2))) == 2
    assert len(await all_rows(tracker, SpendFilter(end=day2))) == 2
    assert len(await all_rows(tracker, SpendFilter(api_key="tok-a", start=day2))) == 1
    assert len(await all_rows(tracker, SpendFilter(end_user="e1"))) == 2
    rows = await all_rows(tracker)
    assert [r["start_time"] for r in rows] == sorted((r["start_time"] for r in rows), reverse=True)
    assert len(await tracker.logs(SpendFilter(), limit=3)) == 3


def test_visibility() -> None:
    everything = SpendFilter(user_id="x")
    assert SpendTracker.visible_to(ADMIN, everything) == everything
    assert SpendTracker.visible_to(ALICE, everything) == SpendFilter(user_id="x", api_key="tok-a")
    assert SpendTracker.visible_to(ALICE, SpendFilter(api_key="tok-b")) is None
    assert SpendTracker.visible_to(Principal(""), everything) is None


def test_sqlite_spend_rows_live_beside_the_responses_file(tmp_path: Path) -> None:
    """One writer per SQLite file: the spend log's batches must not hold the responses' file."""
    config = Config.empty()
    t = build(config, DatabaseTarget("sqlite", str(tmp_path / "respgate.db")), None)
    assert t is not None and isinstance(t.backend, SqliteSpendLog)
    assert t.backend.path == str(tmp_path / "respgate.spend.db")
    assert sibling_file("/a/b.c/store", "spend") == "/a/b.c/store.spend"


async def test_sqlite_rows_written_in_groups_read_back_whole(tmp_path: Path) -> None:
    """Rows go in 32 to an INSERT, the rest one by one, in transactions of `chunk`: every column of every
    row comes back as written, none twice, whatever the split."""
    log = SqliteSpendLog(str(tmp_path / "s.spend.db"), chunk=50)
    await log.open()
    try:
        calls = [make_call(ALICE if i % 3 else BOB) for i in range(103)]  # chunks 50+50+3: groups and singles
        rows = [row_of(c, c.tokens, null=log.null) for c in calls]
        await log.write(rows)
        await log.write(rows[:40])  # a retried batch: ignored by id
        stored = await log.logs(SpendFilter(), 1000)
    finally:
        await log.close()
    assert len(stored) == len(rows)
    by_id = {r["id"]: r for r in stored}
    for row in rows:
        assert tuple(by_id[row[0]][c] for c in COLUMNS) == tuple(None if v is log.null else v for v in row)


async def test_sqlite_writes_wait_for_another_writer(tmp_path: Path) -> None:
    """The loop never waits on a lock: while another process holds the file's write lock the batch goes
    to the worker thread, which waits (busy timeout) and writes it once the lock is free."""
    path = tmp_path / "s.spend.db"
    log = SqliteSpendLog(str(path))
    await log.open()
    try:
        call = make_call()
        rows = [row_of(call, call.tokens)]
        with write_lock_held_by_another_process(path):
            writing = asyncio.ensure_future(log.write(rows))
            await asyncio.sleep(0.3)
            assert not writing.done()  # waiting for the lock, off the loop (this test kept running)
        await asyncio.wait_for(writing, 5)
        [stored] = await log.logs(SpendFilter(), 10)
        assert stored["request_id"] == call.request_id
    finally:
        await log.close()
