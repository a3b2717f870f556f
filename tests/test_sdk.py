"""The SDK: LiteLLM's function names, the official openai types back, sync and async, mock and native."""

from __future__ import annotations

from collections.abc import Iterator

import pydantic
import pytest
from openai.types.responses import Response

import respgate
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from grammar import check_stream
from respgate import Client

UPSTREAM_KEY = "sk-sdk-upstream"


@pytest.fixture
def client() -> Iterator[Client]:
    c = Client()
    yield c
    c.close()


@pytest.fixture
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    f = FakeOpenAI(api_key=UPSTREAM_KEY, azure_api_version="2025-03-01-preview")
    with ServerThread(f.app) as server:
        yield f, server.url


def test_create_returns_openai_response(client: Client) -> None:
    r = client.responses(model="mock/echo", input="hello sdk")
    assert isinstance(r, Response)
    assert r.output_text == "hello sdk" and r.status == "completed"


def test_sync_stream_yields_typed_events_and_closes_early(client: Client) -> None:
    events = list(client.responses(model="mock/echo", input="a b c d", stream=True))
    check_stream([e.model_dump(mode="json", exclude_unset=True) for e in events])
    assert events[-1].type == "response.completed"
    stream = client.responses(model="mock/echo", input="w " * 50, stream=True)
    for event in stream:
        if event.type == "response.output_text.delta":
            break
    stream.close()  # stops the generator on the SDK's loop; a second close is harmless
    stream.close()


async def test_async_create_and_stream(client: Client) -> None:
    r = await client.aresponses(model="mock/echo", input="async hi")
    assert r.output_text == "async hi"
    stream = await client.aresponses(model="mock/echo", input="async stream", stream=True)
    types = [e.type async for e in stream]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    got = await client.aget_responses(r.id)
    assert got.id == r.id
    items = await client.alist_input_items(r.id)
    assert items.data[0].type == "message"
    assert (await client.adelete_responses(r.id))["deleted"] is True


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_text_format_fills_output_parsed(client: Client) -> None:
    r = client.responses(model="mock/echo", input='{"name": "Ada", "age": 36}', text_format=Person)
    assert r.output_parsed == Person(name="Ada", age=36)


def test_stored_response_functions(client: Client) -> None:
    first = client.responses(model="mock/recall", input="one")
    second = client.responses(model="mock/recall", input="two", previous_response_id=first.id)
    assert second.output_text == "one | two"
    assert client.get_responses(second.id).output_text == "one | two"
    assert [i.id for i in client.list_input_items(second.id).data]
    compacted = client.compact_responses(model="mock/echo", previous_response_id=second.id)
    assert compacted.object == "response.compaction"
    client.delete_responses(first.id)
    with pytest.raises(respgate.NotFoundError):
        client.get_responses(first.id)
    with pytest.raises(respgate.InvalidRequestError):
        client.cancel_responses(second.id)  # not a background response


def test_module_level_functions(fake: tuple[FakeOpenAI, str]) -> None:
    r = respgate.responses(model="mock/echo", input="module level")
    assert respgate.get_responses(r.id).output_text == "module level"
    assert respgate.delete_responses(r.id)["deleted"] is True


def test_native_openai_with_arguments_and_from_a_new_client(fake: tuple[FakeOpenAI, str]) -> None:
    f, url = fake
    with_keys = {"api_key": UPSTREAM_KEY, "api_base": url + "/v1"}
    a = Client()
    r = a.responses(model="openai/gpt-4o", input="native", **with_keys)
    assert r.output_text == "Echo: native" and r.model == "openai/gpt-4o"
    assert f.requests[-1].body["model"] == "gpt-4o"
    a.close()
    b = Client()  # another process, in effect: the id alone leads back to the upstream
    got = b.get_responses(r.id, **with_keys)
    assert got.id == r.id and got.output_text == "Echo: native"
    assert b.list_input_items(r.id, **with_keys).data
    assert b.delete_responses(r.id, **with_keys)["deleted"] is True
    assert not f.responses
    b.close()


def test_native_keys_from_environment(fake: tuple[FakeOpenAI, str], monkeypatch: pytest.MonkeyPatch) -> None:
    f, url = fake
    monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", url + "/v1")
    monkeypatch.setenv("AZURE_API_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("AZURE_API_BASE", url)
    monkeypatch.setenv("AZURE_API_VERSION", "2025-03-01-preview")
    c = Client()
    try:
        assert c.responses(model="openai/gpt-4o", input="env").output_text == "Echo: env"
        events = list(c.responses(model="azure/my-deploy", input="azure env", stream=True))
        assert events[-1].type == "response.completed"
        assert f.requests[-1].headers["api-key"] == UPSTREAM_KEY
    finally:
        c.close()


def test_errors_are_respgate_errors(client: Client, fake: tuple[FakeOpenAI, str]) -> None:
    with pytest.raises(respgate.InvalidRequestError) as e:
        client.responses(model="nowhere/model", input="x")
    assert e.value.param == "model"
    with pytest.raises(respgate.InvalidRequestError) as e:
        client.responses(model="mock/echo", input="x", temperature="hot")
    assert e.value.param == "temperature"
    _, url = fake
    with pytest.raises(respgate.UpstreamError) as u:
        client.responses(model="openai/gpt-4o", input="x", api_key=UPSTREAM_KEY, api_base=url + "/v1", bogus=1)
    assert u.value.status == 400 and u.value.param == "bogus"


def test_client_with_config_routes_model_groups(tmp_path: object) -> None:
    from respgate.config import load_config

    c = Client(config=load_config(None))
    try:
        assert c.responses(model="mock/echo", input="configured").output_text == "configured"
    finally:
        c.close()
