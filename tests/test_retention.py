"""Retention: the purge on every store, the periodic sweeper with an injected clock, the settings,
and DATABASE_URL as the fallback database."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
import pytest

from respgate.calls import Principal
from respgate.config import load_config
from respgate.errors import ConfigError, NotFoundError
from respgate.gateway import Gateway
from respgate.retention import DAY, RetentionSweeper
from respgate.store.base import ConversationRecord, Purged, Store
from respgate.store.factory import open_store
from respgate.store.memory import MemoryStore
from respgate.store.postgres import PostgresStore
from respgate.store.sqlite import SqliteStore
from test_conversations import any_store, msg  # noqa: F401  (the three-backend fixture)
from test_store import record


async def _fill(store: Store) -> None:
    old, new = record("resp_old", items=2), record("resp_new", items=1)
    old.created_at, new.created_at = 100.0, 300.0
    running = record("resp_running", status="in_progress")
    running.created_at = 100.0
    for r in (old, new, running):
        await store.save(r, [b'{"type":"response.created"}'])
    await store.save_conversation(ConversationRecord("conv_old", "k", 50.0, {}, 100.0), [msg(0)])
    await store.save_conversation(ConversationRecord("conv_new", "k", 50.0, {}, 100.0), [msg(1)])
    await store.add_conversation_items("conv_new", [msg(2)], now=300.0)  # a write keeps it alive


async def test_purge_deletes_old_content_and_keeps_the_rest(any_store: Store) -> None:  # noqa: F811 (the fixture)
    await _fill(any_store)
    assert await any_store.purge(before=200.0) == Purged(responses=1, conversations=1)
    assert await any_store.get("resp_old") is None
    assert await any_store.events("resp_old") is None
    assert await any_store.input_items("resp_old") == ([], False)
    assert await any_store.get_conversation("conv_old") is None
    assert await any_store.conversation_history("conv_old") == []
    assert await any_store.get("resp_new") is not None and await any_store.events("resp_new") is not None
    assert await any_store.get("resp_running") is not None  # a running response is never purged
    assert len(await any_store.conversation_history("conv_new")) == 2
    assert await any_store.purge(before=200.0) == Purged()


async def test_purged_rows_are_gone_from_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "rg.db"
    store = SqliteStore(str(path))
    await store.open()
    await _fill(store)
    await store.purge(before=1e12)
    await store.close()
    with sqlite3.connect(path) as conn:
        for table in ("input_items", "conversation_items", "conversations"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        assert [row[0] for row in conn.execute("SELECT id FROM responses")] == ["resp_running"]
        assert [row[0] for row in conn.execute("SELECT response_id FROM response_events")] == ["resp_running"]


async def test_sweeper_runs_periodically_with_the_injected_clock() -> None:
    store = MemoryStore()
    await _fill(store)
    now = [150.0 + DAY]
    sleeps: list[float] = []
    rounds = asyncio.Queue[None]()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        rounds.put_nowait(None)
        now[0] += 200.0  # the next round sees a later clock
        await asyncio.sleep(0)

    sweeper = RetentionSweeper(store, DAY, interval=60.0, clock=lambda: now[0], sleep=sleep)
    sweeper.start()
    await rounds.get()  # first round: cutoff 150 -> only resp_old and conv_old go
    assert await store.get("resp_old") is None and await store.get("resp_new") is not None
    await rounds.get()  # second round: cutoff 350 -> resp_new and conv_new go too
    await sweeper.stop()
    assert await store.get("resp_new") is None and await store.get_conversation("conv_new") is None
    assert sleeps[:2] == [60.0, 60.0]


async def test_no_ttl_means_nothing_is_deleted() -> None:
    store = MemoryStore()
    await _fill(store)
    sweeper = RetentionSweeper(store, None, clock=lambda: 1e12)
    sweeper.start()  # no task
    assert await sweeper.sweep() == Purged()
    await sweeper.stop()
    assert await store.get("resp_old") is not None


async def test_gateway_purges_responses_older_than_the_configured_days(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_list:\n  - model_name: mock/echo\n    litellm_params: {model: mock/echo}\n"
                   "general_settings:\n  response_retention_days: 2\n  retention_sweep_interval_seconds: 30\n")
    config = load_config(str(cfg))
    assert config.general.response_retention_days == 2.0
    assert config.general.retention_sweep_interval_seconds == 30.0
    gateway = Gateway(config, MemoryStore())
    await gateway.start()
    try:
        principal = Principal()
        made = orjson.loads(await gateway.create({"model": "mock/echo", "input": "x"}, principal))
        conv = await gateway.conversations.create({}, "")
        base = float(made["created_at"])
        gateway.retention.clock = lambda: base + DAY  # one day later: kept
        assert await gateway.retention.sweep() == Purged()
        gateway.retention.clock = lambda: base + 3 * DAY
        assert await gateway.retention.sweep() == Purged(responses=1, conversations=1)
        with pytest.raises(NotFoundError):
            await gateway.retrieve(made["id"], principal)
        with pytest.raises(NotFoundError):
            await gateway.conversations.retrieve(conv["id"], "")
    finally:
        await gateway.close()


def test_bad_retention_setting_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("general_settings:\n  response_retention_days: soon\n")
    with pytest.raises(ConfigError, match="response_retention_days"):
        load_config(str(cfg))


def test_database_url_env_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("general_settings: {}\n")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1:5432/db")
    assert load_config(str(cfg)).general.database_url == "postgresql://u@127.0.0.1:5432/db"
    assert isinstance(open_store(None), PostgresStore)
    cfg.write_text(f"general_settings:\n  database_url: sqlite:///{tmp_path / 'x.db'}\n")
    assert load_config(str(cfg)).general.database_url == f"sqlite:///{tmp_path / 'x.db'}"  # the config wins
    monkeypatch.delenv("DATABASE_URL")
    cfg.write_text("general_settings: {}\n")
    assert load_config(str(cfg)).general.database_url is None
