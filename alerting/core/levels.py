"""From a score to the system's level word, its rank, and the alert priority it deserves.

Every system gets an ordered list of level words. Level systems use their own words (UK
NPEWS ``final_level``, NEWS2 ``level``); score-only systems (Bedside PEWS, Brighton) use the
levels of their priority map (``none``, ``low``, ``medium``, ``high``), so an alert always
says a level, never an empty string. The priority of a level comes from
``alerting/priorities.toml`` (docs/clinical/priorities.md#default-priorities).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

from wardwire.models import Priority

__all__ = ["LEVELS", "Level", "ScoreLike", "level_of", "load_priorities", "priority_of_level"]

LEVELS: dict[str, tuple[str, ...]] = {
    "uk_npews": ("none", "low", "medium", "high", "emergency"),
    "news2": ("low", "low_medium", "medium", "high"),
    "bedside_pews": ("none", "low", "medium", "high"),
    "brighton_pews": ("none", "low", "medium", "high"),
}


class ScoreLike(Protocol):
    """What the engine reads of a score result (``alerting.pews.ScoreResult``)."""

    @property
    def system(self) -> str: ...
    @property
    def band(self) -> str | None: ...
    @property
    def total(self) -> int: ...
    @property
    def items(self) -> Mapping[str, int | None]: ...
    @property
    def complete(self) -> bool: ...
    @property
    def missing(self) -> tuple[str, ...] | list[str]: ...
    @property
    def escalation(self) -> Mapping[str, object]: ...
    @property
    def table_version(self) -> str: ...


@cache
def load_priorities() -> dict[str, Any]:
    text = resources.files("alerting").joinpath("priorities.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@dataclass(frozen=True, slots=True)
class Level:
    word: str
    rank: int  # index in LEVELS[system]; 0 is the calmest
    priority: Priority | None  # None: below every alarm priority


def priority_of_level(
    system: str, word: str, table: Mapping[str, Any] | None = None
) -> Priority | None:
    """The IEC priority a level maps to (``None``: no alarm)."""
    rule = (table or load_priorities())[system]
    if rule["by"] in ("total", "flags"):
        return Priority(word) if word in ("low", "medium", "high") else None
    mapped = rule["levels"].get(word)
    return Priority(mapped) if mapped else None


def _word(result: ScoreLike, rule: Mapping[str, Any]) -> str:
    by = rule["by"]
    if by == "total":
        for name in ("high", "medium", "low"):
            if name in rule and result.total >= int(rule[name]):
                return name
        return "none"
    if by == "flags":
        for name in ("high", "medium", "low"):
            if name in rule and all(result.escalation.get(f) is True for f in rule[name]):
                return name
        return "none"
    if by.startswith("escalation."):
        level = result.escalation.get(by.split(".", 1)[1])
        if not isinstance(level, str):
            raise ValueError(f"score of {result.system} has no {by}")
        return level
    raise ValueError(f"unknown priority rule {by!r}")


def level_of(result: ScoreLike, table: Mapping[str, Any] | None = None) -> Level:
    """The level a score reaches under the priority table."""
    rules = table or load_priorities()
    rule = rules.get(result.system)
    if rule is None:
        raise KeyError(f"no priority rule for system {result.system!r}")
    word = _word(result, rule)
    words = LEVELS[result.system]
    return Level(word, words.index(word), priority_of_level(result.system, word, rules))
