"""The built-in `jsonl` callback: one JSON line per finished call, appended to a file.

The line is the standard logging record (`payload.record`): request id, model, deployment, status,
usage, cost, latency, key alias / team / user (the key's hash, never the key), the error. Request
and response content is not written. Each line is one `write` on a file opened with O_APPEND, so
several workers may share the file without interleaving lines.
"""

from __future__ import annotations

import os
import threading
from typing import IO, Any

import orjson

from .callbacks import CustomLogger

ENV_PATH = "RESPGATE_CALLBACK_LOG"
DEFAULT_PATH = "respgate-calls.jsonl"


class JsonlLogger(CustomLogger):
    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JsonlLogger({self.path!r})"

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._write(kwargs["standard_logging_object"])

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._write(kwargs["standard_logging_object"])

    def _write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record, default=str) + b"\n"
        with self._lock:
            if self._file is None:
                directory = os.path.dirname(self.path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open across calls
            self._file.write(line)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def jsonl_path(settings: Any) -> str:
    """`callback_settings.jsonl.path` (or `.file.path`), else $RESPGATE_CALLBACK_LOG, else the default."""
    if isinstance(settings, dict):
        for name in ("jsonl", "file"):
            section = settings.get(name)
            if isinstance(section, dict) and isinstance(section.get("path"), str) and section["path"]:
                return str(section["path"])
    return os.environ.get(ENV_PATH) or DEFAULT_PATH
