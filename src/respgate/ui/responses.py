"""Stored responses as the UI shows them: a filtered list, and one response in full with its chain.

A response's page comes from the store alone, its cost priced from its usage (`estimated`) and its
latency from its timestamps; the spend log's own figures for each turn (cost, latency, time to first
event, request id, key alias, end user) come in a second answer (`spend`), so the page never waits
on the spend log's thread, which a long report may hold. A turn's row is found by `response_id` among
the rows of its model group that started around its `created_at` (one query per cluster of turns).
Its events are the ones stored with it (background runs), else the stream re-made from the final state
(`streaming.replay`), as a client resuming it would get them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import orjson

from ..errors import NotFoundError
from ..spend import SpendFilter, cost_of
from ..store.base import ResponseQuery, ResponseRecord, ResponseSummary
from ..streaming import replay
from .directory import Directory, Snapshot

if TYPE_CHECKING:
    from ..gateway import Gateway

CHAIN_LIMIT: Final = 200  # turns shown; a longer chain shows its newest
EVENTS_LIMIT: Final = 2_000
_BEFORE: Final = 300.0  # a spend row starts before its response's created_at by the routing and retries, at most
_AFTER: Final = 60.0  # ... and after it by an upstream clock's skew
_SPEND_ROWS: Final = 10_000


async def list_page(gateway: Gateway, directory: Directory, query: ResponseQuery) -> dict[str, Any]:
    """A page of the list, with what its filters offer (owners as labels, model groups): one answer."""
    found, more = await gateway.store.list_responses(query)
    snap = await directory.snapshot()
    data = [_summary(s, directory.label(snap, s.owner)) for s in found]
    return {"object": "list", "data": data, "has_more": more, "last_id": data[-1]["id"] if data else None,
            "owners": [{"owner": owner, "label": label} for owner, label in snap.labels.items()],
            "models": sorted({d.model_name for d in gateway.registry.deployments} | set(gateway.registry.groups()))}


def _summary(s: ResponseSummary, owner_label: str) -> dict[str, Any]:
    usage = s.usage or {}
    return {"id": s.id, "created_at": s.created_at, "model": s.model, "provider": s.provider,
            "deployment_id": s.deployment_id, "status": s.status, "background": s.background,
            "previous_response_id": s.previous_response_id, "owner": s.owner, "owner_label": owner_label,
            "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
            "total_tokens": usage.get("total_tokens")}


async def detail(gateway: Gateway, directory: Directory, response_id: str) -> dict[str, Any]:
    chain = await gateway.store.chain(response_id, CHAIN_LIMIT)
    if not chain or chain[-1].id != response_id:
        raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
    record = chain[-1]
    snap = await directory.snapshot()
    stored = await gateway.store.events(response_id)
    if stored is not None:
        events, source = [orjson.loads(raw) for raw in stored[:EVENTS_LIMIT]], "stored"
        total_events = len(stored)
    else:
        remade = replay(record.response)
        events, source, total_events = remade[:EVENTS_LIMIT], "replayed", len(remade)
    turns = [_turn(gateway, r, directory, snap) for r in chain]
    return {
        **turns[-1],
        "response": record.response,
        "input_items": record.input_items,
        "events": events,
        "events_source": source,
        "events_total": total_events,
        "chain": turns,
        "chain_complete": chain[0].previous_response_id is None,
    }


def _turn(gateway: Gateway, r: ResponseRecord, directory: Directory, snap: Snapshot) -> dict[str, Any]:
    """One response's facts, as a turn of a chain and as the head of its own page."""
    usage = r.response.get("usage")
    usage = usage if isinstance(usage, dict) else None
    deployment = gateway.registry.by_id(r.deployment_id)
    cost = cost_of(deployment, usage) if usage is not None and deployment is not None else None
    return {
        "id": r.id, "created_at": r.created_at, "model": r.model, "provider": r.provider,
        "deployment_id": r.deployment_id, "upstream_model": deployment.upstream_model if deployment else None,
        "status": r.status, "background": r.background, "previous_response_id": r.previous_response_id,
        "owner": r.owner, "owner_label": directory.label(snap, r.owner), "usage": usage,
        "cost": cost, "cost_source": "estimated" if cost is not None else None, "latency_ms": _latency_ms(r.response),
        "input_count": len(r.input_items), "output_count": len(r.response.get("output") or []),
        "error": r.response.get("error"),
    }


async def spend(gateway: Gateway, response_id: str) -> dict[str, Any]:
    """The spend log's figures for each turn of the response's chain that has a row, by response id."""
    chain = await gateway.store.chain(response_id, CHAIN_LIMIT)
    if not chain or chain[-1].id != response_id:
        raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
    rows = await spend_rows(gateway, chain)
    return {"turns": {rid: {"cost": float(row["spend"] or 0.0), "latency_ms": row["latency_ms"],
                            "ttft_ms": row["ttft_ms"], "request_id": row["request_id"],
                            "key_alias": row["key_alias"], "end_user": row["end_user"]}
                      for rid, row in rows.items()},
            "spend_logs": gateway.platform.spend is not None}


def _latency_ms(response: dict[str, Any]) -> float | None:
    done, started = response.get("completed_at"), response.get("created_at")
    if isinstance(done, int | float) and isinstance(started, int | float) and done >= started:
        return (done - started) * 1000.0
    return None


async def spend_rows(gateway: Gateway, records: Sequence[ResponseRecord]) -> dict[str, dict[str, Any]]:
    """The spend-log row of each record that has one, by response id."""
    tracker = gateway.platform.spend
    if tracker is None or not records:
        return {}
    wanted = {r.id for r in records}
    found: dict[str, dict[str, Any]] = {}
    for model, start, end in _windows(records):
        for row in await tracker.logs(SpendFilter(model_group=model, start=start, end=end), _SPEND_ROWS):
            if row["response_id"] in wanted:
                found.setdefault(row["response_id"], row)
    return found


def _windows(records: Sequence[ResponseRecord]) -> list[tuple[str, float, float]]:
    """Time windows covering the records' rows, per model group; turns close in time share one."""
    windows: list[tuple[str, float, float]] = []
    for r in sorted(records, key=lambda r: (r.model, r.created_at)):
        start, end = r.created_at - _BEFORE, r.created_at + _AFTER
        if windows and windows[-1][0] == r.model and start <= windows[-1][2]:
            windows[-1] = (r.model, windows[-1][1], max(end, windows[-1][2]))
        else:
            windows.append((r.model, start, end))
    return windows
