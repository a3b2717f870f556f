"""Who owns what, for the UI's labels and filters: a stored response names its owner only by a hash.

An owner is the first half of a key's hash (`keys/tokens.owner_of`), `team:<id>` for a team sharing its
keys' responses, the master key's own, or "" on a proxy without keys. The directory reads every key
and team once (a few thousand rows at most in practice, capped) and keeps them for `ttl` seconds, so
a page of responses gets its labels without a query per row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..keys.tokens import owner_of

if TYPE_CHECKING:
    from ..keys import KeyManager
    from ..keys.records import Entity

MAX_ENTITIES = 10_000


@dataclass(slots=True)
class Snapshot:
    keys: list[Entity] = field(default_factory=list)
    teams: list[Entity] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # owner -> what to call it
    owners: dict[str, str] = field(default_factory=dict)  # key token -> the owner of its responses
    team_names: dict[str, str] = field(default_factory=dict)  # team id -> alias (or the id)
    key_names: dict[str, str] = field(default_factory=dict)  # key token -> alias (or sk-...abcd)


class Directory:
    def __init__(self, keys: KeyManager | None, master_key: str | None, *, ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self._master_owner = owner_of(master_key) if master_key else ""
        self._ttl = ttl
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._read_at = 0.0

    def forget(self) -> None:
        self._snapshot = None

    async def snapshot(self) -> Snapshot:
        if self._snapshot is None or self._clock() - self._read_at > self._ttl:
            self._snapshot = await self._read()
            self._read_at = self._clock()
        return self._snapshot

    async def _read(self) -> Snapshot:
        snap = Snapshot(labels={self._master_owner: "master key"} if self._master_owner else {"": "no key"})
        if self._keys is None:
            return snap
        storage = self._keys.storage
        snap.teams, _ = await storage.find("team", limit=MAX_ENTITIES)
        snap.keys, _ = await storage.find("key", limit=MAX_ENTITIES)
        self._keys.live(snap.keys + snap.teams)
        shared = set()
        for team in snap.teams:
            snap.team_names[team.id] = team.alias or team.id
            if team.metadata.get("share_responses") is True:
                shared.add(team.id)
                snap.labels[f"team:{team.id}"] = f"team {team.alias or team.id}"
        for key in snap.keys:
            name = key.alias or str(key.fields.get("key_name") or key.id[:12])
            snap.key_names[key.id] = name
            team_id = key.team_id
            owner = (f"team:{team_id}" if team_id is not None and team_id in shared
                     else str(key.fields.get("owner") or key.id[:32]))
            snap.owners[key.id] = owner
            snap.labels.setdefault(owner, name)
        return snap

    def label(self, snap: Snapshot, owner: str) -> str:
        return snap.labels.get(owner) or (f"team {owner[5:]}" if owner.startswith("team:") else f"key {owner[:8]}…")
