"""The scoring vocabulary (docs/clinical/vocabulary.md), and validation of observation sets.

The vocabulary is an interface (the names clinical reviewers type into validation cases), not a
clinical table, so it lives in code; every *number that changes a score* lives in the table
files. Validation here is about what the scorer can read: unknown keys, wrong types, unknown
enum values and physically impossible values (negative, a percentage above 100) raise
`PewsInputError` naming the field. Plausibility/artefact limits
(docs/clinical/artefact_limits.md#limits) belong to the streaming engine, which turns a rejected
value into a *missing* one before scoring.

Keys of another system's vocabulary are validated too (a malformed ``avpu`` is a data error on
any unit) and then ignored by scorers that do not use them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from .errors import PewsInputError
from .intervals import Domain

OXYGEN_DEVICES = ("room_air", "NP", "FM", "HB", "NRB", "HF", "BiP", "CP")
ESCALATION_LEVELS = ("none", "low", "medium", "high", "emergency")  # ascending severity
LEVEL_RANK = {level: rank for rank, level in enumerate(ESCALATION_LEVELS)}

ENUMS: dict[str, tuple[str, ...]] = {
    "resp_effort": ("normal", "mild", "moderate", "severe", "apnoea"),
    "resp_distress": ("none", "mild", "moderate", "severe"),
    "avpu": ("A", "V", "P", "U", "asleep"),
    "bp_skip_code": ("NCO", "U0", "U4", "OTHER_0", "OTHER_4"),
    "behaviour": (
        "playing_appropriate",
        "sleeping",
        "irritable",
        "lethargic_confused_reduced_pain",
    ),
    "skin_colour": ("pink", "pale", "grey", "grey_mottled"),
    "consciousness": ("A", "new_confusion", "V", "P", "U"),
    "carer_response": ("W", "S", "B", "A", "U"),
    "specific_concern": ("new_sepsis", "new_septic_shock", "abnormal_pupils"),
    "resp_signs": (
        "accessory_muscles",
        "recession",
        "tracheal_tug",
        "sternal_recession",
        "grunting",
    ),
    "oxygen_device": OXYGEN_DEVICES,
    "escalation_level": ESCALATION_LEVELS,
    "air_or_oxygen": ("air", "oxygen"),  # NEWS2 item values, derived from on_oxygen / oxygen
}

_NONNEG = Domain(Decimal(0), None)
_PERCENT = Domain(Decimal(0), Decimal(100))
_SIGNED = Domain(None, None)

#: Physically possible values of every numeric input (what table cells must cover).
DOMAINS: dict[str, Domain] = {
    "hr_bpm": _NONNEG,
    "rr_bpm": _NONNEG,
    "spo2_pct": _PERCENT,
    "sbp_mmhg": _NONNEG,
    "crt_s": _NONNEG,
    "temp_c": _NONNEG,
    "hr_above_upper_normal_bpm": _SIGNED,  # an excess: negative = below the upper normal
    "rr_above_upper_normal_bpm": _SIGNED,
    "oxygen.flow_lpm": _NONNEG,
    "oxygen.fio2_pct": _PERCENT,
    "total": _NONNEG,
}


@dataclass(frozen=True, slots=True)
class Oxygen:
    """Oxygen therapy: a device and, optionally, the delivered level."""

    device: str
    flow_lpm: float | None = None
    fio2_pct: float | None = None


@dataclass(frozen=True, slots=True)
class CarerQuestion:
    """UK NPEWS carer question; the level only counts with response ``W`` (worse)."""

    response: str
    escalation_level: str | None = None


@dataclass(frozen=True, slots=True)
class ClinicalIntuition:
    """UK NPEWS clinical intuition; the level only counts when ``concerned``."""

    concerned: bool
    escalation_level: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """A validated observation set; ``None`` means "not obtained"."""

    hr_bpm: float | None = None
    rr_bpm: float | None = None
    spo2_pct: float | None = None
    sbp_mmhg: float | None = None
    crt_s: float | None = None
    temp_c: float | None = None
    oxygen: Oxygen | None = None
    resp_effort: str | None = None
    resp_distress: str | None = None
    avpu: str | None = None
    bp_skip_code: str | None = None
    carer_question: CarerQuestion | None = None
    clinical_intuition: ClinicalIntuition | None = None
    specific_concern: frozenset[str] | None = None
    behaviour: str | None = None
    skin_colour: str | None = None
    hr_above_upper_normal_bpm: float | None = None
    rr_above_upper_normal_bpm: float | None = None
    bradycardia_for_age: bool | None = None
    resp_signs: frozenset[str] | None = None
    quarter_hourly_nebs: bool | None = None
    persistent_postop_vomiting: bool | None = None
    on_oxygen: bool | None = None
    consciousness: str | None = None


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PewsInputError(field, f"expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise PewsInputError(field, f"{value!r} is not a finite number")
    domain = DOMAINS[field]
    if domain.lo is not None and value < domain.lo:
        raise PewsInputError(field, f"{value!r} is negative (physically impossible)")
    if domain.hi is not None and value > domain.hi:
        raise PewsInputError(field, f"{value!r} is above {domain.hi} (physically impossible)")
    return value


def _enum(field: str, value: object, kind: str) -> str:
    allowed = ENUMS[kind]
    if not isinstance(value, str) or value not in allowed:
        raise PewsInputError(field, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise PewsInputError(field, f"expected true or false, got {value!r}")
    return value


def _enum_set(field: str, value: object) -> frozenset[str]:
    if not isinstance(value, list | tuple):
        raise PewsInputError(field, f"expected a list, got {type(value).__name__}")
    return frozenset(_enum(f"{field}[{i}]", v, field) for i, v in enumerate(value))


def _object(field: str, value: object, allowed: tuple[str, ...]) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise PewsInputError(field, f"expected an object, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise PewsInputError(f"{field}.{key}", f"unknown key (allowed: {', '.join(allowed)})")
    return value


def _oxygen(field: str, value: object) -> Oxygen:
    obj = _object(field, value, ("device", "flow_lpm", "fio2_pct"))
    if obj.get("device") is None:
        raise PewsInputError(f"{field}.device", "required")
    device = _enum(f"{field}.device", obj["device"], "oxygen_device")
    flow, fio2 = obj.get("flow_lpm"), obj.get("fio2_pct")
    oxy = Oxygen(
        device,
        None if flow is None else _number("oxygen.flow_lpm", flow),
        None if fio2 is None else _number("oxygen.fio2_pct", fio2),
    )
    if device == "room_air" and (oxy.flow_lpm is not None or oxy.fio2_pct is not None):
        raise PewsInputError(field, "flow_lpm/fio2_pct given with device room_air (contradictory)")
    return oxy


def _level(field: str, value: object, required: bool) -> str | None:
    if value is None:
        if required:
            raise PewsInputError(field, "required when the criterion is positive")
        return None
    return _enum(field, value, "escalation_level")


def _carer(field: str, value: object) -> CarerQuestion:
    obj = _object(field, value, ("response", "escalation_level"))
    response = _enum(f"{field}.response", obj.get("response"), "carer_response")
    level = _level(f"{field}.escalation_level", obj.get("escalation_level"), response == "W")
    return CarerQuestion(response, level)


def _intuition(field: str, value: object) -> ClinicalIntuition:
    obj = _object(field, value, ("concerned", "escalation_level"))
    concerned = _bool(f"{field}.concerned", obj.get("concerned"))
    return ClinicalIntuition(
        concerned, _level(f"{field}.escalation_level", obj.get("escalation_level"), concerned)
    )


_PARSERS: dict[str, Callable[[str, object], object]] = {
    **{k: _number for k in ("hr_bpm", "rr_bpm", "spo2_pct", "sbp_mmhg", "crt_s", "temp_c")},
    **{k: _number for k in ("hr_above_upper_normal_bpm", "rr_above_upper_normal_bpm")},
    **{
        k: (lambda f, v: _enum(f, v, f))
        for k in (
            "resp_effort",
            "resp_distress",
            "avpu",
            "bp_skip_code",
            "behaviour",
            "skin_colour",
            "consciousness",
        )
    },
    **{
        k: _bool
        for k in (
            "bradycardia_for_age",
            "quarter_hourly_nebs",
            "persistent_postop_vomiting",
            "on_oxygen",
        )
    },
    "specific_concern": _enum_set,
    "resp_signs": _enum_set,
    "oxygen": _oxygen,
    "carer_question": _carer,
    "clinical_intuition": _intuition,
}

#: Every input key of docs/clinical/vocabulary.md#input-keys.
INPUT_KEYS = tuple(_PARSERS)


def parse_observation(inputs: Mapping[str, object]) -> Observation:
    """Validate an observation set (docs/clinical/vocabulary.md#input-keys; null = not obtained).

    Raises:
        PewsInputError: Unknown key, wrong type, unknown enum value, impossible value, or a
            contradiction (``sbp_mmhg`` together with ``bp_skip_code``).
    """
    if not isinstance(inputs, Mapping):
        raise PewsInputError("inputs", f"expected an object, got {type(inputs).__name__}")
    values: dict[str, object] = {}
    for key, value in inputs.items():
        parser = _PARSERS.get(key)
        if parser is None:
            raise PewsInputError(
                str(key), "unknown input key (not in docs/clinical/vocabulary.md#input-keys)"
            )
        if value is not None:
            values[key] = parser(key, value)
    if "sbp_mmhg" in values and "bp_skip_code" in values:
        raise PewsInputError(
            "bp_skip_code", "given together with sbp_mmhg (a skip code means not measured)"
        )
    return Observation(**values)  # type: ignore[arg-type]  # keys and types checked above
