"""The key manager on its own: verification and its cache, model access, budgets and their periods,
rpm / tpm / parallel limits, spend written in batches (memory storage, a settable clock)."""

from __future__ import annotations

import pytest

from respgate.calls import Call
from respgate.errors import AuthenticationError, InvalidRequestError, PermissionDeniedError, RateLimitError
from respgate.keys.storage import MemoryStorage, get
from respgate.keys.tokens import hash_token, owner_of
from test_keys_helpers import ADMIN, Clock, admin, call, finish, manager, new_key


async def test_a_generated_key_verifies_to_its_principal_and_only_its_hash_is_stored() -> None:
    storage = MemoryStorage()
    m = manager(storage)
    generated = await admin(m).generate_key({"key_alias": "alpha", "models": ["mock/echo"]}, ADMIN)
    key = generated["key"]
    assert key.startswith("sk-") and generated["token"] == hash_token(key) == generated["token_id"]
    assert generated["key_name"] == f"sk-...{key[-4:]}" and generated["key_alias"] == "alpha"
    principal = await m.verify(key)
    assert principal.token == hash_token(key) and principal.owner == owner_of(key)
    assert principal.key_alias == "alpha" and principal.models == frozenset({"mock/echo"})
    assert not principal.is_admin
    assert key not in repr(storage._rows)  # the plain key is nowhere in what is stored


async def test_an_unknown_key_is_refused_in_litellms_words() -> None:
    m = manager()
    with pytest.raises(AuthenticationError) as refused:
        await m.verify("sk-not-a-key-0000")
    assert refused.value.status == 401 and refused.value.type == "token_not_found_in_db"
    assert "sk-not-a-key-0000" not in refused.value.message and "sk-...0000" in refused.value.message


async def test_a_deleted_key_is_refused_though_its_hash_was_remembered() -> None:
    m = manager()
    key = await new_key(m)
    await m.verify(key)
    await m.verify(key)  # the second time from the remembered hash
    await admin(m).delete_keys({"keys": [key]})
    with pytest.raises(AuthenticationError):
        await m.verify(key)
    for i in range(50):  # keys that do not exist are not remembered
        with pytest.raises(AuthenticationError):
            await m.verify(f"sk-not-a-key-{i:04d}")
    assert list(m._hashed) == [key]


async def test_an_expired_key_is_refused() -> None:
    clock = Clock()
    m = manager(clock=clock)
    key = await new_key(m, duration="30s")
    await m.verify(key)
    clock.advance(31)
    with pytest.raises(AuthenticationError) as refused:
        await m.verify(key)
    assert refused.value.type == "expired_key" and "Expired Key" in refused.value.message


async def test_a_blocked_key_and_a_blocked_teams_key_are_refused_at_once() -> None:
    m = manager()
    key = await new_key(m)
    await m.verify(key)
    await admin(m).block_key({"key": key}, True)
    with pytest.raises(AuthenticationError, match="Key is blocked"):
        await m.verify(key)
    await admin(m).block_key({"key": key}, False)
    await m.verify(key)
    team = await admin(m).new_team({"team_alias": "t"})
    team_key = await new_key(m, team_id=team["team_id"])
    await m.verify(team_key)
    await admin(m).block_team({"team_id": team["team_id"]}, True)
    with pytest.raises(AuthenticationError, match=f"Team={team['team_id']} is blocked"):
        await m.verify(team_key)


async def test_a_change_made_elsewhere_applies_within_the_cache_ttl() -> None:
    """Another instance deletes the key in the shared storage: this one trusts its cache for at most
    `cache_ttl` seconds."""
    clock = Clock()
    storage = MemoryStorage()
    here, there = manager(storage, clock, ttl=2.0), manager(storage, clock, ttl=2.0)
    key = await new_key(here)
    await here.verify(key)
    await admin(there).delete_keys({"keys": [key]})
    await here.verify(key)  # still cached
    clock.advance(2.0)
    with pytest.raises(AuthenticationError):
        await here.verify(key)


async def test_the_background_refresh_rereads_keys_in_use_before_they_expire() -> None:
    clock = Clock()
    storage = MemoryStorage()
    here, there = manager(storage, clock, ttl=2.0), manager(storage, clock, ttl=2.0)
    key = await new_key(here, rpm_limit=100)
    await here.verify(key)
    await admin(there).update_key({"key": key, "rpm_limit": 1})
    clock.advance(1.0)
    await here.maintain()  # used and half-way to expiry: re-read in the background
    loaded = storage.get_many  # no I/O from here on: the refreshed grant is used
    storage.get_many = None  # type: ignore[assignment]
    c = await call(here, key)
    await finish(here, c)
    with pytest.raises(RateLimitError):
        await call(here, key)
    storage.get_many = loaded  # type: ignore[method-assign]


