"""Create-request validation with OpenAI's error shapes, the passthrough check, input normalisation."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import ResponseInputMessageItem, ResponseOutputMessage
from openai.types.responses.response_item import ResponseItem
from pydantic import TypeAdapter

from respgate.errors import InvalidRequestError
from respgate.request import INVALID_JSON_MESSAGE, normalize_input, validate_create, validate_passthrough

RESPONSE_ITEM: TypeAdapter[Any] = TypeAdapter(ResponseItem)

# (body, message, param, code)
CREATE_ERRORS: list[tuple[object, str, str | None, str | None]] = [
    ([1, 2], INVALID_JSON_MESSAGE, None, None),
    ("text", INVALID_JSON_MESSAGE, None, None),
    ({"model": "m", "foo": 1}, "Unknown parameter: 'foo'.", "foo", "unknown_parameter"),
    ({"input": "hi"}, "Missing required parameter: 'model'.", "model", "missing_required_parameter"),
    (
        {"model": "m", "temperature": "hot"},
        "Invalid type for 'temperature': expected a decimal, but got a string instead.",
        "temperature",
        "invalid_type",
    ),
    (
        {"model": "m", "temperature": True},
        "Invalid type for 'temperature': expected a decimal, but got a boolean instead.",
        "temperature",
        "invalid_type",
    ),
    (
        {"model": "m", "max_output_tokens": 20.5},
        "Invalid type for 'max_output_tokens': expected an integer, but got a decimal instead.",
        "max_output_tokens",
        "invalid_type",
    ),
    (
        {"model": 5},
        "Invalid type for 'model': expected a string, but got an integer instead.",
        "model",
        "invalid_type",
    ),
    (
        {"model": "m", "stream": "yes"},
        "Invalid type for 'stream': expected a boolean, but got a string instead.",
        "stream",
        "invalid_type",
    ),
    (
        {"model": "m", "reasoning": 5},
        "Invalid type for 'reasoning': expected an object, but got an integer instead.",
        "reasoning",
        "invalid_type",
    ),
    (
        {"model": "m", "include": "x"},
        "Invalid type for 'include': expected an array, but got a string instead.",
        "include",
        "invalid_type",
    ),
    (
        {"model": "m", "metadata": {"k": 1}},
        "Invalid type for 'metadata.k': expected a string, but got an integer instead.",
        "metadata.k",
        "invalid_type",
    ),
    (
        {"model": "m", "input": 123},
        "Invalid type for 'input': expected one of a string or an array, but got an integer instead.",
        "input",
        "invalid_type",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": 123}]},
        "Invalid type for 'input[0].content': expected one of a string or an array"
        ", but got an integer instead.",
        "input[0].content",
        "invalid_type",
    ),
    (
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": None}],
                }
            ],
        },
        "Invalid type for 'input[0].content[1].text': expected a string, but got null instead.",
        "input[0].content[1].text",
        "invalid_type",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
        "Missing required parameter: 'input[0].content[0].text'.",
        "input[0].content[0].text",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": [{"role": "robot", "content": "hi"}]},
        "Invalid value: 'robot'. Supported values are: 'user', 'assistant', 'system', and 'developer'.",
        "input[0].role",
        "invalid_value",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "bogus", "text": "x"}]}]},
        "Invalid value: 'bogus'. Supported values are: 'input_text', 'input_image', and 'input_file'.",
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        {"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": 5}]},
        "Invalid type for 'input[0].output': expected one of a string or an array"
        ", but got an integer instead.",
        "input[0].output",
        "invalid_type",
    ),
    (
        {"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]},
        "Missing required parameter: 'input[0].arguments'.",
        "input[0].arguments",
        "missing_required_parameter",
    ),
    (
        {
            "model": "m",
            "tools": [{"type": "function", "name": "f", "parameters": {}, "strict": True, "x": 1}],
        },
        "Unknown parameter: 'tools[0].x'.",
        "tools[0].x",
        "unknown_parameter",
    ),
    (
        {"model": "m", "truncation": "sometimes"},
        "Invalid value: 'sometimes'. Supported values are: 'auto' and 'disabled'.",
        "truncation",
        "invalid_value",
    ),
    (
        {"model": "m", "temperature": 2.5},
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
        "temperature",
        "decimal_above_max_value",
    ),
    (
        {"model": "m", "temperature": -1},
        "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -1 instead.",
        "temperature",
        "decimal_below_min_value",
    ),
    (
        {"model": "m", "top_p": 1.5},
        "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, but got 1.5 instead.",
        "top_p",
        "decimal_above_max_value",
    ),
    (
        {"model": "m", "top_logprobs": 21},
        "Invalid 'top_logprobs': integer above maximum value. Expected a value <= 20, but got 21 instead.",
        "top_logprobs",
        "integer_above_max_value",
    ),
    (
        {"model": "m", "max_output_tokens": 15},
        "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16"
        ", but got 15 instead.",
        "max_output_tokens",
        "integer_below_min_value",
    ),
]


@pytest.mark.parametrize(("body", "message", "param", "code"), CREATE_ERRORS)
def test_create_errors(body: object, message: str, param: str | None, code: str | None) -> None:
    with pytest.raises(InvalidRequestError) as excinfo:
        validate_create(body)
    err = excinfo.value
    assert err.status == 400
    assert err.to_dict() == {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


def test_unknown_item_type_lists_the_supported_types() -> None:
    with pytest.raises(InvalidRequestError) as excinfo:
        validate_create({"model": "m", "input": [{"type": "bogus"}]})
    err = excinfo.value
    assert (err.param, err.code) == ("input[0].type", "invalid_value")
    assert err.message.startswith("Invalid value: 'bogus'. Supported values are: ")
    for item_type in (
        "'message'",
        "'function_call'",
        "'function_call_output'",
        "'reasoning'",
        "'item_reference'",
    ):
        assert item_type in err.message


@pytest.mark.parametrize(
    "body",
    [
        {"model": "mock/echo"},
        {"model": "mock/echo", "input": "hi", "temperature": 1, "top_p": 0, "max_output_tokens": 16},
        {"model": "mock/echo", "stream": True, "input": [{"role": "user", "content": "hi"}]},
        {
            "model": "mock/echo",
            "stream": False,
            "store": False,
            "background": False,
            "previous_response_id": "resp_1",
        },
        {"model": "mock/echo", "instructions": None, "temperature": None, "metadata": {"a": "b"}},
        {
            "model": "m",
            "input": [
                {"role": "system", "content": "s"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "x"},
                        {"type": "input_image", "image_url": "https://i", "detail": "auto"},
                    ],
                },
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "y", "annotations": []}],
                },
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "42"},
                {"type": "item_reference", "id": "msg_0"},
            ],
        },
        {
            "model": "m",
            "tools": [
                {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True},
                {"type": "web_search"},
            ],
            "tool_choice": {"type": "function", "name": "f"},
            "parallel_tool_calls": False,
        },
        {
            "model": "m",
            "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
            "reasoning": {"effort": "low", "summary": "auto"},
        },
    ],
)
def test_valid_bodies_pass_unchanged(body: dict[str, Any]) -> None:
    assert validate_create(body) is body


def test_drop_params_removes_unknown_top_level_only() -> None:
    body = {"model": "m", "input": "hi", "frequency_penalty": 1, "safe_prompt": True}
    out = validate_create(body, drop_params=True)
    assert out == {"model": "m", "input": "hi"}
    assert "frequency_penalty" in body  # the caller's dict is left alone
    with pytest.raises(InvalidRequestError) as excinfo:
        validate_create(
            {
                "model": "m",
                "tools": [{"type": "function", "name": "f", "parameters": None, "strict": None, "x": 1}],
            },
            drop_params=True,
        )
    assert excinfo.value.param == "tools[0].x"


# --- passthrough ---------------------------------------------------------------------------------------

PASSTHROUGH_ERRORS: list[tuple[object, str, str | None, str | None]] = [
    ([], INVALID_JSON_MESSAGE, None, None),
    ({"input": "x"}, "Missing required parameter: 'model'.", "model", "missing_required_parameter"),
    (
        {"model": 1},
        "Invalid type for 'model': expected a string, but got an integer instead.",
        "model",
        "invalid_type",
    ),
    (
        {"model": ""},
        "Invalid 'model': empty string. Expected a string with minimum length 1, but got an empty "
        "string instead.",
        "model",
        "empty_string",
    ),
    (
        {"model": "m", "stream": 1},
        "Invalid type for 'stream': expected a boolean, but got an integer instead.",
        "stream",
        "invalid_type",
    ),
    (
        {"model": "m", "store": "no"},
        "Invalid type for 'store': expected a boolean, but got a string instead.",
        "store",
        "invalid_type",
    ),
    (
        {"model": "m", "background": {}},
        "Invalid type for 'background': expected a boolean, but got an object instead.",
        "background",
        "invalid_type",
    ),
    (
        {"model": "m", "previous_response_id": 3},
        "Invalid type for 'previous_response_id': expected a string, but got an integer instead.",
        "previous_response_id",
        "invalid_type",
    ),
    (
        {"model": "m", "input": {"a": 1}},
        "Invalid type for 'input': expected one of a string or an array, but got an object instead.",
        "input",
        "invalid_type",
    ),
]


@pytest.mark.parametrize(("body", "message", "param", "code"), PASSTHROUGH_ERRORS)
def test_passthrough_errors(body: object, message: str, param: str | None, code: str | None) -> None:
    with pytest.raises(InvalidRequestError) as excinfo:
        validate_passthrough(body)
    assert (excinfo.value.message, excinfo.value.param, excinfo.value.code) == (message, param, code)


def test_passthrough_leaves_unknown_fields_alone() -> None:
    body = {"model": "gpt-5", "input": [{"weird": True}], "brand_new_param": {"x": [1]}, "temperature": "hot"}
    assert validate_passthrough(body) is body
    assert body["brand_new_param"] == {"x": [1]}


# --- normalize_input -----------------------------------------------------------------------------------


def test_string_input_becomes_one_user_message() -> None:
    (item,) = normalize_input("hello")
    assert item["id"].startswith("msg_")
    assert {k: v for k, v in item.items() if k != "id"} == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hello"}],
        "status": "completed",
    }
    assert isinstance(RESPONSE_ITEM.validate_python(item), ResponseInputMessageItem)


def test_none_input_is_empty() -> None:
    assert normalize_input(None) == []


def test_easy_messages_become_full_messages() -> None:
    items = normalize_input(
        [
            {"role": "developer", "content": "be brief"},
            {"role": "assistant", "content": "ok"},
            {"role": "system", "content": "s", "id": "msg_keep"},
        ]
    )
    dev, assistant, system = items
    assert dev["content"] == [{"type": "input_text", "text": "be brief"}]
    assert assistant["content"] == [{"type": "output_text", "text": "ok", "annotations": []}]
    assert system["id"] == "msg_keep"
    assert isinstance(RESPONSE_ITEM.validate_python(dev), ResponseInputMessageItem)
    assert isinstance(RESPONSE_ITEM.validate_python(assistant), ResponseOutputMessage)


def test_items_get_ids_with_openai_prefixes_and_validate() -> None:
    given: list[Any] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]},
        {"role": "assistant", "content": "y"},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "42"},
        {"type": "reasoning", "id": "rs_given", "summary": []},
        {"type": "custom_tool_call", "call_id": "c2", "name": "g", "input": "x"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": "y"},
    ]
    validate_create({"model": "m", "input": given})
    items = normalize_input(given)
    prefixes = [item["id"].split("_", 1)[0] for item in items]
    assert prefixes == ["msg", "msg", "fc", "fco", "rs", "ctc", "ctco"]
    assert items[4]["id"] == "rs_given"
    assert len({item["id"] for item in items}) == len(items)
    for item, original in zip(items, given, strict=True):
        parsed = RESPONSE_ITEM.validate_python(item)
        assert parsed.type == original.get("type", "message")
    assert "id" not in given[0] and "status" not in given[2]  # input not mutated


def test_assistant_output_text_parts_get_annotations() -> None:
    part = {"type": "output_text", "text": "y"}
    (item,) = normalize_input([{"role": "assistant", "content": [part]}])
    assert item["content"] == [{"type": "output_text", "text": "y", "annotations": []}]
    assert "annotations" not in part
    assert isinstance(RESPONSE_ITEM.validate_python(item), ResponseOutputMessage)


def test_item_reference_is_kept_as_is() -> None:
    assert normalize_input([{"type": "item_reference", "id": "msg_1"}]) == [
        {"type": "item_reference", "id": "msg_1"}
    ]
