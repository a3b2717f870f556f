"""The built-in content filter: regexes for PII (email, phone, credit card with Luhn, US SSN), the
user's own regexes and blocked keywords, each with an action — mask (`[EMAIL_REDACTED]`) or block.

`ContentFilter.check(text)` raises `Blocked` naming the rule (never the matched text: the error goes
back to the client and into logs); `apply(text)` returns the masked text and the names of what it masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

Action = Literal["mask", "block"]


def luhn(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class Prebuilt:
    regex: str
    check: Callable[[str], bool] | None = None
    min_digits: int = 0  # a text with fewer digits cannot match (skips the regex: most prose)
    literal: str | None = None  # nor one without this


PREBUILT: Final[dict[str, Prebuilt]] = {
    "email": Prebuilt(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])",
                      literal="@"),
    # 13-19 digits, optionally grouped by spaces or dashes; only numbers that pass the Luhn check
    "credit_card": Prebuilt(r"\d(?<![\d-]\d)(?:[ -]?\d){12,18}(?!\d)", luhn, min_digits=13),
    # AAA-GG-SSSS without the never-issued areas 000, 666, 9xx and the zero group/serial
    "us_ssn": Prebuilt(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])", min_digits=9),
    # +CC and/or grouped digits with separators: (555) 123-4567, 555-123-4567, +44 20 7946 0958
    # (not inside a longer run of digit groups, such as a card number that failed the Luhn check)
    "phone": Prebuilt(r"(?<![\w+.-])(?<!\d )(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}"
                      r"(?![\w-]|[ .]\d)|(?<![\w+])\+\d{8,15}(?!\w)", min_digits=8),
}
ALIASES: Final = {"ssn": "us_ssn", "phone_number": "phone", "us_phone": "phone", "credit_card_number": "credit_card",
                  "email_address": "email"}
# Presidio's entity names (LiteLLM's `pii_entities_config`) -> ours
PRESIDIO_ENTITIES: Final = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "credit_card",
                            "US_SSN": "us_ssn"}
# Order matters where patterns overlap: a card number is not also a phone number.
DEFAULT_ORDER: Final = ("credit_card", "us_ssn", "email", "phone")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    action: Action
    check: Callable[[str], bool] | None = None
    min_digits: int = 0
    literal: str | None = None  # lower case; looked up in the lower-cased text

    def skips(self, text: Text) -> bool:
        """True when the text cannot match (cheap tests before the regex)."""
        if self.min_digits and text.digits < self.min_digits:
            return True
        return self.literal is not None and self.literal not in text.lower

    @property
    def mask(self) -> str:
        return f"[{re.sub(r'[^A-Z0-9]+', '_', self.name.upper()).strip('_')}_REDACTED]"

    def found(self, text: str) -> bool:
        if self.check is None:
            return self.pattern.search(text) is not None
        return any(self.check(m.group()) for m in self.pattern.finditer(text))

    def masked(self, text: str) -> tuple[str, int]:
        mask = self.mask
        if self.check is None:
            return self.pattern.subn(mask, text)
        check = self.check
        count = 0

        def replace(m: re.Match[str]) -> str:
            nonlocal count
            if check(m.group()):
                count += 1
                return mask
            return m.group()

        return self.pattern.sub(replace, text), count


def prebuilt_rule(name: str, action: Action) -> Rule:
    key = ALIASES.get(name.lower(), name.lower())
    p = PREBUILT[key]
    return Rule(key, re.compile(p.regex), action, p.check, p.min_digits, p.literal)


def keyword_rule(keyword: str, action: Action) -> Rule:
    return Rule("keyword", re.compile(rf"(?i)(?<!\w){re.escape(keyword)}(?!\w)"), action,
                literal=keyword.lower())


_DIGITS = str.maketrans("0123456789", "##########")
_ANY_DIGIT = re.compile(r"\d")


class Text:
    """Facts about a text the rules' cheap tests share, each worked out once. Masks only ever remove
    digits and literals, so facts about the original text stay safe to use after masking."""

    __slots__ = ("_digits", "_lower", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._digits: int | None = None
        self._lower: str | None = None

    @property
    def digits(self) -> int:
        if self._digits is None:
            t = self.text
            # `\d` in the rules matches every Unicode digit: count those too when the text has any
            self._digits = (t.translate(_DIGITS).count("#") - t.count("#") if t.isascii()
                            else len(_ANY_DIGIT.findall(t)))
        return self._digits

    @property
    def lower(self) -> str:
        if self._lower is None:
            self._lower = self.text.lower()
        return self._lower


class Blocked(Exception):
    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


class ContentFilter:
    def __init__(self, rules: list[Rule]) -> None:
        self.blocking = tuple(r for r in rules if r.action == "block")
        self.masking = tuple(r for r in rules if r.action == "mask")

    def check(self, text: str) -> None:
        """Raises Blocked when a blocking rule matches."""
        facts = Text(text)
        for rule in self.blocking:
            if not rule.skips(facts) and rule.found(text):
                raise Blocked(rule.name)

    def apply(self, text: str) -> tuple[str, list[str]]:
        """(masked text, names of the rules that masked something); `check` first for blocking rules."""
        facts = Text(text)
        masked: list[str] = []
        for rule in self.masking:
            if rule.skips(facts):
                continue
            text, n = rule.masked(text)
            if n:
                masked.extend([rule.name] * n)
        return text, masked

    def findings(self, text: str) -> list[str]:
        """Names of every rule that matches (for checks that cannot change the text)."""
        facts = Text(text)
        return [r.name for r in (*self.blocking, *self.masking) if not r.skips(facts) and r.found(text)]
