"""A coach's settings (tag lead, tag kinds, nudge thresholds): the defaults and the one validator.

The settings arrive from a browser, so every value is checked for type and a sane range before
it is stored: a bad threshold must never reach a live call. The format is in docs/sidebar.md.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .nudges import DEFAULT_NUDGES

KIND_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
MAX_TAG_KINDS = 9
"""Keys 1 to 9 press the tag buttons."""
MAX_LABEL = 60

DEFAULTS: dict[str, Any] = {
    "tag_lead_s": 5,
    "tag_kinds": [
        {"id": "breakthrough", "label": "Breakthrough"},
        {"id": "resistance", "label": "Resistance"},
        {"id": "action_commitment", "label": "Action commitment"},
        {"id": "goal_clarity", "label": "Goal clarity"},
        {"id": "emotional_shift", "label": "Emotional shift"},
        {"id": "confidence", "label": "Confidence"},
    ],
    "nudges": DEFAULT_NUDGES,
}

NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "tag_lead_s": (0, 60),
    "nudges.min_gap_s": (0, 3600),
    "nudges.same_kind_gap_s": (0, 7200),
    "nudges.show_s": (1, 600),
    "nudges.talk_balance.share": (0.5, 1),
    "nudges.talk_balance.min_speech_s": (0, 600),
    "nudges.monologue.seconds": (10, 3600),
    "nudges.wait.filled_silences": (1, 50),
    "nudges.wait.window_s": (30, 3600),
    "nudges.client_quiet.seconds": (10, 3600),
}
"""Every number a coach may set, with its inclusive range."""
INTEGERS = {"nudges.wait.filled_silences"}


class SettingsError(ValueError):
    """The message names the offending key, e.g. ``nudges.monologue.seconds must be …``."""


def validate(settings: Any) -> dict[str, Any]:
    """The complete settings: ``settings`` checked, with what it leaves out taken from the defaults."""
    return _merge(DEFAULTS, settings, "")


def merged(stored: dict[str, Any] | None) -> dict[str, Any]:
    """Stored settings (validated when they were stored) over the current defaults: a setting
    added later gets its default, and one since removed is left out."""
    return _overlay(DEFAULTS, stored or {})


def _overlay(default: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in default.items():
        mine = stored.get(key, value)
        if isinstance(value, dict):
            out[key] = _overlay(value, mine if isinstance(mine, dict) else {})
        else:
            out[key] = copy.deepcopy(mine) if isinstance(mine, (dict, list)) else mine  # the rest is immutable
    return out


def _merge(default: dict[str, Any], given: Any, path: str) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise SettingsError(f"{path or 'the settings'} must be an object")
    unknown = sorted(set(given) - set(default))
    if unknown:
        raise SettingsError(f"unknown setting {_join(path, unknown[0])}")
    out = {}
    for key, value in default.items():
        name = _join(path, key)
        if key not in given:
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict):
            out[key] = _merge(value, given[key], name)
        elif key == "tag_kinds":
            out[key] = _tag_kinds(given[key])
        elif isinstance(value, bool):
            out[key] = _boolean(given[key], name)
        else:
            out[key] = _number(given[key], name)
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{name} must be true or false")
    return value


def _number(value: Any, name: str) -> float | int:
    low, high = NUMBER_RANGES[name]
    integer = name in INTEGERS
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if not ok or not low <= value <= high:  # the range check also turns away NaN and infinities
        raise SettingsError(f"{name} must be {'an integer' if integer else 'a number'} from {low:g} to {high:g}")
    return value


def _tag_kinds(kinds: Any) -> list[dict[str, str]]:
    if not isinstance(kinds, list) or len(kinds) > MAX_TAG_KINDS:
        raise SettingsError(f"tag_kinds must be a list of at most {MAX_TAG_KINDS} kinds")
    out = []
    for i, kind in enumerate(kinds):
        if not isinstance(kind, dict) or set(kind) != {"id", "label"}:
            raise SettingsError(f"tag_kinds[{i}] must be an object with exactly 'id' and 'label'")
        if not isinstance(kind["id"], str) or not KIND_ID.fullmatch(kind["id"]):
            raise SettingsError(f"tag_kinds[{i}].id must be 1 to 40 characters of A-Z a-z 0-9 _ -")
        if not valid_label(kind["label"]):
            raise SettingsError(f"tag_kinds[{i}].label must be 1 to {MAX_LABEL} characters")
        out.append({"id": kind["id"], "label": kind["label"]})
    if len({k["id"] for k in out}) != len(out):
        raise SettingsError("tag_kinds ids must be unique")
    return out


def valid_label(label: Any) -> bool:
    """A name shown on a button: 1 to 60 characters, not only blanks."""
    return isinstance(label, str) and 0 < len(label) <= MAX_LABEL and bool(label.strip())
