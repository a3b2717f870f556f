"""Raw SSE for tests that must see the exact bytes a client receives."""

from __future__ import annotations

from typing import Any

import httpx
import orjson


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Each `event:` + `data:` frame as its JSON; asserts that the two name the same type."""
    events: list[dict[str, Any]] = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        name = None
        data = None
        for line in frame.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
        assert data is not None, f"frame without data: {frame!r}"
        obj = orjson.loads(data)
        assert name == obj["type"], f"event line {name!r} differs from data type {obj['type']!r}"
        events.append(obj)
    return events


def post_stream(url: str, key: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.Client(timeout=30) as h:
        r = h.post(url + "/v1/responses", json={**body, "stream": True},
                   headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        return parse_sse(r.text)
