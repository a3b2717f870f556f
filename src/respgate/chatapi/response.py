"""A Responses result -> a `chat.completion` object (and the pieces the chunk stream shares).

One choice: the output's text parts joined (content), its refusals (refusal), its function and
custom tool calls (tool_calls, with the Responses `call_id` as the call's id), url citations
(annotations). Reasoning summaries/text go to `reasoning_content`, the field LiteLLM and several
chat providers use, since the chat types have none. A failed response is an error, not a choice.
"""

from __future__ import annotations

from typing import Any, Final

from ..errors import InvalidRequestError, RateLimitError, RespgateError

Json = dict[str, Any]

# incomplete_details.reason -> finish_reason
_INCOMPLETE_FINISH: Final = {"max_output_tokens": "length", "content_filter": "content_filter"}

# response.error.code -> the error class a chat client sees (anything else: a server error).
_FAILURE_ERRORS: Final[dict[str, type[RespgateError]]] = {
    "rate_limit_exceeded": RateLimitError,
    "invalid_prompt": InvalidRequestError,
    "invalid_image": InvalidRequestError,
    "invalid_image_url": InvalidRequestError,
    "invalid_image_format": InvalidRequestError,
    "invalid_base64_image": InvalidRequestError,
    "empty_image_file": InvalidRequestError,
    "image_too_large": InvalidRequestError,
    "image_too_small": InvalidRequestError,
    "image_content_policy_violation": InvalidRequestError,
}


def completion_id(response_id: str) -> str:
    """`resp_X` -> `chatcmpl-X`: a stored completion (store=true) is found again under `resp_X`."""
    return "chatcmpl-" + (response_id.removeprefix("resp_") or response_id)


def finish_reason(response: Json, has_tool_calls: bool) -> str:
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return _INCOMPLETE_FINISH.get(str(reason), "length")
    return "tool_calls" if has_tool_calls else "stop"


def failure(error: Json | None) -> RespgateError:
    """A failed response (or a stream's `error`) as the error a chat client receives."""
    error = error or {}
    code = str(error.get("code") or "server_error")
    message = str(error.get("message") or "The model failed to produce a response.")
    return _FAILURE_ERRORS.get(code, RespgateError)(message, code=code)


def chat_usage(usage: Json | None) -> Json | None:
    if not usage:
        return None
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
        "prompt_tokens_details": {"cached_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens", 0),
                                  "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens", 0),
            "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def tool_call(item: Json) -> Json | None:
    """A function_call / custom_tool_call item as a chat tool call; None for other items."""
    if item.get("type") == "function_call":
        return {"id": item["call_id"], "type": "function",
                "function": {"name": item["name"], "arguments": item.get("arguments") or ""}}
    if item.get("type") == "custom_tool_call":
        return {"id": item["call_id"], "type": "custom", "custom": {"name": item["name"], "input": item.get("input")
                                                                                              or ""}}
    return None


def annotation(a: Json) -> Json | None:
    if a.get("type") != "url_citation":
        return None
    return {"type": "url_citation", "url_citation": {k: a[k] for k in ("start_index", "end_index", "title", "url")}}


def to_chat_completion(response: Json, *, logprobs: bool = False, metadata: Json | None = None) -> Json:
    if response.get("status") == "failed":
        raise failure(response.get("error"))
    texts: list[str] = []
    refusals: list[str] = []
    reasoning: list[str] = []
    annotations: list[Json] = []
    tokens: list[Json] = []
    calls: list[Json] = []
    for item in response.get("output") or []:
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    annotations += [a for a in map(annotation, part.get("annotations") or []) if a is not None]
                    texts.append(part.get("text") or "")
                    tokens += part.get("logprobs") or []
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal") or "")
        elif kind == "reasoning":
            reasoning += [p.get("text") or "" for p in (item.get("summary") or []) + (item.get("content") or [])]
        else:
            call = tool_call(item)
            if call is not None:
                calls.append(call)
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None,
                     "refusal": "".join(refusals) if refusals else None, "annotations": annotations}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "\n\n".join(reasoning)
    choice: Json = {"index": 0, "message": message,
                    "logprobs": {"content": tokens, "refusal": None} if logprobs else None,
                    "finish_reason": finish_reason(response, bool(calls))}
    out: Json = {"id": completion_id(str(response.get("id") or "")), "object": "chat.completion",
                 "created": int(response.get("created_at") or 0), "model": response.get("model") or "",
                 "choices": [choice], "usage": chat_usage(response.get("usage")),
                 "service_tier": response.get("service_tier"), "system_fingerprint": None}
    if metadata is not None:
        out["metadata"] = metadata
    return out
