"""The unit rules file: every timing and limit of the alert engine, as validated data.

One TOML file per unit (``alerting/unit_rules.toml`` holds the shipped defaults, each with its
source in docs/alerting.md). A unit's file sets only what it changes; what it leaves out keeps
the default. Unknown keys are errors (a misspelt key that silently did nothing is how a rule
change goes unnoticed), and so are values out of range.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alerting.core.levels import LEVELS
from servicekit.tomlio import load_toml_model, validation_lines
from wardwire.models import Priority

__all__ = ["TECHNICAL", "RulesError", "UnitRules", "default_rules", "load_rules", "rules_from"]

Seconds = Annotated[float, Field(ge=0, le=7 * 86400)]
Positive = Annotated[float, Field(gt=0, le=7 * 86400)]

#: every technical alert the engine raises (the keys of ``[technical]``)
TECHNICAL = (
    "gateway_offline",
    "monitoring_paused",
    "device_offline",
    "no_signal",
    "low_battery",
    "no_data",
    "stale_parameter",
    "parameter_lost",
    "seq_gap",
    "outbox_reset",
    "outbox_overflow",
    "clock_skew",
    "cannot_score",
    "no_dob",
    "context_unavailable",
    "pager_failed",
)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Freshness(_Section):
    continuous_s: Positive = 180
    interval_factor: Annotated[float, Field(ge=1, le=20)] = 2.5
    spot_s: Positive = 4 * 3600
    charted_s: Positive = 4.5 * 3600
    no_data_s: Positive = 180
    max_ahead_s: Seconds = 60
    #: an item held this long for an open alert raises parameter_lost (one missed reading
    #: is held at once, but is not worth a technical alarm)
    lost_after_s: Seconds = 60


class Onset(_Section):
    high_s: Seconds = 90
    medium_s: Seconds = 240
    low_s: Seconds = 300
    sustained_fraction: Annotated[float, Field(gt=0, le=1)] = 0.8
    confirmations: Annotated[int, Field(ge=1, le=20)] = 2
    #: before an alert is open, an item that scored and went missing is held this long, so a
    #: probe reading nothing now and then does not read as a lower score
    bridge_s: Seconds = 30

    def window(self, p: Priority) -> float:
        return {Priority.HIGH: self.high_s, Priority.MEDIUM: self.medium_s}.get(p, self.low_s)


class Clear(_Section):
    clear_s: Seconds = 300


def _default_jump() -> dict[str, float]:
    return {"hr_bpm": 50.0, "pr_bpm": 50.0, "rr_bpm": 40.0, "spo2_pct": 15.0}


class Artefact(_Section):
    confirm_s: Positive = 120
    hr_pr_disagreement: Annotated[float, Field(gt=0, le=1)] = 0.10
    jump: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=_default_jump)
    jump_within_s: Seconds = 10

    @model_validator(mode="after")
    def _known(self) -> Artefact:
        bad = set(self.jump) - {"hr_bpm", "pr_bpm", "rr_bpm", "spo2_pct"}
        if bad:
            raise ValueError(f"jump: no jump limit for {sorted(bad)} (continuous items only)")
        # a unit's jump table keeps the limits it does not set
        object.__setattr__(self, "jump", {**_default_jump(), **self.jump})
        return self


Role = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
#: (role, seconds after the previous step's notification without an acknowledgement; 0: the
#: priority's escalation timer ``*_s``)
ChainStep = tuple[Role, Annotated[float, Field(ge=0, le=86400)]]


def _default_chains() -> dict[str, list[ChainStep]]:
    # the NPEWS escalation (docs/clinical/uk_npews.md#escalation): the bedside nurse, then
    # the nurse in charge, then the rapid review / response team, at the escalation timers
    return {
        "high": [("bedside_nurse", 0), ("nurse_in_charge", 0), ("rapid_response_team", 0)],
        "medium": [("bedside_nurse", 0), ("nurse_in_charge", 0)],
        "low": [("bedside_nurse", 0)],
    }


class Escalation(_Section):
    """Who is notified, in order, while an alert stays unacknowledged (clinical alerts), and
    how often the last of them is re-notified (``*_s``; 0: never)."""

    high_s: Positive = 60
    medium_s: Positive = 180
    #: 0: never (a LOW alert is for awareness: IEC 60601-1-8 asks no response of it)
    low_s: Seconds = 0
    chain: dict[str, Annotated[list[ChainStep], Field(min_length=1, max_length=8)]] = Field(
        default_factory=_default_chains
    )
    #: technical alerts go to this role, re-notified at their priority's ``*_s``
    technical_role: Role = "bedside_nurse"

    @model_validator(mode="after")
    def _chains(self) -> Escalation:
        unknown = set(self.chain) - {"high", "medium", "low"}
        if unknown:
            raise ValueError(f"chain: priorities are high, medium, low (not {sorted(unknown)})")
        merged = {**_default_chains(), **self.chain}
        object.__setattr__(self, "chain", merged)
        return self

    def after(self, p: Priority) -> float:
        """How often the last notified role is notified again (0: never)."""
        return {Priority.HIGH: self.high_s, Priority.MEDIUM: self.medium_s}.get(p, self.low_s)

    def steps(self, p: Priority, clinical: bool) -> list[ChainStep]:
        if not clinical:
            return [(self.technical_role, 0.0)]
        return self.chain.get(p.value, self.chain["low"])

    def next_after(self, p: Priority, step: int, clinical: bool) -> float:
        """Seconds from the notification at ``step`` to the next one (0: none)."""
        steps = self.steps(p, clinical)
        if step + 1 < len(steps):
            return steps[step + 1][1] or self.after(p)
        return self.after(p)

    def role(self, p: Priority, step: int, clinical: bool) -> str:
        steps = self.steps(p, clinical)
        return steps[min(step, len(steps) - 1)][0]


LevelMinutes = dict[str, Annotated[float, Field(gt=0, le=7 * 24 * 60)]]


def _default_reassessment() -> dict[str, LevelMinutes]:
    return {
        "uk_npews": {"low": 60, "medium": 30, "high": 15, "emergency": 15},
        "bedside_pews": {"low": 240, "medium": 120, "high": 120},
        "news2": {"low_medium": 60, "medium": 60, "high": 15},
        "default": {"low": 60, "medium": 30, "high": 15},
    }


class Snooze(_Section):
    high: Annotated[float, Field(ge=0, le=0)] = 0  # a HIGH alert is never silenced
    medium: Annotated[float, Field(ge=0, le=240)] = 15
    low: Annotated[float, Field(ge=0, le=24 * 60)] = 60

    def longest_min(self, p: Priority) -> float:
        return {Priority.HIGH: self.high, Priority.MEDIUM: self.medium}.get(p, self.low)


def _default_technical() -> dict[str, Priority]:
    low, med = Priority.LOW, Priority.MEDIUM
    return {
        "gateway_offline": med, "monitoring_paused": low, "device_offline": low,
        "no_signal": low, "low_battery": low, "no_data": med, "stale_parameter": low,
        "parameter_lost": med, "seq_gap": low, "outbox_reset": low, "outbox_overflow": med,
        "clock_skew": low, "cannot_score": med, "no_dob": med, "context_unavailable": med,
        "pager_failed": med,
    }


class UnitRules(_Section):
    """A unit's alert rules (every key optional; see ``alerting/unit_rules.toml``)."""

    version: Annotated[str, Field(min_length=1, max_length=64)] = "1"
    #: the unit's IANA time zone, for ages (a birthday starts at local midnight); the unit
    #: context's own time zone wins where it has one
    time_zone: str | None = None
    min_priority: Priority = Priority.LOW
    freshness: Freshness = Freshness()
    onset: Onset = Onset()
    clear: Clear = Clear()
    artefact: Artefact = Artefact()
    escalation: Escalation = Escalation()
    reassessment: dict[str, LevelMinutes] = Field(default_factory=_default_reassessment)
    snooze: Snooze = Snooze()
    technical: dict[str, Priority] = Field(default_factory=_default_technical)

    @model_validator(mode="after")
    def _check(self) -> UnitRules:
        if self.min_priority is Priority.INFO:
            raise ValueError("min_priority: info is not an alarm priority (low, medium or high)")
        unknown = set(self.technical) - set(TECHNICAL)
        if unknown:
            raise ValueError(f"technical: unknown technical alert(s) {sorted(unknown)}")
        merged = {**_default_technical(), **self.technical}
        object.__setattr__(self, "technical", merged)
        for system, row in self.reassessment.items():
            words = (
                LEVELS.get(system)
                if system != "default"
                else tuple({w for ws in LEVELS.values() for w in ws})
            )
            if words is None:
                raise ValueError(f"reassessment: unknown system {system!r}")
            bad_words = set(row) - set(words)
            if bad_words:
                raise ValueError(
                    f"reassessment.{system}: unknown level(s) {sorted(bad_words)} "
                    f"(levels: {', '.join(words) if system != 'default' else 'any system level'})"
                )
        defaults_r = _default_reassessment()
        merged_r = {  # per level: a unit's row keeps the levels it does not set
            system: {**defaults_r.get(system, {}), **row}
            for system, row in {**defaults_r, **self.reassessment}.items()
        }
        if "default" not in merged_r:
            raise ValueError("reassessment: a default row is required")
        object.__setattr__(self, "reassessment", merged_r)
        if self.time_zone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"time_zone: unknown IANA time zone {self.time_zone!r}") from None
        return self

    def reassess_s(self, system: str, level: str) -> float:
        """Reassessment interval of a level, seconds (the system's own row, else the default)."""
        row = self.reassessment.get(system) or self.reassessment["default"]
        minutes = row.get(level)
        if minutes is None:
            minutes = self.reassessment["default"].get(level, 30)
        return float(minutes) * 60

    def technical_priority(self, rule: str) -> Priority:
        return self.technical[rule]


class RulesError(Exception):
    """A rules file that is missing or invalid; the message names each key path."""


def rules_from(raw: Mapping[str, Any], where: str = "rules") -> UnitRules:
    """Validate a parsed rules mapping; the error names each key path."""
    try:
        return UnitRules.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{where}: invalid unit rules:", *validation_lines(exc)]
        raise RulesError("\n".join(lines)) from exc


def load_rules(path: Path | None) -> UnitRules:
    """The rules in ``path`` (read by the kit's one TOML loader), or the shipped defaults."""
    if path is None:
        return default_rules()
    return load_toml_model(path, UnitRules, "unit rules", RulesError)


def default_rules() -> UnitRules:
    """The shipped ``alerting/unit_rules.toml``."""
    text = resources.files("alerting").joinpath("unit_rules.toml").read_text(encoding="utf-8")
    return rules_from(tomllib.loads(text), "alerting/unit_rules.toml")
