"""Per-bed streaming rules, pure: latest values -> score inputs -> score -> alert condition.

Theory of operation
-------------------
Each bed keeps the latest value per parameter with its provenance. On evaluation (``now`` is
an argument) values are turned into scorer inputs under three rules that keep missing data
from looking normal:

* a device value older than ``stale_s`` is *missing*; a charted (nurse-entered) value is
  carried forward up to ``charted_max_age_s`` (a provisional score, labelled so);
* a value outside the artefact limits (``artefact_limits.toml``) or flagged invalid by its
  device is *missing*, and counted;
* the score names what is missing and says ``complete: false``: a device-only score is a lower
  bound of the full score, so it can raise an alert but never clear a charted one.

The alert condition is "priority (from ``priorities.toml``) at or above the unit's minimum",
held for ``onset_s`` before it turns on (persistence, docs/clinical/alarm_fatigue.md#persistence)
and absent for ``clear_s`` before it turns off (hysteresis,
docs/clinical/alarm_fatigue.md#hysteresis). A rise in priority while on is immediate.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from typing import Any, Protocol

from wardwire.models import Observation, Priority, Quality, ScoreInput, Source, TimeSource
from wardwire.params import BY_CODE

#: wardwire parameter code -> pews input key (docs/clinical/vocabulary.md#input-keys).
NUMERIC_INPUTS = {
    "HR": "hr_bpm",
    "RR": "rr_bpm",
    "SPO2": "spo2_pct",
    "NIBP_SYS": "sbp_mmhg",
    "TEMP": "temp_c",
    "CRT": "crt_s",
}
#: fallback sources for an input when the primary code is missing.
FALLBACK = {"HR": "PR"}
RESP_DISTRESS = {
    "normal": "none",
    "mild": "mild",
    "moderate": "moderate",
    "severe": "severe",
    "apnoea": "severe",
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
    def missing(self) -> Sequence[str]: ...
    @property
    def escalation(self) -> Mapping[str, object]: ...
    @property
    def table_version(self) -> str: ...


class Scorer(Protocol):
    def __call__(
        self,
        system: str,
        inputs: Mapping[str, object],
        *,
        dob: date | None = ...,
        at: datetime | None = ...,
    ) -> ScoreLike: ...


def _load_toml(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("alerting").joinpath(name).read_text(encoding="utf-8"))


def load_artefact_limits() -> dict[str, tuple[float, float]]:
    raw = _load_toml("artefact_limits.toml")["limits"]
    return {code: (float(v["low"]), float(v["high"])) for code, v in raw.items()}


def load_priorities() -> dict[str, Any]:
    return _load_toml("priorities.toml")


def priority_of(result: ScoreLike, table: Mapping[str, Any]) -> Priority | None:
    """The alert priority a score deserves under the unit's priority table (None = no alert)."""
    rule = table.get(result.system)
    if rule is None:
        raise KeyError(f"no priority rule for system {result.system!r}")
    by = rule["by"]
    if by == "total":
        for name in ("high", "medium", "low"):
            if name in rule and result.total >= int(rule[name]):
                return Priority(name)
        return None
    if by.startswith("escalation."):
        level = result.escalation.get(by.split(".", 1)[1])
        mapped = rule["levels"].get(level) if isinstance(level, str) else None
        return Priority(mapped) if mapped else None
    if by == "flags":
        for name in ("high", "medium", "low"):
            if name in rule and all(result.escalation.get(f) is True for f in rule[name]):
                return Priority(name)
        return None
    raise ValueError(f"unknown priority rule {by!r}")


@dataclass(frozen=True, slots=True)
class RuleConfig:
    system: str
    min_priority: Priority = Priority.MEDIUM
    onset_s: float = 30.0
    clear_s: float = 30.0
    stale_s: float = 60.0
    charted_max_age_s: float = 4 * 3600.0
    artefact: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    priorities: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Latest:
    value: float
    measured_at: datetime
    source: Source
    device_id: str | None


@dataclass
class BedState:
    values: dict[str, Latest] = field(default_factory=dict)
    pending_since: datetime | None = None
    clear_since: datetime | None = None
    on: bool = False
    priority: Priority | None = None
    artefacts: int = 0
    #: code -> time the device declared it invalid (older readings may not bring it back)
    invalid_since: dict[str, datetime] = field(default_factory=dict)
    #: the alert now on was raised by a complete score (an incomplete one may not clear it)
    raised_complete: bool = False


def usable(obs: Observation) -> bool:
    """Whether a value may be scored: not flagged invalid, and timed by a trusted clock.

    A re-timed value (``time_source=gateway``: the device's clock was implausible, so the
    gateway stamped its receive time) has no trustworthy measurement time, so it is never
    scored as current: its parameter is missing until a properly timed value comes.
    """
    return obs.quality is not Quality.INVALID and obs.time_source is TimeSource.DEVICE


