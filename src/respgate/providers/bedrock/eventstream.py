"""The `application/vnd.amazon.eventstream` framing of ConverseStream, decoded with botocore's parser.

Frames arrive split across network chunks anyhow; `EventStreamBuffer` keeps the partial frame and
checks each frame's CRCs. A frame is an event (`:event-type` names the member, the payload is its
JSON), an exception (`:exception-type`), or an error (`:error-code` / `:error-message`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError  # type: ignore[import-untyped]

from ...errors import BadGatewayError

__all__ = ["EventStreamDecoder", "Frame"]


class Frame(NamedTuple):
    kind: str  # "event", "exception" or "error"
    name: str  # the event type, exception type or error code
    payload: dict[str, Any]


class EventStreamDecoder:
    """Bytes in (any split), whole frames out."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buffer.add_data(chunk)
        frames: list[Frame] = []
        try:
            for message in self._buffer:
                frames.append(_frame(message.headers, message.payload))
        except ParserError as e:
            raise BadGatewayError(f"Bedrock sent a corrupt event-stream frame ({type(e).__name__}).") from e
        return frames


def _frame(headers: dict[str, Any], payload: bytes) -> Frame:
    kind = str(headers.get(":message-type", "event"))
    if kind == "error":
        message = str(headers.get(":error-message", ""))
        return Frame("error", str(headers.get(":error-code", "InternalServerException")), {"message": message})
    name = str(headers.get(":exception-type" if kind == "exception" else ":event-type", ""))
    try:
        parsed = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        raise BadGatewayError(f"Bedrock sent a `{name}` frame whose payload is not JSON.") from None
    return Frame(kind, name, parsed if isinstance(parsed, dict) else {})
