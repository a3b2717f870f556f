"""The `guardrails:` section (LiteLLM's shape) -> `Guardrail`s.

```yaml
guardrails:
  - guardrail_name: pii-mask
    litellm_params:
      guardrail: litellm_content_filter   # also: regex, pii, presidio (its pii_entities_config, done by regex)
      mode: pre_call                      # or post_call, during_call, or a list of them
      default_on: true                    # else only for requests naming it in `guardrails: [...]`
      action: mask                        # default for the patterns below: mask | block
      patterns:                           # default: credit_card, us_ssn, email, phone
        - email                           # a prebuilt name
        - {pattern_type: prebuilt, pattern_name: us_ssn, action: BLOCK}
        - {pattern_type: regex, name: employee_id, pattern: 'EMP-\\d{6}', action: MASK}
      blocked_words:
        - {keyword: project-x, action: BLOCK}
```

A guardrail type respgate does not have (aporia, lakera, bedrock, ...) stops start-up: a guardrail
that silently does nothing is worse than none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from ..errors import ConfigError
from .patterns import (
    ALIASES,
    DEFAULT_ORDER,
    PREBUILT,
    PRESIDIO_ENTITIES,
    Action,
    ContentFilter,
    Rule,
    keyword_rule,
    prebuilt_rule,
)

TYPES: Final = frozenset({"litellm_content_filter", "content_filter", "regex", "pii", "pii_masking", "presidio"})
MODES: Final = frozenset({"pre_call", "during_call", "post_call"})


@dataclass(frozen=True, slots=True)
class Guardrail:
    name: str
    modes: frozenset[str]
    default_on: bool
    filter: ContentFilter

    @property
    def on_input(self) -> bool:
        return bool(self.modes & {"pre_call", "during_call"})

    @property
    def on_output(self) -> bool:
        return "post_call" in self.modes


def parse_guardrails(section: Any) -> list[Guardrail]:
    if section is None:
        return []
    if not isinstance(section, list):
        raise ConfigError("guardrails", "expected a list of guardrails")
    found: list[Guardrail] = []
    names: set[str] = set()
    for i, entry in enumerate(section):
        where = f"guardrails[{i}]"
        g = _guardrail(entry, where)
        if g.name in names:
            raise ConfigError(f"{where}.guardrail_name", f"duplicate guardrail name {g.name!r}")
        names.add(g.name)
        found.append(g)
    return found


def _guardrail(entry: Any, where: str) -> Guardrail:
    if not isinstance(entry, dict):
        raise ConfigError(where, "expected a mapping with guardrail_name and litellm_params")
    name = entry.get("guardrail_name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.guardrail_name", "required: a non-empty string")
    params = entry.get("litellm_params")
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.litellm_params", "required: a mapping")
    where = f"{where}.litellm_params"
    kind = params.get("guardrail")
    if not isinstance(kind, str) or kind.lower() not in TYPES:
        raise ConfigError(f"{where}.guardrail", f"{kind!r} is not a guardrail respgate has "
                          f"(built in: {', '.join(sorted(TYPES))})")
    modes = _modes(params.get("mode", "pre_call"), f"{where}.mode")
    default_on = params.get("default_on", False)
    if not isinstance(default_on, bool):
        raise ConfigError(f"{where}.default_on", "expected true or false")
    action = _action(params.get("action", "mask"), f"{where}.action")
    rules = _rules(params, kind.lower(), action, where)
    if not rules:
        raise ConfigError(where, "no patterns, blocked_words or pii_entities_config: the guardrail would do nothing")
    return Guardrail(name, modes, default_on, ContentFilter(rules))


def _modes(value: Any, where: str) -> frozenset[str]:
    values = value if isinstance(value, list) else [value]
    modes = set()
    for v in values:
        if not isinstance(v, str) or v not in MODES:
            raise ConfigError(where, f"{v!r} is not a mode (pre_call, during_call, post_call)")
        modes.add(v)
    if not modes:
        raise ConfigError(where, "at least one mode is needed")
    return frozenset(modes)


def _action(value: Any, where: str) -> Action:
    lowered = value.lower() if isinstance(value, str) else None
    if lowered == "mask":
        return "mask"
    if lowered == "block":
        return "block"
    raise ConfigError(where, f"{value!r} is not an action (mask, block)")


def _rules(params: dict[str, Any], kind: str, action: Action, where: str) -> list[Rule]:
    rules: list[Rule] = []
    entities = params.get("pii_entities_config")
    if entities is not None:
        if not isinstance(entities, dict):
            raise ConfigError(f"{where}.pii_entities_config", "expected a mapping of entity: MASK | BLOCK")
        for entity, act in entities.items():
            ours = PRESIDIO_ENTITIES.get(str(entity).upper())
            if ours is None:
                raise ConfigError(f"{where}.pii_entities_config.{entity}",
                                  f"respgate detects {', '.join(PRESIDIO_ENTITIES)} only (by regex)")
            rules.append(prebuilt_rule(ours, _action(act, f"{where}.pii_entities_config.{entity}")))
    patterns = params.get("patterns")
    if patterns is None and entities is None and not params.get("blocked_words"):
        patterns = list(DEFAULT_ORDER)
    if patterns is not None:
        if not isinstance(patterns, list):
            raise ConfigError(f"{where}.patterns", "expected a list")
        rules.extend(_pattern(p, action, f"{where}.patterns[{i}]") for i, p in enumerate(patterns))
    words = params.get("blocked_words") or []
    if not isinstance(words, list):
        raise ConfigError(f"{where}.blocked_words", "expected a list")
    for i, w in enumerate(words):
        at = f"{where}.blocked_words[{i}]"
        if isinstance(w, str) and w:
            rules.append(keyword_rule(w, "block"))
        elif isinstance(w, dict) and isinstance(w.get("keyword"), str) and w["keyword"]:
            rules.append(keyword_rule(w["keyword"], _action(w.get("action", "block"), f"{at}.action")))
        else:
            raise ConfigError(at, "expected a keyword or {keyword, action}")
    return _ordered(rules)


def _pattern(p: Any, default: Action, where: str) -> Rule:
    if isinstance(p, str):
        return _prebuilt(p, default, where)
    if not isinstance(p, dict):
        raise ConfigError(where, "expected a prebuilt name or a mapping")
    action = _action(p.get("action", default), f"{where}.action")
    kind = str(p.get("pattern_type") or ("regex" if "pattern" in p else "prebuilt")).lower()
    if kind == "prebuilt":
        name = p.get("pattern_name") or p.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"{where}.pattern_name", "required for a prebuilt pattern")
        return _prebuilt(name, action, f"{where}.pattern_name")
    if kind != "regex":
        raise ConfigError(f"{where}.pattern_type", f"{kind!r} is not a pattern type (prebuilt, regex)")
    regex = p.get("pattern")
    name = p.get("name") or p.get("pattern_name") or "custom"
    if not isinstance(regex, str) or not regex:
        raise ConfigError(f"{where}.pattern", "required: a regular expression")
    try:
        compiled = re.compile(regex)
    except re.error as e:
        raise ConfigError(f"{where}.pattern", f"not a valid regular expression ({e.msg})") from None
    return Rule(str(name), compiled, action)


def _prebuilt(name: str, action: Action, where: str) -> Rule:
    if ALIASES.get(name.lower(), name.lower()) not in PREBUILT:
        raise ConfigError(where, f"{name!r} is not a prebuilt pattern ({', '.join(PREBUILT)})")
    return prebuilt_rule(name, action)


def _ordered(rules: list[Rule]) -> list[Rule]:
    """Prebuilt patterns in DEFAULT_ORDER (a card number is masked before it could look like a phone),
    then the user's, as given."""
    rank = {name: i for i, name in enumerate(DEFAULT_ORDER)}
    return sorted(rules, key=lambda r: rank.get(r.name, len(rank)))
