"""Where keys, teams, users and customers live: one table `keys_entities` in the responses' database.

`Storage` is the small interface the manager needs; `MemoryStorage` (this module), `SqliteStorage`
and `PostgresStorage` (storage_sql.py) implement it. Spend is never written as a total: it is added
(`add_spend`, in batches, tagged with the budget period it belongs to) so that several instances
adding to one row never overwrite each other, and a late addition to a period already reset is
dropped rather than counted in the next. A period is reset with a compare-and-set on its end, so
one instance wins and the others see it done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from .records import Entity, Kind, make_entity

SpendDelta = tuple[Kind, str, float, float]  # kind, id, period marker, amount


class Storage(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def get_many(self, kind: Kind, ids: Sequence[str]) -> list[Entity]: ...

    async def find(self, kind: Kind, *, team_id: str | None = None, user_id: str | None = None,
                   alias: str | None = None, offset: int = 0, limit: int | None = None) -> tuple[list[Entity], int]:
        """Entities of a kind in creation order, filtered; and how many match in all."""
        ...

    async def insert(self, entity: Entity) -> bool:
        """False when the id is taken."""
        ...

    async def update(self, entity: Entity, *, spend: bool = False) -> bool:
        """Write the fields (and with `spend`, the spend and period end as they are); False when gone."""
        ...

    async def replace(self, old_id: str, entity: Entity) -> bool:
        """Move a key to a new id (regenerate) with its spend, atomically; False when `old_id` is gone."""
        ...

    async def delete(self, kind: Kind, ids: Sequence[str]) -> list[str]:
        """Delete and return the ids that existed."""
        ...

    async def delete_where(self, kind: Kind, *, team_id: str | None = None, user_id: str | None = None) -> list[str]:
        ...

    async def add_spend(self, deltas: Sequence[SpendDelta]) -> None: ...

    async def reset_budget(self, kind: Kind, id: str, old_marker: float, new_reset_at: float) -> bool: ...


async def get(storage: Storage, kind: Kind, id: str) -> Entity | None:
    found = await storage.get_many(kind, [id])
    return found[0] if found else None


def columns(e: Entity) -> tuple[str, str, str | None, str | None, str | None, str, float, float | None, float]:
    """The row of an entity: kind, id, alias, team_id, user_id, data, spend, budget_reset_at, created_at."""
    return (e.kind, e.id, e.alias, e.team_id, e.user_id, orjson.dumps(e.fields).decode(), e.spend,
            e.budget_reset_at, e.created_at)


def from_row(row: Sequence[Any]) -> Entity:
    """(kind, id, data, spend, budget_reset_at, created_at) -> Entity."""
    kind, id, data, spend, reset, created = row
    return make_entity(kind, id, orjson.loads(data), float(spend), None if reset is None else float(reset),
                       float(created))


class MemoryStorage:
    """For `database_url: memory://` (and tests): rows as the database would keep them."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], list[Any]] = {}

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def _entity(self, row: list[Any]) -> Entity:
        kind, id, _alias, _team, _user, data, spend, reset, created = row
        return from_row((kind, id, data, spend, reset, created))

    async def get_many(self, kind: Kind, ids: Sequence[str]) -> list[Entity]:
        return [self._entity(r) for i in ids if (r := self._rows.get((kind, i))) is not None]

    async def find(self, kind: Kind, *, team_id: str | None = None, user_id: str | None = None,
                   alias: str | None = None, offset: int = 0, limit: int | None = None) -> tuple[list[Entity], int]:
        rows = sorted((r for r in self._rows.values() if r[0] == kind
                       and (team_id is None or r[3] == team_id) and (user_id is None or r[4] == user_id)
                       and (alias is None or r[2] == alias)), key=lambda r: (r[8], r[1]))
        page = rows[offset:] if limit is None else rows[offset:offset + limit]
        return [self._entity(r) for r in page], len(rows)

    async def insert(self, entity: Entity) -> bool:
        if (entity.kind, entity.id) in self._rows:
            return False
        self._rows[entity.kind, entity.id] = list(columns(entity))
        return True

    async def update(self, entity: Entity, *, spend: bool = False) -> bool:
        row = self._rows.get((entity.kind, entity.id))
        if row is None:
            return False
        new = list(columns(entity))
        if not spend:
            new[6], new[7] = row[6], row[7]
        self._rows[entity.kind, entity.id] = new
        return True

    async def replace(self, old_id: str, entity: Entity) -> bool:
        old = self._rows.pop((entity.kind, old_id), None)
        if old is None:
            return False
        new = list(columns(entity))
        new[6], new[7] = old[6], old[7]
        self._rows[entity.kind, entity.id] = new
        return True

    async def delete(self, kind: Kind, ids: Sequence[str]) -> list[str]:
        return [i for i in dict.fromkeys(ids) if self._rows.pop((kind, i), None) is not None]

    async def delete_where(self, kind: Kind, *, team_id: str | None = None, user_id: str | None = None) -> list[str]:
        gone = [r[1] for r in self._rows.values() if r[0] == kind and (
            (team_id is not None and r[3] == team_id) or (user_id is not None and r[4] == user_id))]
        return await self.delete(kind, gone)

    async def add_spend(self, deltas: Sequence[SpendDelta]) -> None:
        for kind, id, marker, amount in deltas:
            row = self._rows.get((kind, id))
            if row is not None and (row[7] or 0.0) == marker:
                row[6] += amount

    async def reset_budget(self, kind: Kind, id: str, old_marker: float, new_reset_at: float) -> bool:
        row = self._rows.get((kind, id))
        if row is None or (row[7] or 0.0) != old_marker:
            return False
        row[6], row[7] = 0.0, new_reset_at
        return True
