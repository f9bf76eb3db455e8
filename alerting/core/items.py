"""What the engine holds per bed: one reading per scorer input key, with its provenance.

The scorer speaks the Appendix A vocabulary (docs/clinical/vocabulary.md#input-keys); the wire
speaks parameter codes (``wardwire.params``). This module is the one place that maps the two,
and that says how long each kind of value stays current:

* ``continuous`` device numerics (HR, pulse rate, RR, SpO2): a few sampling intervals;
* ``spot`` checks (NIBP, temperature): hours;
* ``charted`` nurse items (and any value a nurse entered): until reassessment is overdue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from wardwire.models import Observation, Quality, Source, TimeSource
from wardwire.params import BY_CODE

__all__ = [
    "CONTINUOUS",
    "ITEM_INPUTS",
    "SPOT",
    "Kind",
    "Reading",
    "from_observation",
    "kind_of",
]

#: the internal key of an oximeter's pulse rate (scored as HR only when ECG HR is absent, and
#: refused with it when the two disagree); not an Appendix A key
PR_KEY = "pr_bpm"
CONTINUOUS = frozenset({"hr_bpm", "rr_bpm", "spo2_pct", PR_KEY})
SPOT = frozenset({"sbp_mmhg", "temp_c"})
#: wire code -> input key for numerics
NUMERIC_KEYS = {
    "HR": "hr_bpm",
    "PR": PR_KEY,
    "RR": "rr_bpm",
    "SPO2": "spo2_pct",
    "NIBP_SYS": "sbp_mmhg",
    "TEMP": "temp_c",
    "CRT": "crt_s",
    "O2_FLOW": "oxygen.flow_lpm",
    "FIO2": "oxygen.fio2_pct",
}
#: wire categorical code -> input key
CATEGORICAL_KEYS = {"AVPU": "avpu", "RESP_EFFORT": "resp_effort", "O2_DEVICE": "oxygen.device"}
#: Bedside PEWS effort words -> UK NPEWS distress words (docs/clinical/vocabulary.md)
EFFORT_TO_DISTRESS = {
    "normal": "none",
    "mild": "mild",
    "moderate": "moderate",
    "severe": "severe",
    "apnoea": "severe",
}

#: score item -> the input keys it is computed from, per system (to hold what contributed)
ITEM_INPUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "bedside_pews": {
        "hr": ("hr_bpm",),
        "sbp": ("sbp_mmhg",),
        "crt": ("crt_s",),
        "rr": ("rr_bpm",),
        "resp_effort": ("resp_effort",),
        "spo2": ("spo2_pct",),
        "oxygen_therapy": ("oxygen",),
    },
    "uk_npews": {
        "rr": ("rr_bpm",),
        "resp_distress": ("resp_distress",),
        "spo2": ("spo2_pct",),
        "oxygen": ("oxygen",),
        "hr": ("hr_bpm",),
        "sbp": ("sbp_mmhg", "bp_skip_code"),
        "crt": ("crt_s",),
    },
    "brighton_pews": {
        "behaviour": ("behaviour",),
        "cardiovascular": (
            "skin_colour",
            "crt_s",
            "hr_bpm",
            "hr_above_upper_normal_bpm",
            "bradycardia_for_age",
        ),
        "respiratory": ("rr_bpm", "rr_above_upper_normal_bpm", "resp_signs", "oxygen"),
        "nebs": ("quarter_hourly_nebs",),
        "postop_vomiting": ("persistent_postop_vomiting",),
    },
    "news2": {
        "rr": ("rr_bpm",),
        "spo2": ("spo2_pct",),
        "air_or_oxygen": ("on_oxygen", "oxygen"),
        "sbp": ("sbp_mmhg",),
        "hr": ("hr_bpm",),
        "consciousness": ("consciousness", "avpu"),
        "temp": ("temp_c",),
    },
}


class Kind(StrEnum):
    CONTINUOUS = "continuous"
    SPOT = "spot"
    CHARTED = "charted"


def kind_of(key: str, source: Source) -> Kind:
    """How long a value stays current: by who produced it, then by what it is."""
    if source is Source.ENTERED:
        return Kind.CHARTED
    if key in CONTINUOUS:
        return Kind.CONTINUOUS
    if key in SPOT:
        return Kind.SPOT
    return Kind.CHARTED


@dataclass(frozen=True, slots=True)
class Reading:
    """One value for one input key. ``value is None``: the source says it has no value now
    (probe off, an explicit null): the key becomes missing, never normal."""

    key: str
    value: object
    at: datetime
    source: Source = Source.MEASURED
    device_id: str | None = None
    quality: Quality = Quality.VALID
    #: the gateway re-timed it (its device clock was implausible): stored, never scored
    retimed: bool = False
    #: the charted set it came from (a correction that supersedes the set replaces it)
    origin: str | None = None


def from_observation(obs: Observation) -> Reading | None:
    """The reading an observation carries, or ``None`` for a parameter no score uses."""
    param = BY_CODE[obs.code]
    retimed = obs.time_source is TimeSource.GATEWAY
    if obs.code in NUMERIC_KEYS:
        key = NUMERIC_KEYS[obs.code]
        value: object = obs.value
    elif obs.code in CATEGORICAL_KEYS:
        key = CATEGORICAL_KEYS[obs.code]
        value = param.category(obs.value) if param.plausible(obs.value) else None
    else:
        return None
    if obs.quality is Quality.INVALID:
        value = None
    return Reading(key, value, obs.measured_at, obs.source, obs.device_id, obs.quality, retimed)
