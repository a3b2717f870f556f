"""The Conversations API and the `conversation` parameter: the store contract on SQLite, memory and
PostgreSQL, then end to end with the official openai SDK for mock, bridged and native models."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import MASTER_KEY, MOCK_MODELS, ProxyFactory
from fakes.chat_upstream import FakeChat
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from respgate.config import Config
from respgate.conversations import Conversations
from respgate.errors import InvalidRequestError, NotFoundError
from respgate.store.base import ConversationRecord, Store
from respgate.store.memory import MemoryStore
from respgate.store.postgres import PostgresStore
from respgate.store.sqlite import SqliteStore
from sse import post_stream
from test_store import PG_DSN, pg_schema

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
UPSTREAM_KEY = "sk-upstream-secret-987654"


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with contextlib.AsyncExitStack() as stack:
        s: Store
        if request.param == "sqlite":
            s = SqliteStore(str(tmp_path / "rg.db"))
        elif request.param == "memory":
            s = MemoryStore()
        else:
            s = PostgresStore(PG_DSN, schema=await stack.enter_async_context(pg_schema()))
        await s.open()
        yield s
        await s.close()


def msg(n: int) -> dict[str, Any]:
    return {"id": f"msg_{n}", "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": f"m{n}"}]}


# -- the store --------------------------------------------------------------------------------------------


async def test_store_keeps_conversations_and_their_items_in_order(any_store: Store) -> None:
    conv = ConversationRecord(id="conv_a", owner="k", created_at=10.0, metadata={"topic": "x"}, updated_at=10.0)
    await any_store.save_conversation(conv, [msg(0), msg(1)])
    assert await any_store.add_conversation_items("conv_a", [msg(2), msg(3)], now=20.0)
    assert not await any_store.add_conversation_items("conv_missing", [msg(9)], now=20.0)
    got = await any_store.get_conversation("conv_a")
    assert got is not None and got.metadata == {"topic": "x"} and got.owner == "k" and got.updated_at == 20.0
    assert [i["id"] for i in await any_store.conversation_history("conv_a")] == [f"msg_{n}" for n in range(4)]

    page, more = await any_store.conversation_items("conv_a", limit=3)
    assert [i["id"] for i in page] == ["msg_3", "msg_2", "msg_1"] and more
    page, more = await any_store.conversation_items("conv_a", limit=3, after="msg_1")
    assert [i["id"] for i in page] == ["msg_0"] and not more
    page, more = await any_store.conversation_items("conv_a", limit=2, after="msg_0", order="asc")
    assert [i["id"] for i in page] == ["msg_1", "msg_2"] and more
    assert await any_store.conversation_items("conv_a", after="msg_nope") == ([], False)

    assert (await any_store.conversation_item("conv_a", "msg_2")) == msg(2)
    assert await any_store.delete_conversation_item("conv_a", "msg_2", now=30.0)
    assert not await any_store.delete_conversation_item("conv_a", "msg_2", now=30.0)
    assert await any_store.conversation_item("conv_a", "msg_2") is None

    conv.metadata = {"topic": "y"}
    await any_store.save_conversation(conv)  # metadata only: the items stay
    got = await any_store.get_conversation("conv_a")
    assert got is not None and got.metadata == {"topic": "y"} and got.created_at == 10.0
    assert len(await any_store.conversation_history("conv_a")) == 3

    assert await any_store.delete_conversation("conv_a")
    assert await any_store.get_conversation("conv_a") is None
    assert await any_store.conversation_history("conv_a") == []
    assert not await any_store.delete_conversation("conv_a")


async def test_another_key_sees_no_conversation() -> None:
    convs = Conversations(MemoryStore())
    made = await convs.create({"items": [{"role": "user", "content": "hi"}]}, "owner-a")
    for call in (convs.retrieve(made["id"], "owner-b"), convs.delete(made["id"], "owner-b"),
                 convs.list_items(made["id"], "owner-b"),
                 convs.history({"conversation": made["id"]}, "owner-b")):
        with pytest.raises(NotFoundError):
            await call
    assert (await convs.retrieve(made["id"], "owner-a"))["id"] == made["id"]


async def test_bad_items_and_metadata_name_the_field() -> None:
    convs = Conversations(MemoryStore())
    with pytest.raises(InvalidRequestError) as e:
        await convs.create({"items": [{"role": "user", "content": "x"}] * 21}, "")
    assert e.value.param == "items" and e.value.code == "array_above_max_length"
    with pytest.raises(InvalidRequestError) as e:
        await convs.create({"items": [{"type": "message", "role": "nobody", "content": "x"}]}, "")
    assert e.value.param is not None and e.value.param.startswith("items[0]")
    with pytest.raises(InvalidRequestError) as e:
        await convs.create({"metadata": {f"k{n}": "v" for n in range(17)}}, "")
    assert e.value.param == "metadata"
    with pytest.raises(InvalidRequestError) as e:
        await convs.create({"title": "x"}, "")
    assert e.value.code == "unknown_parameter"


# -- the API through the proxy, with the official SDK --------------------------------------------------


def test_sdk_conversation_lifecycle(client: OpenAI) -> None:
    conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "hello"}],
                                       metadata={"topic": "demo"})
    assert conv.id.startswith("conv_") and conv.object == "conversation" and conv.metadata == {"topic": "demo"}
    assert client.conversations.retrieve(conv.id).id == conv.id
    updated = client.conversations.update(conv.id, metadata={"topic": "changed"})
    assert updated.metadata == {"topic": "changed"}

    added = client.conversations.items.create(
        conv.id, items=[{"type": "message", "role": "user", "content": f"n{n}"} for n in range(4)])
    assert [i.type for i in added.data] == ["message"] * 4
    every = list(client.conversations.items.list(conv.id, limit=2, order="asc"))  # pages through `after`
    assert [i.content[0].text for i in every if i.type == "message"] == ["hello", "n0", "n1", "n2", "n3"]
    newest = client.conversations.items.list(conv.id, limit=1)
    assert newest.data[0].id == added.data[-1].id and newest.has_more

    one = client.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)
    assert one.id == added.data[0].id
    after_delete = client.conversations.items.delete(added.data[0].id, conversation_id=conv.id)
    assert after_delete.id == conv.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)

    deleted = client.conversations.delete(conv.id)
    assert deleted.deleted and deleted.object == "conversation.deleted"
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)


def test_mock_turns_read_and_extend_the_conversation(client: OpenAI) -> None:
    conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "seed"}])
    first = client.responses.create(model="mock/recall", input="one", conversation=conv.id)
    assert first.conversation is not None and first.conversation.id == conv.id
    second = client.responses.create(model="mock/recall", input="two", conversation={"id": conv.id})
    assert second.output_text == "seed | one | two"
    items = list(client.conversations.items.list(conv.id, order="asc"))
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"), ("message", "user"), ("message", "assistant"), ("message", "user"),
        ("message", "assistant")]
    assert items[-1].id == second.output[0].id


def test_a_streamed_turn_is_in_the_conversation_when_the_stream_ends(proxy: ServerThread, client: OpenAI) -> None:
    conv = client.conversations.create()
    events = post_stream(proxy.url, MASTER_KEY, {"model": "mock/recall", "input": "streamed",
                                                 "conversation": conv.id})
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["conversation"] == {"id": conv.id}
    texts = [i.content[0].text for i in client.conversations.items.list(conv.id, order="asc")
             if i.type == "message"]
    assert texts == ["streamed", "streamed"]


def test_a_failed_turn_leaves_the_conversation_unchanged(client: OpenAI) -> None:
    conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "keep"}])
    with contextlib.suppress(openai.APIError):
        client.responses.create(model="mock/fail", input="boom", conversation=conv.id)
    assert len(list(client.conversations.items.list(conv.id))) == 1


def test_conversation_errors(client: OpenAI) -> None:
    conv = client.conversations.create()
    prev = client.responses.create(model="mock/echo", input="x")
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="mock/echo", input="y", conversation=conv.id, previous_response_id=prev.id)
    assert bad.value.code == "mutually_exclusive_parameters"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="mock/echo", input="y", conversation="conv_unknown")
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list("conv_unknown")


def test_the_sdk_default_store_supports_conversations_too() -> None:
    convs = Conversations(MemoryStore(), clock=lambda: 1234.9)
    assert Config.empty().general.response_retention_days is None
    assert convs.clock() == 1234.9


# -- bridged and native providers ----------------------------------------------------------------------


@pytest.fixture
def chat() -> Iterator[tuple[FakeChat, str]]:
    fake = FakeChat(api_key=UPSTREAM_KEY)
    with ServerThread(fake.app) as server:
        yield fake, server.url


@pytest.fixture
def native() -> Iterator[FakeOpenAI]:
    f = FakeOpenAI(api_key=UPSTREAM_KEY)
    with ServerThread(f.app) as server:
        f.url = server.url  # type: ignore[attr-defined]
        yield f


def _models(chat_url: str, openai_url: str) -> str:
    return MOCK_MODELS + f"""
  - model_name: ds
    litellm_params: {{model: deepseek/deepseek-chat, api_base: "{chat_url}/v1", api_key: "{UPSTREAM_KEY}"}}
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{openai_url}/v1", api_key: "{UPSTREAM_KEY}"}}
"""


@pytest.fixture
def mixed(start_proxy: ProxyFactory, chat: tuple[FakeChat, str], native: FakeOpenAI) -> Iterator[OpenAI]:
    server = start_proxy(_models(chat[1], native.url))  # type: ignore[attr-defined]
    with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


def test_bridged_turn_sends_the_conversation_as_messages(mixed: OpenAI, chat: tuple[FakeChat, str]) -> None:
    conv = mixed.conversations.create(items=[{"type": "message", "role": "user", "content": "earlier"}])
    r = mixed.responses.create(model="ds", input="now", conversation=conv.id)
    assert r.conversation is not None and r.conversation.id == conv.id
    messages = chat[0].requests[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [("user", "earlier"), ("user", "now")]
    items = list(mixed.conversations.items.list(conv.id, order="asc"))
    assert [getattr(i, "role", None) for i in items] == ["user", "user", "assistant"]


def test_native_turn_expands_the_conversation_into_input(mixed: OpenAI, native: FakeOpenAI) -> None:
    conv = mixed.conversations.create()
    mixed.responses.create(model="mock/recall", input="on the mock", conversation=conv.id)
    r = mixed.responses.create(model="gpt-4o", input="on openai", conversation=conv.id)
    sent = [q for q in native.requests if q.method == "POST"][-1].body
    assert "conversation" not in sent
    assert [i["type"] for i in sent["input"]] == ["message", "message", "message"]
    assert r.conversation is not None and r.conversation.id == conv.id
    assert mixed.responses.retrieve(r.id).conversation.id == conv.id  # type: ignore[union-attr]
    third = mixed.responses.create(model="mock/recall", input="back", conversation=conv.id)
    assert third.output_text == "on the mock | on openai | back"
    assert len(list(mixed.conversations.items.list(conv.id))) == 6


def test_native_stream_in_a_conversation(start_proxy: ProxyFactory, native: FakeOpenAI) -> None:
    server = start_proxy(_models("http://127.0.0.1:9", native.url))  # type: ignore[attr-defined]
    conv = httpx.post(server.url + "/v1/conversations", headers=AUTH, json={}).json()
    events = post_stream(server.url, MASTER_KEY, {"model": "gpt-4o", "input": "hi",
                                                  "conversation": {"id": conv["id"]}})
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["conversation"] == {"id": conv["id"]}
    listed = httpx.get(server.url + f"/v1/conversations/{conv['id']}/items", headers=AUTH).json()
    assert [i["role"] for i in listed["data"]] == ["assistant", "user"]


# -- truncation of a replayed history --------------------------------------------------------------------

WINDOWED = """
model_list:
  - model_name: small
    litellm_params: {model: mock/recall}
    model_info: {max_input_tokens: 10}
  - model_name: mock/recall
    litellm_params: {model: mock/recall}
