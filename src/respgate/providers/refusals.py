"""The rule every translating adapter follows for a field its provider cannot honour: a 400 naming the
field, or — with LiteLLM's `drop_params` — the field dropped. Never silently ignored."""

from __future__ import annotations

from typing import Any, Final, NoReturn

from ..errors import InvalidRequestError

#: keys of a past output item that describe it rather than ask anything of the model
OUTPUT_METADATA: Final = frozenset({"id", "status", "type", "annotations", "logprobs", "phase"})


class FieldMapping:
    """One translation's refusal policy. `target` names the provider in messages, e.g.
    "the 'anthropic' provider (Messages API)"."""

    __slots__ = ("drop_params", "target")

    def __init__(self, target: str, drop_params: bool) -> None:
        self.target = target
        self.drop_params = drop_params

    def refuse(self, param: str, what: str, *, code: str = "unsupported_parameter") -> None:
        """Raises the 400 for what the target cannot honour; returns (drop it) under drop_params."""
        if self.drop_params:
            return
        raise InvalidRequestError(f"{what} is not supported by {self.target}; remove '{param}' or set "
                                  "drop_params to drop it.", param=param, code=code)

    def unresolved_reference(self, item: dict[str, Any], param: str) -> NoReturn:
        """An `item_reference` the gateway did not resolve (it resolves those of the chain being continued
        before any provider runs): it names an item this gateway does not hold."""
        raise InvalidRequestError(f"Item reference '{item.get('id')}' at '{param}' cannot be resolved for "
                                  f"{self.target}: send the item itself instead.", param=param,
                                  code="unsupported_value")

    def check_extras(self, obj: dict[str, Any], known: frozenset[str], param: str) -> None:
        """Keys beyond `known` that carry a value have no counterpart here."""
        for key, value in obj.items():
            if key not in known and key not in OUTPUT_METADATA and value not in (None, False, [], {}):
                self.refuse(f"{param}.{key}", f"'{key}'")