async def test_model_access_follows_key_team_access_groups_and_wildcards() -> None:
    m = manager(groups={"mock/echo": frozenset({"beta"}), "mock/recall": frozenset()})
    key = await new_key(m, models=["mock/echo"])
    await call(m, key, {"model": "mock/echo"})
    with pytest.raises(AuthenticationError) as refused:
        await call(m, key, {"model": "mock/recall"})
    assert refused.value.status == 401 and refused.value.param == "model"
    assert refused.value.type == "key_model_access_denied"
    assert refused.value.message == ("key not allowed to access model. This key can only access "
                                     "models=['mock/echo']. Tried to access mock/recall")
    await call(m, await new_key(m, models=["beta"]), {"model": "mock/echo"})
    await call(m, await new_key(m, models=["mock/*"]), {"model": "mock/recall"})
    await call(m, await new_key(m, models=["all-proxy-models"]), {"model": "mock/recall"})
    team = await admin(m).new_team({"models": ["mock/recall"]})
    team_key = await new_key(m, team_id=team["team_id"], models=["all-team-models"])
    await call(m, team_key, {"model": "mock/recall"})
    with pytest.raises(AuthenticationError) as refused:
        await call(m, team_key, {"model": "mock/echo"})
    assert refused.value.type == "team_model_access_denied"


@pytest.mark.parametrize("level", ["key", "team", "user", "customer"])
async def test_a_budget_spent_refuses_the_next_call_with_litellms_status(level: str) -> None:
    m = manager()
    a = admin(m)
    fields: dict[str, object] = {}
    body = {"model": "mock/echo", "input": "hi"}
    if level == "key":
        fields["max_budget"] = 1.0
    elif level == "team":
        fields["team_id"] = (await a.new_team({"team_id": "t-budget", "max_budget": 1.0}))["team_id"]
    elif level == "user":
        await a.new_user({"user_id": "u-budget", "max_budget": 1.0, "auto_create_key": False}, ADMIN)
        fields["user_id"] = "u-budget"
    else:
        await a.new_customer({"user_id": "c-budget", "max_budget": 1.0})
        body["user"] = "c-budget"
    key = await new_key(m, **fields)
    first = await call(m, key, body)
    await finish(m, first, cost=0.6)
    second = await call(m, key, body)
    await finish(m, second, cost=0.6)
    with pytest.raises(InvalidRequestError) as refused:
        await call(m, key, body)
    err = refused.value
    assert err.status == 400 and err.type == "budget_exceeded"
    expected = {
        "key": "Budget has been exceeded! Current cost: 1.2, Max budget: 1.0",
        "team": "Budget has been exceeded! Team=t-budget Current cost: 1.2, Max budget: 1.0",
        "user": "ExceededBudget: User=u-budget over budget. Spend=1.2, Budget=1.0",
        "customer": "ExceededBudget: End User=c-budget over budget. Spend=1.2, Budget=1.0",
    }[level]
    assert err.message == expected


async def test_a_customer_budget_applies_to_the_master_key_too_and_safety_identifier_names_it() -> None:
    m = manager()
    await admin(m).new_customer({"user_id": "end-1", "max_budget": 0.5})
    c = await call(m, None, {"model": "mock/echo", "safety_identifier": "end-1"})
    await finish(m, c, cost=0.5)
    with pytest.raises(InvalidRequestError, match="End User=end-1"):
        await call(m, None, {"model": "mock/echo", "user": "end-1"})
    await call(m, None, {"model": "mock/echo", "user": "somebody-else"})  # not a customer: no limits


async def test_a_blocked_customer_is_refused() -> None:
    m = manager()
    await admin(m).block_customers({"user_ids": ["bad-actor"]}, True)
    with pytest.raises(PermissionDeniedError, match="End User=bad-actor is blocked"):
        await call(m, None, {"model": "mock/echo", "user": "bad-actor"})


async def test_a_budget_period_resets_and_the_database_follows() -> None:
    clock = Clock()
    storage = MemoryStorage()
    m = manager(storage, clock)
    key = await new_key(m, max_budget=1.0, budget_duration="30s")
    c = await call(m, key)
    await finish(m, c, cost=1.0)
    with pytest.raises(InvalidRequestError):
        await call(m, key)
    clock.advance(30)
    c = await call(m, key)  # a new period
    await finish(m, c, cost=0.25)
    await m.flush()
    stored = await get(storage, "key", hash_token(key))
    assert stored is not None and stored.spend == 0.25
    assert stored.budget_reset_at == pytest.approx(clock.now + 30)
    info = await admin(m).key_info(key, ADMIN)
    assert info["info"]["spend"] == 0.25 and info["info"]["budget_duration"] == "30s"


