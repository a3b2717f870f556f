"""A key sees only what it owns: another owner's responses are 404, its chains 400, on every route."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from respgate.calls import Principal
from respgate.config import Config
from respgate.deployments import Deployment
from respgate.errors import InvalidRequestError, NotFoundError
from respgate.gateway import Gateway
from respgate.store.memory import MemoryStore

ALICE, BOB = Principal("alice"), Principal("bob")


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    config = Config.empty()
    config = Config(deployments=[Deployment("m", "mock", "recall")], router_settings={},
                    general=config.general, litellm_settings=config.litellm_settings, source="test")
    gw = Gateway(config, MemoryStore())
    await gw.start()
    yield gw
    await gw.close()


async def test_other_owner_gets_not_found_everywhere(gateway: Gateway) -> None:
    r = orjson.loads(await gateway.create({"model": "m", "input": "alice's"}, ALICE))
    assert (await gateway.retrieve(r["id"], ALICE))["id"] == r["id"]
    for call in (gateway.retrieve(r["id"], BOB), gateway.delete(r["id"], BOB),
                 gateway.input_items(r["id"], BOB), gateway.cancel(r["id"], BOB),
                 gateway.retrieve_stream(r["id"], BOB, None)):
        with pytest.raises(NotFoundError):
            await call
    with pytest.raises(InvalidRequestError) as e:
        await gateway.create({"model": "m", "input": "x", "previous_response_id": r["id"]}, BOB)
    assert e.value.param == "previous_response_id"
    # and nothing of Alice's was touched
    follow = orjson.loads(await gateway.create(
        {"model": "m", "input": "more", "previous_response_id": r["id"]}, ALICE))
    assert follow["output"][0]["content"][0]["text"] == "alice's | more"
