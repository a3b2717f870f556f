"""Request ids in every log line, and secrets out of every log line.

`request_id` is a context variable: the proxy (or the observe hook's `pre_call`) binds it for the
task that serves a request, so every record made while serving it carries the id, whichever logger
made it. `install(config)` puts both rules in place for the whole process:

- a log-record factory that stamps `record.request_id` and scrubs the message (and an exception's
  traceback) of the configured secrets (master key, provider credentials, passwords in URLs) and of
  anything shaped like one (`sk-...` keys, `Authorization: Bearer ...`, `api-key: ...`); the record
  is scrubbed where it is made, so no handler — even one added later — ever sees the secret;
- a handler on the root logger with `FORMAT` (`... [request_id] ...`) when the root has none.

`RequestIdFilter` and `RedactionFilter` do the same per handler, for applications that manage
their own logging and do not want a process-wide record factory.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from ..config import Config

__all__ = ["FORMAT", "RedactionFilter", "Redactor", "RequestIdFilter", "bind_request_id", "current_request_id",
           "install", "reset_request_id", "uninstall"]

FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
NO_REQUEST: Final = "-"
MASK: Final = "[REDACTED]"

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("respgate_request_id", default=NO_REQUEST)

# Config keys whose string values are credentials, wherever they appear in the config.
# (names ending in key/token, or naming a secret anywhere: api_key, aws_session_token, redis_password,
# vertex_credentials — not max_tokens or litellm_key_header_name)
_SECRET_KEY = re.compile(r"(?i)(?:key|token|signature)$|secret|passw|credential")
_MIN_SECRET = 6  # shorter values ("true", "none") would mask ordinary words
# Shapes of secrets nobody configured here: virtual keys and provider keys, auth headers, URL passwords.
# `keep` is the prefix that stays (the header name, `Bearer `, the URL's user).
_SHAPES = (
    r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{8,}",
    r"(?P<keep>(?i:\b(?:bearer|basic)\s+|\b(?:authorization|api-key|x-api-key|x-goog-api-key)[\"']?\s*[:=]\s*[\"']?))"
    r"(?!(?i:bearer|basic)\s)[^\s'\",;}]{6,}",
    r"(?P<url>://[^/\s:@]*:)[^/\s@]+(?=@)",
)


def bind_request_id(request_id: str) -> contextvars.Token[str]:
    """Makes `request_id` the current request's id in this task (and the tasks it starts)."""
    return _request_id.set(request_id or NO_REQUEST)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _request_id.reset(token)


def current_request_id() -> str:
    return _request_id.get()


class Redactor:
    """Replaces known secrets and secret-shaped strings in text. One compiled pattern; `scrub` of a
    text with nothing to hide costs one regex scan."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = sorted({s for s in secrets if isinstance(s, str) and len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self.secrets = frozenset(known)
        self._pattern = re.compile("|".join([*(re.escape(s) for s in known), *_SHAPES]))

    @classmethod
    def from_config(cls, config: Config) -> Redactor:
        return cls(config_secrets(config))

    def scrub(self, text: str) -> str:
        return self._pattern.sub(_mask, text)


def _mask(m: re.Match[str]) -> str:
    return (m.group("keep") or m.group("url") or "") + MASK


def config_secrets(config: Config) -> list[str]:
    """Every credential in the config: the master key, deployments' keys, and any value under a key
    named like a secret (api_key, aws_secret_access_key, redis_password, ...), plus URL passwords."""
    found: list[str] = []
    if config.general.master_key:
        found.append(config.general.master_key)
    for d in config.deployments:
        if d.api_key:
            found.append(d.api_key)
        found.extend(_secret_values(d.extra))
    for tree in (config.router_settings, config.general.extra, config.litellm_settings.extra, config.sections):
        found.extend(_secret_values(tree))
    return found


def _secret_values(tree: Any, secret: bool = False) -> Iterator[str]:
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _secret_values(v, secret or bool(_SECRET_KEY.search(str(k))))
    elif isinstance(tree, list):
        for v in tree:
            yield from _secret_values(v, secret)
    elif isinstance(tree, str) and secret:
        yield tree


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the current request's, or "-") to records that lack it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


class RedactionFilter(logging.Filter):
    """Scrubs a record's message and traceback in place (for a handler of your own)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub_record(record, self.redactor)
        return True


_FORMATTER = logging.Formatter()


def _scrub_record(record: logging.LogRecord, redactor: Redactor) -> None:
    """Scrubs the message, keeping `msg` and `args` apart where possible (formatters such as uvicorn's
    access log read `record.args`): the template and each argument are scrubbed; only when a secret
    spans both (`"Bearer %s", token`) is the message collapsed into one scrubbed string. Then the
    traceback and stack."""
    if getattr(record, "_respgate_scrubbed", False):
        return
    full = _message(record)
    clean = redactor.scrub(full)
    if clean != full:
        record.msg = _scrub_value(record.msg, redactor)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_scrub_value(a, redactor) for a in args)
        elif isinstance(args, Mapping):
            record.args = {k: _scrub_value(v, redactor) for k, v in args.items()}
        again = _message(record)
        if redactor.scrub(again) != again:
            record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redactor.scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = redactor.scrub(record.stack_info)
    record._respgate_scrubbed = True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string: logging reports it later; judge the parts
        return f"{record.msg} {record.args}"


def _scrub_value(value: Any, redactor: Redactor) -> Any:
    """A string scrubbed; numbers as they are; any other object kept unless its text holds a secret
    (then its scrubbed text), so `%d` and `%r` still format what has nothing to hide."""
    if isinstance(value, str):
        return redactor.scrub(value)
    if value is None or isinstance(value, int | float):
        return value
    try:
        text = str(value)
    except Exception:
        return "<unprintable>"
    scrubbed = redactor.scrub(text)
    return value if scrubbed == text else scrubbed


class _Installed:
    """What `install` changed, so `uninstall` (tests) can put it back."""

    def __init__(self, previous: Callable[..., logging.LogRecord], handler: logging.Handler | None) -> None:
        self.previous = previous
        self.handler = handler
        self.redactor = Redactor()


_lock = threading.Lock()
_installed: _Installed | None = None


def install(config: Config | None = None, *, level: int | str | None = None, stream: Any = None) -> Redactor:
    """Request ids and redaction for every log record of this process. Idempotent: call it early
    without a config (secret shapes only, and the root handler), then with each config loaded (its
    secrets are added). Returns the redactor in force."""
    global _installed
    with _lock:
        if _installed is None:
            previous = logging.getLogRecordFactory()
            handler = None
            root = logging.getLogger()
            if not root.handlers:
                handler = logging.StreamHandler(stream or sys.stderr)
                handler.setFormatter(logging.Formatter(FORMAT))
                handler.addFilter(RequestIdFilter())  # records made before the factory, if any
                root.addHandler(handler)
            installed = _Installed(previous, handler)

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                record.request_id = _request_id.get()
                _scrub_record(record, installed.redactor)
                return record

            logging.setLogRecordFactory(factory)
            _installed = installed
        if config is not None:
            _installed.redactor = Redactor([*_installed.redactor.secrets, *config_secrets(config)])
        if level is not None:
            logging.getLogger().setLevel(level.upper() if isinstance(level, str) else level)
        return _installed.redactor


def uninstall() -> None:
    """Undoes `install` (for tests)."""
    global _installed
    with _lock:
        if _installed is None:
            return
        logging.setLogRecordFactory(_installed.previous)
        if _installed.handler is not None:
            logging.getLogger().removeHandler(_installed.handler)
        _installed = None
