"""Where the text is: the parts of a request the model reads, and of a Response the client reads.

Request texts: `instructions`; `input` as a string, message contents (a string, or `input_text` /
`output_text` / `text` parts), `function_call_output.output`; Chat Completions `messages[].content`.
Response texts: `output[].content[].text` of messages and reasoning summaries.

`rewrite_request(body, fn)` applies `fn` to each request text and returns a new body sharing every
part it did not change (the caller's objects are never modified: in the SDK they are the user's own
lists); `rewrite_response` does the same to a Response dict in place (the gateway's own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TextFn = Callable[[str], str]
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})


def rewrite_request(body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """By the body's shape, not its route: a chat request reaches the hooks already translated into a
    Responses body (chatapi), but a Chat Completions body is handled too."""
    out = body
    for name in ("instructions", "input", "messages"):
        value = body.get(name)
        new = _texts(value, fn, top=True)
        if new is not value:
            if out is body:
                out = dict(body)
            out[name] = new
    return out


def _texts(value: Any, fn: TextFn, *, top: bool = False) -> Any:
    """`value` with fn applied to its texts; the same object when nothing changed."""
    if isinstance(value, str):
        new = fn(value)
        return value if new == value else new
    if isinstance(value, list) and top:
        return _list(value, lambda item: _item(item, fn))
    return value


def _list(items: list[Any], each: Callable[[Any], Any]) -> list[Any]:
    out = items
    for i, item in enumerate(items):
        new = each(item)
        if new is not item:
            if out is items:
                out = list(items)
            out[i] = new
    return out


def _item(item: Any, fn: TextFn) -> Any:
    if not isinstance(item, dict):
        return item
    out = item
    for key in ("content", "output"):
        if key == "output" and item.get("type") != "function_call_output":
            continue
        value = item.get(key)
        if isinstance(value, str):
            new: Any = fn(value)
            new = value if new == value else new
        elif isinstance(value, list):
            new = _list(value, lambda part: _part(part, fn))
        else:
            continue
        if new is not value:
            if out is item:
                out = dict(item)
            out[key] = new
    return out


def _part(part: Any, fn: TextFn) -> Any:
    if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
        return part
    text = part.get("text")
    if not isinstance(text, str):
        return part
    new = fn(text)
    if new == text:
        return part
    return {**part, "text": new}


def rewrite_response(response: dict[str, Any], fn: TextFn) -> None:
    """Applies fn to the output texts of a Response dict, in place."""
    for item in response.get("output") or ():
        if not isinstance(item, dict):
            continue
        for key in ("content", "summary"):
            parts = item.get(key)
            if not isinstance(parts, list):
                continue
            for part in parts:
                if isinstance(part, dict) and part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str):
                    part["text"] = fn(part["text"])
    if isinstance(response.get("output_text"), str):
        response["output_text"] = fn(response["output_text"])


def response_texts(response: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def collect(text: str) -> str:
        found.append(text)
        return text

    rewrite_response(response, collect)
    return found