"""


@pytest.fixture
def windowed(start_proxy: ProxyFactory) -> Iterator[OpenAI]:
    server = start_proxy(WINDOWED)
    with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


def test_history_over_the_window_is_refused_unless_truncation_is_auto(windowed: OpenAI) -> None:
    a, b = "a" * 16, "b" * 16  # 4 estimated tokens each (ceil(chars / 4))
    first = windowed.responses.create(model="small", input=a)  # 4 in, 4 out: fits
    assert first.output_text == a
    with pytest.raises(openai.BadRequestError) as e:
        windowed.responses.create(model="small", input=b, previous_response_id=first.id)  # 12 > 10
    assert e.value.code == "context_length_exceeded"
    r = windowed.responses.create(model="small", input=b, previous_response_id=first.id, truncation="auto")
    assert r.output_text == b  # the oldest item (the first user message) was dropped
    assert r.truncation == "auto"
    # The same history through a model without a window is sent whole.
    whole = windowed.responses.create(model="mock/recall", input=b, previous_response_id=first.id)
    assert whole.output_text == f"{a} | {b}"


def test_truncation_applies_to_a_conversation_and_never_drops_this_turn(windowed: OpenAI) -> None:
    conv = windowed.conversations.create(items=[{"type": "message", "role": "user", "content": c * 16}
                                                for c in "xyz"])
    r = windowed.responses.create(model="small", input="q" * 16, conversation=conv.id, truncation="auto")
    assert r.output_text == f"{'z' * 16} | {'q' * 16}"
    with pytest.raises(openai.BadRequestError) as e:
        windowed.responses.create(model="small", input="w" * 60, conversation=conv.id, truncation="auto")
    assert e.value.code == "context_length_exceeded"


def test_input_tokens_read_the_conversation(client: OpenAI) -> None:
    conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "seed words here"}])
    client.responses.create(model="mock/recall", input="one", conversation=conv.id)
    alone = client.responses.input_tokens.count(model="mock/recall", input="next")
    within = client.responses.input_tokens.count(model="mock/recall", input="next", conversation=conv.id)
    assert within.input_tokens > alone.input_tokens


def test_native_input_tokens_get_the_conversation_as_input(mixed: OpenAI, native: FakeOpenAI) -> None:
    conv = mixed.conversations.create(items=[{"type": "message", "role": "user", "content": "seed"}])
    mixed.responses.input_tokens.count(model="gpt-4o", input="more", conversation=conv.id)
    sent = [q for q in native.requests if q.method == "POST"][-1].body
    assert "conversation" not in sent and [i["type"] for i in sent["input"]] == ["message", "message"]


def test_native_background_turn_joins_the_conversation_when_it_finishes(mixed: OpenAI, native: FakeOpenAI) -> None:
    native.background_seconds = 0.2
    conv = mixed.conversations.create(items=[{"type": "message", "role": "user", "content": "seed"}])
    queued = mixed.responses.create(model="gpt-4o", input="later", conversation=conv.id, background=True)
    assert queued.status in ("queued", "in_progress")
    assert len(list(mixed.conversations.items.list(conv.id))) == 1  # not yet: the upstream is still at it
    deadline = time.monotonic() + 10
    while (got := mixed.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert got.status == "completed" and got.conversation is not None and got.conversation.id == conv.id
    items = list(mixed.conversations.items.list(conv.id, order="asc"))
    assert [getattr(i, "role", None) for i in items] == ["user", "user", "assistant"]
    mixed.responses.retrieve(queued.id)  # a later read appends nothing more
    assert len(list(mixed.conversations.items.list(conv.id))) == 3
