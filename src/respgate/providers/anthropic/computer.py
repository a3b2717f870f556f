"""Computer use: OpenAI's computer tool and actions <-> Anthropic's `computer` tool. Pure tables.

The tool: `computer_use_preview` (display_width / display_height) or OpenAI's `computer` (no display
size: the deployment's litellm_params `display_width_px` / `display_height_px` give it) becomes
Anthropic's `computer_20251124` (Claude Opus 4.5 and later, Sonnet 4.6) or `computer_20250124` (the
models before), chosen by model name or forced with litellm_params `computer_use_tool`; each needs
its `anthropic-beta` value (`BETAS`), which the provider adds to the headers.

Actions, both ways (OpenAI on the left): click left/right/wheel <-> left_click/right_click/
middle_click; double_click <-> double_click; drag (path) <-> left_click_drag (first and last point);
keypress (keys) <-> key ("ctrl+s", xdotool names, `KEYS`); move <-> mouse_move; screenshot <->
screenshot; scroll (pixels) <-> scroll (direction and wheel clicks of `SCROLL_PIXELS`); type <-> type;
wait <-> wait. Modifier keys held during a click or scroll travel as Anthropic's `text`. Anthropic's
actions with no OpenAI counterpart become the nearest one: triple_click -> double_click,
left_mouse_down/up and cursor_position -> move, hold_key -> keypress, zoom -> screenshot. A click
without coordinates happens at the cursor: the last position this translation knows of.

Safety checks: Anthropic has none, so `pending_safety_checks` is always empty, and the
`acknowledged_safety_checks` of a computer_call_output (acknowledging another provider's) are dropped.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from ...deployments import Deployment

Json = dict[str, Any]

NAME: Final = "computer"  # the only name Anthropic accepts for its computer tool
BETAS: Final = {"computer_20251124": "computer-use-2025-11-24", "computer_20250124": "computer-use-2025-01-24",
                "computer_20241022": "computer-use-2024-10-22"}
_MODEL: Final = re.compile(r"claude-(opus|sonnet|haiku)-(\d+)(?:-(\d)(?!\d))?")
SCROLL_PIXELS: Final = 100  # one wheel click, as browsers scroll it

#: xdotool key names (Anthropic) -> the names OpenAI's computer models use; the rest are lower-cased
_KEYS_TO_OPENAI: Final = {"Return": "enter", "KP_Enter": "enter", "Escape": "esc", "BackSpace": "backspace",
                          "Up": "arrowup", "Down": "arrowdown", "Left": "arrowleft", "Right": "arrowright",
                          "Page_Up": "pageup", "Page_Down": "pagedown", "super": "meta", "Super_L": "meta",
                          "Control_L": "ctrl", "Shift_L": "shift", "Alt_L": "alt", "Delete": "delete",
                          "Tab": "tab", "Home": "home", "End": "end", "space": "space"}
_KEYS_TO_XDOTOOL: Final = {"enter": "Return", "return": "Return", "esc": "Escape", "escape": "Escape",
                           "backspace": "BackSpace", "arrowup": "Up", "arrowdown": "Down", "arrowleft": "Left",
                           "arrowright": "Right", "up": "Up", "down": "Down", "left": "Left", "right": "Right",
                           "pageup": "Page_Up", "pagedown": "Page_Down", "meta": "super", "cmd": "super",
                           "command": "super", "win": "super", "super": "super", "control": "ctrl", "ctrl": "ctrl",
                           "option": "alt", "alt": "alt", "shift": "shift", "delete": "Delete", "del": "Delete",
                           "tab": "Tab", "home": "Home", "end": "End", "space": "space", "insert": "Insert"}
_BUTTONS: Final = {"left": "left_click", "right": "right_click", "wheel": "middle_click"}
_CLICKS: Final = {"left_click": "left", "right_click": "right", "middle_click": "wheel"}


def tool_version(d: Deployment) -> str:
    forced = d.extra.get("computer_use_tool")
    if isinstance(forced, str) and forced in BETAS:
        return forced
    # Anthropic's docs: computer_20251124 for Claude Opus 4.5 and later and Sonnet 4.6 and later,
    # computer_20250124 for the models before (Claude 3.7 names such as claude-3-7-sonnet included)
    model = d.upstream_model.lower()
    if "claude-3" in model:
        return "computer_20250124"
    match = _MODEL.search(model)
    if match is None:
        return "computer_20251124"  # a naming of the future
    family, major, minor = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    newer = (major, minor) >= ((4, 5) if family == "opus" else (4, 6))
    return "computer_20251124" if newer else "computer_20250124"


def anthropic_tool(tool: Json, d: Deployment) -> Json | None:
    """The Anthropic tool for an OpenAI computer tool; None when no display size is known."""
    if tool.get("type") == "computer_use_preview":
        width, height = tool.get("display_width"), tool.get("display_height")
    else:
        width, height = d.extra.get("display_width_px"), d.extra.get("display_height_px")
    if not isinstance(width, int) or not isinstance(height, int):
        return None
    out: Json = {"type": tool_version(d), "name": NAME, "display_width_px": width, "display_height_px": height}
    if isinstance(d.extra.get("display_number"), int):
        out["display_number"] = d.extra["display_number"]
    return out


# --- OpenAI -> Anthropic (a computer_call sent back as a tool_use) ---------------------------------------

def _keys_text(keys: Any) -> str:
    # a lone letter is the key itself ("A" would mean shift+a to xdotool)
    return "+".join(_KEYS_TO_XDOTOOL.get(str(k).lower(), str(k).lower() if len(str(k)) == 1 else str(k))
                    for k in keys or ())


def to_anthropic(action: Json) -> Json:
    """One OpenAI action -> the input of an Anthropic computer tool_use."""
    kind = action.get("type")
    out: Json
    if kind == "click":
        out = {"action": _BUTTONS.get(action.get("button", "left"), "left_click"),
               "coordinate": [action["x"], action["y"]]}
        if action.get("button") in ("back", "forward"):  # browser history buttons: their key
            out = {"action": "key", "text": "alt+Left" if action["button"] == "back" else "alt+Right"}
    elif kind == "double_click":
        out = {"action": "double_click", "coordinate": [action["x"], action["y"]]}
    elif kind == "drag":
        path = action.get("path") or [{"x": 0, "y": 0}]
        out = {"action": "left_click_drag", "start_coordinate": [path[0]["x"], path[0]["y"]],
               "coordinate": [path[-1]["x"], path[-1]["y"]]}
    elif kind == "keypress":
        out = {"action": "key", "text": _keys_text(action.get("keys"))}
    elif kind == "move":
        out = {"action": "mouse_move", "coordinate": [action["x"], action["y"]]}
    elif kind == "scroll":
        dx, dy = int(action.get("scroll_x") or 0), int(action.get("scroll_y") or 0)
        direction = ("down" if dy > 0 else "up") if abs(dy) >= abs(dx) else ("right" if dx > 0 else "left")
        amount = max(1, math.ceil(max(abs(dx), abs(dy)) / SCROLL_PIXELS))
        out = {"action": "scroll", "coordinate": [action["x"], action["y"]], "scroll_direction": direction,
               "scroll_amount": amount}
    elif kind == "type":
        out = {"action": "type", "text": action.get("text", "")}
    elif kind == "wait":
        out = {"action": "wait", "duration": 1}
    else:  # screenshot
        out = {"action": "screenshot"}
    held = action.get("keys") if kind in ("click", "double_click", "scroll", "move", "drag") else None
    if held and out["action"] != "key":
        out["text"] = _keys_text(held)
    return out


# --- Anthropic -> OpenAI (a tool_use from Claude becomes a computer_call) --------------------------------

def _key_names(text: str) -> list[str]:
    return [_KEYS_TO_OPENAI.get(k, k.lower()) for k in text.split("+") if k]


class Cursor:
    """Where the pointer is, for actions that leave out their coordinate."""

    __slots__ = ("x", "y")

    def __init__(self, x: int = 0, y: int = 0) -> None:
        self.x, self.y = x, y

    def at(self, coordinate: Any) -> tuple[int, int]:
        if isinstance(coordinate, list) and len(coordinate) == 2:
            self.x, self.y = int(coordinate[0]), int(coordinate[1])
        return self.x, self.y


def to_openai(given: Json, cursor: Cursor) -> Json:
    """The input of Claude's computer tool_use -> one OpenAI action."""
    kind = given.get("action")
    held = _key_names(given["text"]) if isinstance(given.get("text"), str) and given["text"] else None
    if kind in _CLICKS or kind == "double_click" or kind == "triple_click":
        x, y = cursor.at(given.get("coordinate"))
        if kind in _CLICKS:
            return {"type": "click", "button": _CLICKS[kind], "x": x, "y": y, **({"keys": held} if held else {})}
        return {"type": "double_click", "x": x, "y": y, "keys": held}
    if kind == "left_click_drag":
        start = cursor.at(given.get("start_coordinate"))
        end = cursor.at(given.get("coordinate"))
        return {"type": "drag", "path": [{"x": start[0], "y": start[1]}, {"x": end[0], "y": end[1]}]}
    if kind in ("key", "hold_key"):
        return {"type": "keypress", "keys": _key_names(str(given.get("text") or ""))}
    if kind == "type":
        return {"type": "type", "text": str(given.get("text") or "")}
    if kind in ("mouse_move", "left_mouse_down", "left_mouse_up", "cursor_position"):
        x, y = cursor.at(given.get("coordinate"))
        return {"type": "move", "x": x, "y": y}
    if kind == "scroll":
        x, y = cursor.at(given.get("coordinate"))
        pixels = int(given.get("scroll_amount") or 1) * SCROLL_PIXELS
        direction = given.get("scroll_direction")
        dx = pixels if direction == "right" else -pixels if direction == "left" else 0
        dy = pixels if direction == "down" else -pixels if direction == "up" else 0
        return {"type": "scroll", "x": x, "y": y, "scroll_x": dx, "scroll_y": dy, **({"keys": held} if held else {})}
    if kind == "wait":
        return {"type": "wait"}
    return {"type": "screenshot"}  # screenshot, zoom, and actions of the future


def last_cursor(items: list[Json]) -> Cursor:
    """The pointer position after the last computer action in the history."""
    for item in reversed(items):
        if item.get("type") != "computer_call":
            continue
        actions = item.get("actions") or ([item["action"]] if item.get("action") else [])
        for action in reversed(actions):
            if "x" in action and "y" in action:
                return Cursor(int(action["x"]), int(action["y"]))
            if action.get("path"):
                return Cursor(int(action["path"][-1]["x"]), int(action["path"][-1]["y"]))
    return Cursor()
