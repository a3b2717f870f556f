"""What a request tells the router beyond the Responses API (LiteLLM's fields), taken out of the body.

    fallbacks        top-level: model groups to try when the requested one fails
    tags             top-level, and `metadata.tags`: which deployments may serve it (tag filtering)

Request validation would refuse these (`fallbacks` and `tags` are not OpenAI parameters; OpenAI's
`metadata` holds only strings), so they leave the body before it is validated: a top-level field
always, `metadata.tags` when it is a list. A string `metadata.tags` is valid metadata and stays;
it counts too, comma-separated (the form of LiteLLM's `x-litellm-tags` header). The caller's dict
is never modified (the platform's hooks read the body as sent: spend is counted per tag).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequestError
from ..providers.mock import count_tokens


@dataclass(frozen=True, slots=True)
class RequestOptions:
    fallbacks: tuple[str, ...] | None = None  # None: the configured fallbacks apply
    tags: tuple[str, ...] = ()  # sorted, without duplicates

    def as_fields(self) -> dict[str, Any]:
        """The options as top-level body fields again (for a body translated from another API)."""
        fields: dict[str, Any] = {}
        if self.fallbacks is not None:
            fields["fallbacks"] = list(self.fallbacks)
        if self.tags:
            fields["tags"] = list(self.tags)
        return fields


NO_OPTIONS = RequestOptions()


def has_options(body: dict[str, Any]) -> bool:
    """Cheap: whether `split_options` would find anything."""
    if "fallbacks" in body or "tags" in body:
        return True
    metadata = body.get("metadata")
    return isinstance(metadata, dict) and "tags" in metadata


def split_options(body: dict[str, Any]) -> tuple[dict[str, Any], RequestOptions]:
    """The body without the router's fields (a copy when any was there), and the options they gave.
    A malformed field is the client's 400 naming it."""
    if not has_options(body):
        return body, NO_OPTIONS
    body = dict(body)
    fallbacks = None
    if "fallbacks" in body:
        fallbacks = _fallbacks(body.pop("fallbacks"))
    tags: set[str] = set()
    if "tags" in body:
        tags.update(_tags(body.pop("tags"), "tags"))
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and "tags" in metadata:
        value = metadata["tags"]
        tags.update(_tags(value, "metadata.tags"))
        if not isinstance(value, str):
            body["metadata"] = {k: v for k, v in metadata.items() if k != "tags"}
    return body, RequestOptions(fallbacks, tuple(sorted(tags)))


def lift_options(body: Any) -> tuple[Any, dict[str, Any]]:
    """For an API whose body is translated to a Responses request (chat completions): its body without
    the router's fields, and those fields to add to the translated body, where the router finds them."""
    if not isinstance(body, dict):
        return body, {}
    body, options = split_options(body)
    return body, options.as_fields()


def estimate_tokens(body: dict[str, Any]) -> int:
    """This turn's input and instructions, estimated as truncation.py does (ceil(characters / 4));
    the history behind `previous_response_id` is not loaded here, so it is not counted."""
    value = body.get("input")
    # count_tokens reads the text of raw items too; a string input is one user message's text.
    items: list[Any] = value if isinstance(value, list) else [{"content": value}] if isinstance(value, str) else []
    instructions = body.get("instructions")
    return count_tokens(items, instructions if isinstance(instructions, str) else None)


def _fallbacks(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidRequestError("Invalid type for 'fallbacks': expected an array of model names.",
                                  param="fallbacks", code="invalid_type")
    return tuple(value)


def _tags(value: Any, param: str) -> list[str]:
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"Invalid type for '{param}': expected an array of strings.", param=param,
                                  code="invalid_type")
    return [v for v in value if v]