async def test_spend_late_for_a_period_already_reset_is_not_counted_in_the_next() -> None:
    storage = MemoryStorage()
    clock = Clock()
    m = manager(storage, clock)
    key = await new_key(m, budget_duration="1m")
    c = await call(m, key)
    await finish(m, c, cost=2.0)  # pending, not yet written
    token = hash_token(key)
    row = await get(storage, "key", token)
    assert row is not None and row.budget_reset_at is not None
    await storage.reset_budget("key", token, row.budget_reset_at, row.budget_reset_at + 60)  # another instance
    await m.flush()
    after = await get(storage, "key", token)
    assert after is not None and after.spend == 0.0


async def test_rpm_limit_refuses_with_retry_after_until_the_next_minute() -> None:
    clock = Clock()
    m = manager(clock=clock)
    key = await new_key(m, rpm_limit=2)
    for _ in range(2):
        await finish(m, await call(m, key))
    clock.advance(15)
    with pytest.raises(RateLimitError) as refused:
        await call(m, key)
    err = refused.value
    assert err.status == 429 and err.headers["retry-after"] == "45"
    assert "Limit type: requests" in err.message and "Current limit: 2" in err.message
    clock.advance(45)
    await call(m, key)


async def test_tpm_limit_counts_the_tokens_of_finished_calls() -> None:
    m = manager()
    key = await new_key(m, tpm_limit=100)
    await finish(m, await call(m, key), tokens=60)
    await finish(m, await call(m, key), tokens=60)
    with pytest.raises(RateLimitError, match="Limit type: tokens"):
        await call(m, key)


async def test_max_parallel_requests_holds_a_slot_until_post_call() -> None:
    m = manager()
    team = await admin(m).new_team({"max_parallel_requests": 2})
    key = await new_key(m, max_parallel_requests=1, team_id=team["team_id"])
    other = await new_key(m, team_id=team["team_id"])
    first = await call(m, key)
    with pytest.raises(RateLimitError) as refused:
        await call(m, key)
    assert refused.value.headers["retry-after"] == "1" and "max_parallel_requests" in refused.value.message
    held = await call(m, other)  # the team allows two
    with pytest.raises(RateLimitError, match="for team"):
        await call(m, other)
    await finish(m, first)
    await finish(m, held)
    await call(m, key)


async def test_post_call_gives_back_only_a_slot_that_pre_call_took() -> None:
    m = manager()
    key = await new_key(m, max_parallel_requests=1)
    principal = await m.verify(key)
    refused = Call(principal, {"model": "mock/other"})  # refused before a slot was taken
    await finish(m, refused)
    held = await call(m, key)
    with pytest.raises(RateLimitError):
        await call(m, key)
    await finish(m, held)
    await finish(m, held)  # twice: still one slot given back
    await call(m, key)
    with pytest.raises(RateLimitError):
        await call(m, key)


async def test_spend_is_written_in_batches_and_adds_up_across_instances() -> None:
    storage = MemoryStorage()
    clock = Clock()
    one, two = manager(storage, clock), manager(storage, clock)
    team = await admin(one).new_team({"team_id": "shared-team"})
    key_one = await new_key(one, team_id=team["team_id"])
    key_two = await new_key(two, team_id=team["team_id"])
    for _ in range(10):
        await finish(one, await call(one, key_one), cost=0.01)
        await finish(two, await call(two, key_two), cost=0.02)
    await one.flush()
    await two.flush()
    stored = await get(storage, "team", "shared-team")
    assert stored is not None and stored.spend == pytest.approx(0.3)
    info = await admin(one).team_info("shared-team", ADMIN)
    assert info["team_info"]["spend"] == pytest.approx(0.3)
    assert {k["token"] for k in info["keys"]} == {hash_token(key_one), hash_token(key_two)}


async def test_a_team_with_share_responses_owns_its_keys_responses() -> None:
    m = manager()
    shared = await admin(m).new_team({"metadata": {"share_responses": True}})
    alone = await admin(m).new_team({})
    a, b = await new_key(m, team_id=shared["team_id"]), await new_key(m, team_id=shared["team_id"])
    c = await new_key(m, team_id=alone["team_id"])
    assert (await m.verify(a)).owner == (await m.verify(b)).owner == f"team:{shared['team_id']}"
    assert (await m.verify(c)).owner == owner_of(c)


async def test_a_proxy_admin_users_key_is_an_admin_and_regenerate_keeps_the_owner() -> None:
    m = manager()
    created = await admin(m).new_user({"user_role": "proxy_admin", "user_email": "ops@example.com"}, ADMIN)
    assert (await m.verify(created["key"])).is_admin
    key = await new_key(m, max_budget=3.0)
    owner = (await m.verify(key)).owner
    regenerated = await admin(m).regenerate_key(key, {})
    with pytest.raises(AuthenticationError):
        await m.verify(key)
    principal = await m.verify(regenerated["key"])
    assert principal.owner == owner and regenerated["max_budget"] == 3.0
