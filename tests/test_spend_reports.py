"""What /spend/logs and the spend reports answer for a given caller (the route logic, without HTTP):
visibility for admins and for keys, LiteLLM's shapes, our /spend/report groupings, bad parameters -> 400."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from respgate.calls import Principal
from respgate.errors import InvalidRequestError
from respgate.spend import SpendTracker, reports
from respgate.spend.backends import MemorySpendLog
from test_spend import ADMIN, ALICE, BOB, DAY2, OTHER, OTHER_CALL, PRICED_CALL, make_call, seed


@pytest.fixture
async def tracker() -> AsyncIterator[SpendTracker]:
    t = SpendTracker(MemorySpendLog(), flush_interval=3600)  # reports must flush what is pending themselves
    await t.start()
    await seed(t)
    yield t
    await t.close()


def keys_of(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(r["api_key"] for r in rows)


# -- /spend/logs ------------------------------------------------------------------------------------

async def test_admin_sees_every_row(tracker: SpendTracker) -> None:
    rows = await reports.spend_logs(tracker, ADMIN, {})
    assert keys_of(rows) == ["tok-a", "tok-a", "tok-a", "tok-b"]
    assert keys_of(await reports.spend_logs(tracker, ADMIN, {"api_key": "tok-b"})) == ["tok-b"]
    assert len(await reports.spend_logs(tracker, ADMIN, {"user_id": "alice"})) == 3


async def test_a_key_sees_only_its_own_rows(tracker: SpendTracker) -> None:
    assert keys_of(await reports.spend_logs(tracker, ALICE, {})) == ["tok-a"] * 3
    assert keys_of(await reports.spend_logs(tracker, BOB, {})) == ["tok-b"]
    assert await reports.spend_logs(tracker, BOB, {"api_key": "tok-a"}) == []
    assert await reports.spend_logs(tracker, BOB, {"user_id": "alice"}) == []  # filters narrow, never widen
    assert await reports.spend_logs(tracker, Principal(""), {}) == []


async def test_a_raw_key_in_the_query_is_hashed(tracker: SpendTracker) -> None:
    rows = await reports.spend_logs(tracker, ADMIN, {"api_key": "sk-alice"}, hash_key=lambda k: "tok-a")
    assert keys_of(rows) == ["tok-a"] * 3


async def test_log_rows_in_litellm_shape(tracker: SpendTracker) -> None:
    call = make_call(ALICE, stream=True, body={"user": "e9"})
    await tracker.post_call(call)
    [row] = await reports.spend_logs(tracker, ADMIN, {"request_id": call.request_id})
    assert row["request_id"] == call.request_id and row["call_type"] == "aresponses"
    assert row["api_key"] == "tok-a" and row["user"] == "alice" and row["team_id"] == "team-1"
    assert row["end_user"] == "e9" and row["model_group"] == "priced" and row["model"] == "echo"
    assert row["spend"] == pytest.approx(PRICED_CALL) and row["status"] == "success"
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (100, 50, 150)
    assert row["startTime"].endswith("Z") and row["startTime"] < row["completionStartTime"] < row["endTime"]
    assert row["metadata"]["user_api_key_alias"] == "alice-key"
    assert row["response_id"] == call.response_id and row["time_to_first_token_ms"] == pytest.approx(50.0)


async def test_logs_for_a_date_range_are_summarised_per_day(tracker: SpendTracker) -> None:
    q = {"start_date": "2025-03-01", "end_date": "2025-03-03"}
    days = await reports.spend_logs(tracker, ADMIN, q)
    assert [d["startTime"] for d in days] == ["2025-03-01", "2025-03-02", "2025-03-03"]
    assert days[0]["spend"] == pytest.approx(2 * PRICED_CALL) and days[0]["tok-a"] == pytest.approx(2 * PRICED_CALL)
    assert days[1]["users"] == {"alice": pytest.approx(OTHER_CALL), "bob": pytest.approx(PRICED_CALL)}
    assert days[1]["models"] == {"echo": pytest.approx(OTHER_CALL + PRICED_CALL)}
    assert days[2] == {"startTime": "2025-03-03", "spend": 0.0, "users": {}, "models": {}}
    rows = await reports.spend_logs(tracker, ADMIN, {**q, "summarize": "false"})
    assert len(rows) == 4
    assert len(await reports.spend_logs(tracker, ADMIN, {"start_date": "2025-03-02", "summarize": "false"})) == 2
    assert len(await reports.spend_logs(tracker, ADMIN, {"end_date": "2025-03-01"})) == 2  # the whole end day


async def test_limit(tracker: SpendTracker) -> None:
    assert len(await reports.spend_logs(tracker, ADMIN, {"limit": "2"})) == 2


@pytest.mark.parametrize(("query", "param"), [
    ({"start_date": "yesterday"}, "start_date"), ({"end_date": "2025-13-01"}, "end_date"),
    ({"start_date": "2025-03-02", "end_date": "2025-03-01"}, "end_date"), ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "limit"), ({"summarize": "maybe"}, "summarize"),
])
async def test_bad_parameters_are_400s_naming_them(tracker: SpendTracker, query: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await reports.spend_logs(tracker, ADMIN, query)
    assert err.value.param == param and err.value.status == 400


# -- /global/spend/report ---------------------------------------------------------------------------

RANGE = {"start_date": "2025-03-01", "end_date": "2025-03-02"}


async def test_global_report_by_team(tracker: SpendTracker) -> None:
    days = await reports.global_report(tracker, RANGE)
    assert [d["group_by_day"] for d in days] == ["2025-03-01", "2025-03-02"]
    day2 = {t["team_name"]: t for t in days[1]["teams"]}
    assert day2.keys() == {"team-1", "team-2"}
    assert day2["team-1"]["total_spend"] == pytest.approx(OTHER_CALL)
    assert day2["team-2"]["metadata"] == [{"model": "echo", "api_key": "tok-b", "spend": pytest.approx(PRICED_CALL),
                                           "total_tokens": 150}]


async def test_global_report_by_customer(tracker: SpendTracker) -> None:
    days = await reports.global_report(tracker, {**RANGE, "group_by": "customer"})
    assert {c["customer"]: c["total_spend"] for c in days[0]["customers"]} == {"e1": pytest.approx(2 * PRICED_CALL)}
    assert {c["customer"] for c in days[1]["customers"]} == {None, "e2"}


async def test_global_report_by_api_key(tracker: SpendTracker) -> None:
    keys = await reports.global_report(tracker, {**RANGE, "group_by": "api_key"})
    assert [k["api_key"] for k in keys] == ["tok-a", "tok-b"]
    assert keys[0]["total_cost"] == pytest.approx(2 * PRICED_CALL + OTHER_CALL)
    assert (keys[0]["total_input_tokens"], keys[0]["total_output_tokens"]) == (300, 150)
    assert keys[0]["model_details"][0]["model"] == "echo"
    only_bob = await reports.global_report(tracker, {**RANGE, "api_key": "tok-b"})
    assert [k["api_key"] for k in only_bob] == ["tok-b"]


async def test_global_report_needs_dates_and_a_known_grouping(tracker: SpendTracker) -> None:
    with pytest.raises(InvalidRequestError, match="start_date and end_date"):
        await reports.global_report(tracker, {"start_date": "2025-03-01"})
    with pytest.raises(InvalidRequestError) as err:
        await reports.global_report(tracker, {**RANGE, "group_by": "planet"})
    assert err.value.param == "group_by"


# -- the last-30-days views ---------------------------------------------------------------------------

async def recent(tracker: SpendTracker) -> None:
    for call in (make_call(ALICE), make_call(ALICE, OTHER), make_call(BOB, body={"user": "e5"})):
        await tracker.post_call(call)


async def test_top_keys_models_teams_end_users_and_total(tracker: SpendTracker) -> None:
    await recent(tracker)  # the seeded rows are from 2025: older than 30 days, left out
    keys = await reports.top_keys(tracker, {})
    assert [(k["api_key"], k["key_alias"]) for k in keys] == [("tok-a", "alice-key"), ("tok-b", "bob-key")]
    assert keys[0]["total_spend"] == pytest.approx(PRICED_CALL + OTHER_CALL)
    assert len(await reports.top_keys(tracker, {"limit": "1"})) == 1
    models = await reports.top_models(tracker, {})
    assert [m["model"] for m in models] == ["echo"] and models[0]["total_spend"] == pytest.approx(
        2 * PRICED_CALL + OTHER_CALL)
    teams = await reports.teams_daily(tracker)
    assert teams["teams"] == ["team-1", "team-2"] and len(teams["daily_spend"]) == 1
    assert teams["total_spend_per_team"][0] == {"team_id": "team-1", "total_spend": pytest.approx(
        PRICED_CALL + OTHER_CALL)}
    users = await reports.end_users(tracker, {})
    assert {u["end_user"]: u["total_count"] for u in users} == {None: 2, "e5": 1}
    assert await reports.end_users(tracker, {"api_key": "tok-b"}) == [
        {"end_user": "e5", "total_count": 1, "total_spend": pytest.approx(PRICED_CALL)}]
    old = await reports.end_users(tracker, {"startTime": "2025-01-01", "endTime": "2025-03-02"})
    assert {u["end_user"]: u["total_count"] for u in old} == {"e1": 2}
    assert (await reports.global_spend(tracker))["spend"] == pytest.approx(2 * PRICED_CALL + OTHER_CALL)


# -- /spend/report (ours) ---------------------------------------------------------------------------

@pytest.mark.parametrize(("group_by", "fields", "n"), [
    ("key", ["api_key"], 2), ("team", ["team_id"], 2), ("user", ["user_id"], 2), ("end_user", ["end_user"], 3),
    ("model", ["model"], 2), ("day", ["day"], 2), ("model,day", ["model", "day"], 3),
    ("deployment,provider", ["deployment_id", "provider"], 2), ("upstream_model", ["upstream_model"], 1),
])
async def test_spend_report_groupings(tracker: SpendTracker, group_by: str, fields: list[str], n: int) -> None:
    out = await reports.spend_report(tracker, ADMIN, {"group_by": group_by})
    assert out["object"] == "list" and out["group_by"] == fields and len(out["data"]) == n
    for g in out["data"]:
        assert set(fields) <= g.keys() and {"requests", "spend", "input_tokens", "total_tokens"} <= g.keys()
    assert sum(g["requests"] for g in out["data"]) == 4


async def test_spend_report_by_model_and_day(tracker: SpendTracker) -> None:
    out = await reports.spend_report(tracker, ADMIN, {"group_by": "model,day", "start_date": "2025-03-02"})
    got = {(g["model"], g["day"]): (g["requests"], g["spend"]) for g in out["data"]}
    assert got == {("priced", "2025-03-02"): (1, pytest.approx(PRICED_CALL)),
                   ("other", "2025-03-02"): (1, pytest.approx(OTHER_CALL))}


async def test_spend_report_for_a_key_is_its_own(tracker: SpendTracker) -> None:
    out = await reports.spend_report(tracker, BOB, {"group_by": "key"})
    assert [g["api_key"] for g in out["data"]] == ["tok-b"]
    assert (await reports.spend_report(tracker, BOB, {"group_by": "key", "api_key": "tok-a"}))["data"] == []


async def test_spend_report_rejects_unknown_groups(tracker: SpendTracker) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await reports.spend_report(tracker, ADMIN, {"group_by": "model,colour"})
    assert err.value.param == "group_by" and "colour" in err.value.message


async def test_reports_see_calls_still_waiting_for_the_writer(tracker: SpendTracker) -> None:
    await tracker.post_call(make_call(BOB, at=DAY2))
    assert tracker.pending >= 1
    out = await reports.spend_report(tracker, ADMIN, {"group_by": "key", "start_date": "2025-03-02",
                                                      "end_date": "2025-03-02"})
    assert {g["api_key"]: g["requests"] for g in out["data"]} == {"tok-a": 1, "tok-b": 2}