def observe(state: BedState, obs: Observation) -> None:
    """Take one observation into the bed's latest values (older readings never overwrite)."""
    cur = state.values.get(obs.code)
    if cur is not None and cur.measured_at > obs.measured_at:
        return
    dead = state.invalid_since.get(obs.code)
    if dead is not None and dead >= obs.measured_at:
        return
    if not usable(obs):
        state.values.pop(obs.code, None)  # the device says it has no valid value now
        state.invalid_since[obs.code] = obs.measured_at
        return
    state.invalid_since.pop(obs.code, None)
    state.values[obs.code] = Latest(obs.value, obs.measured_at, obs.source, obs.device_id)


def _fresh(v: Latest, now: datetime, cfg: RuleConfig) -> bool:
    limit = cfg.stale_s if v.source is Source.MEASURED else cfg.charted_max_age_s
    age = (now - v.measured_at).total_seconds()
    return -cfg.stale_s <= age <= limit


def build_inputs(
    state: BedState, now: datetime, cfg: RuleConfig
) -> tuple[dict[str, object], list[ScoreInput]]:
    """Scorer inputs from fresh, plausible values, with the provenance of each."""
    inputs: dict[str, object] = {}
    used: list[ScoreInput] = []

    def take(code: str) -> Latest | None:
        v = state.values.get(code)
        if v is None or not _fresh(v, now, cfg):
            return None
        lim = cfg.artefact.get(code)
        if lim is not None and not lim[0] <= v.value <= lim[1]:
            state.artefacts += 1
            return None
        used.append(
            ScoreInput(
                code=code,
                value=v.value,
                source=v.source,
                device_id=v.device_id,
                measured_at=v.measured_at,
            )
        )
        return v

    for code, key in NUMERIC_INPUTS.items():
        v = take(code)
        if v is None and code in FALLBACK:
            v = take(FALLBACK[code])
        if v is not None:
            inputs[key] = v.value
    cats = {c: take(c) for c in ("AVPU", "RESP_EFFORT", "O2_DEVICE")}
    if cats["AVPU"] is not None:
        inputs["avpu"] = BY_CODE["AVPU"].category(cats["AVPU"].value)
    if cats["RESP_EFFORT"] is not None:
        effort = BY_CODE["RESP_EFFORT"].category(cats["RESP_EFFORT"].value)
        inputs["resp_distress" if cfg.system == "uk_npews" else "resp_effort"] = (
            RESP_DISTRESS[effort] if cfg.system == "uk_npews" else effort
        )
    if cats["O2_DEVICE"] is not None:
        oxygen: dict[str, object] = {
            "device": BY_CODE["O2_DEVICE"].category(cats["O2_DEVICE"].value)
        }
        flow, fio2 = take("O2_FLOW"), take("FIO2")
        if flow is not None:
            oxygen["flow_lpm"] = flow.value
        if fio2 is not None:
            oxygen["fio2_pct"] = fio2.value
        inputs["oxygen"] = oxygen
    return inputs, used


@dataclass(frozen=True, slots=True)
class Evaluation:
    result: ScoreLike
    inputs: list[ScoreInput]
    priority: Priority | None
    decision: str | None  # "on", "off" or None (no change)
    provisional: bool


def evaluate(
    state: BedState, now: datetime, cfg: RuleConfig, scorer: Scorer, dob: date
) -> Evaluation | None:
    """Score the bed now and advance its alert condition. ``None`` when nothing is fresh."""
    inputs, used = build_inputs(state, now, cfg)
    if not used:
        return None
    result = scorer(cfg.system, inputs, dob=dob, at=now)
    prio = priority_of(result, cfg.priorities)
    meets = prio is not None and prio.rank >= cfg.min_priority.rank
    decision: str | None = None
    if meets:
        state.clear_since = None
        if state.on:
            if (
                prio is not None
                and state.priority is not None
                and prio.rank > state.priority.rank
            ):
                decision = "on"  # worsening while on: immediately
        else:
            state.pending_since = state.pending_since or now
            if (now - state.pending_since).total_seconds() >= cfg.onset_s:
                state.on, decision = True, "on"
        if decision:
            state.priority = prio
            state.raised_complete = state.raised_complete or result.complete
    else:
        state.pending_since = None
        if state.on and state.raised_complete and not result.complete:
            # A partial score is a lower bound: it cannot show that a complete one has eased.
            state.clear_since = None
        elif state.on:
            state.clear_since = state.clear_since or now
            if (now - state.clear_since).total_seconds() >= cfg.clear_s:
                state.on, state.priority, decision = False, None, "off"
                state.raised_complete = False
    provisional = any(u.source is Source.ENTERED for u in used) or not result.complete
    return Evaluation(result, used, prio, decision, provisional)
